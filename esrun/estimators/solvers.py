"""MAP solvers for perturb-and-MAP and I-MLE: ``MAP(theta) = argmax_{z feasible} <z, theta>``.

* :func:`top_k` — k-subset selection, pure JAX.
* :func:`shortest_path` — Dijkstra on a node-weighted grid, pure JAX (``lax.fori_loop``), jit- and vmap-able.
  It *minimizes* cost: the MAP of scores ``theta`` is ``shortest_path(-theta)`` when ``-theta >= 0``.
* :func:`ilp` — a mixed-integer linear program solved by ``scipy.optimize.milp`` (HiGHS) through
  ``jax.pure_callback``; it *minimizes* ``c^T x``, so the MAP of scores ``theta`` is ``ilp(-theta, ...)``.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def top_k(scores: jax.Array, k: int) -> jax.Array:
    """k-hot indicator of the ``k`` largest entries over the last axis.

    Args:
      scores: ``[*B, n]``.
      k: static, ``1 <= k <= n``.

    Returns:
      ``z: [*B, n]`` floats in {0, 1} with ``sum(z, -1) = k``; ``z = argmax_{|S| = k} sum_{i in S} scores_i``.
    """
    n = scores.shape[-1]
    _, idx = jax.lax.top_k(scores, k)
    return jax.nn.one_hot(idx, n, dtype=jnp.result_type(scores, float)).sum(-2)


def _grid_neighbours(h: int, w: int, connectivity: int) -> np.ndarray:
    if connectivity == 8:
        steps = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
    elif connectivity == 4:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    else:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    table = np.full((h * w, len(steps)), h * w, dtype=np.int32)  # h*w is a padding node
    for i in range(h):
        for j in range(w):
            for s, (di, dj) in enumerate(steps):
                a, b = i + di, j + dj
                if 0 <= a < h and 0 <= b < w:
                    table[i * w + j, s] = a * w + b
    return table


@partial(jax.jit, static_argnames="connectivity")
def shortest_path(grid_costs: jax.Array, connectivity: int = 8) -> jax.Array:
    """Minimum-cost path from the top-left to the bottom-right cell of a grid with cell costs (Dijkstra).

    The cost of a path is the sum of the costs of the cells it visits, both ends included; moves go to the 8 (or
    4) neighbouring cells. ``O((H W)^2)`` work: meant for the small grids of I-MLE experiments.

    Args:
      grid_costs: ``[H, W]`` non-negative costs (Dijkstra is exact only for non-negative costs).
      connectivity: static, 8 or 4.

    Returns:
      ``[H, W]`` 0/1 mask of the cells on the path.
    """
    h, w = grid_costs.shape
    n = h * w
    nbr = jnp.asarray(_grid_neighbours(h, w, connectivity))
    dtype = jnp.result_type(grid_costs, float)
    cost = jnp.concatenate([grid_costs.reshape(-1).astype(dtype), jnp.zeros((1,), dtype)])
    inf = jnp.asarray(jnp.inf, dtype)
    dist0 = jnp.full((n + 1,), inf).at[0].set(cost[0])
    visited0 = jnp.zeros((n + 1,), bool).at[n].set(True)
    pred0 = jnp.full((n + 1,), -1, jnp.int32)

    def settle(_, carry):
        dist, visited, pred = carry
        u = jnp.argmin(jnp.where(visited, inf, dist))
        visited = visited.at[u].set(True)
        v = nbr[u]
        cand = dist[u] + cost[v]
        better = (~visited[v]) & (cand < dist[v])
        dist = dist.at[v].set(jnp.where(better, cand, dist[v]))
        pred = pred.at[v].set(jnp.where(better, u, pred[v]))
        return dist, visited, pred

    _, _, pred = jax.lax.fori_loop(0, n, settle, (dist0, visited0, pred0))

    def walk(_, carry):
        mask, cur = carry
        mask = mask.at[cur].set(1.0)
        return mask, jnp.where(cur == 0, 0, pred[cur])

    mask, _ = jax.lax.fori_loop(0, n, walk, (jnp.zeros((n,), dtype), jnp.asarray(n - 1, jnp.int32)))
    return mask.reshape(h, w)


def _milp_host(c, a_ub, b_ub, a_eq, b_eq, lb, ub, integrality):
    from scipy.optimize import Bounds, LinearConstraint, milp

    c = np.asarray(c, np.float64)
    constraints = []
    if a_ub is not None and np.size(a_ub):
        constraints.append(LinearConstraint(np.asarray(a_ub, np.float64), -np.inf, np.asarray(b_ub, np.float64)))
    if a_eq is not None and np.size(a_eq):
        beq = np.asarray(b_eq, np.float64)
        constraints.append(LinearConstraint(np.asarray(a_eq, np.float64), beq, beq))
    res = milp(c, constraints=constraints, integrality=np.asarray(integrality),
               bounds=Bounds(np.asarray(lb, np.float64), np.asarray(ub, np.float64)))
    if res.x is None:
        return np.full(c.shape, np.nan, np.float32)
    return np.asarray(res.x, np.float32)


def ilp(c: jax.Array, A_ub: jax.Array, b_ub: jax.Array, A_eq: jax.Array | None = None, b_eq: jax.Array | None = None,
        lb: ArrayLike = 0.0, ub: ArrayLike = 1.0, integrality: ArrayLike = 1) -> jax.Array:
    """``argmin_x c^T x`` s.t. ``A_ub x <= b_ub``, ``A_eq x = b_eq``, ``lb <= x <= ub``, integrality (HiGHS MILP).

    Solved on the host by ``scipy.optimize.milp`` through ``jax.pure_callback`` (jit-able; under ``vmap`` the
    problems are solved one after another).

    Args:
      c: ``[n]`` costs.
      A_ub: ``[m, n]``; b_ub: ``[m]`` (``m`` may be 0).
      A_eq: optional ``[q, n]``; b_eq: optional ``[q]``.
      lb, ub: bounds, scalars or ``[n]`` (default binary: 0 and 1).
      integrality: scalar or ``[n]``; 1 integer, 0 continuous (scipy's convention).

    Returns:
      ``x: [n]`` float32 solution (NaN where the problem is infeasible).
    """
    c = jnp.asarray(c)
    n = c.shape[-1]
    A_ub = jnp.zeros((0, n)) if A_ub is None else jnp.asarray(A_ub)
    b_ub = jnp.zeros((0,)) if b_ub is None else jnp.asarray(b_ub)
    A_eq = jnp.zeros((0, n)) if A_eq is None else jnp.asarray(A_eq)
    b_eq = jnp.zeros((0,)) if b_eq is None else jnp.asarray(b_eq)
    lb = jnp.broadcast_to(jnp.asarray(lb, jnp.float32), (n,))
    ub = jnp.broadcast_to(jnp.asarray(ub, jnp.float32), (n,))
    integ = np.broadcast_to(np.asarray(integrality, np.int32), (n,))

    def host(c_, a_ub_, b_ub_, a_eq_, b_eq_, lb_, ub_):
        return _milp_host(c_, a_ub_, b_ub_, a_eq_, b_eq_, lb_, ub_, integ)

    out = jax.ShapeDtypeStruct((n,), jnp.float32)
    return jax.pure_callback(host, out, c, A_ub, b_ub, A_eq, b_eq, lb, ub, vmap_method="sequential")
