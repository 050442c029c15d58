"""MAP solvers against brute force and scipy: top-k, grid shortest path (Dijkstra), MILP."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from esrun import estimators as E


def test_top_k_matches_sorting():
    scores = jax.random.normal(jax.random.PRNGKey(0), (5, 8))
    z = np.asarray(E.solvers.top_k(scores, 3))
    for row, zr in zip(np.asarray(scores), z):
        want = np.zeros(8)
        want[np.argsort(-row)[:3]] = 1
        np.testing.assert_array_equal(zr, want)
    assert np.all(z.sum(-1) == 3)
    np.testing.assert_array_equal(jax.jit(E.solvers.top_k, static_argnums=1)(scores, 3), z)


def scipy_grid_path(costs, connectivity):
    """Node-weighted grid as a directed graph with edge weight = cost of the head cell; returns (cost, mask)."""
    h, w = costs.shape
    rows, cols, vals = [], [], []
    steps = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
    if connectivity == 4:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    for i in range(h):
        for j in range(w):
            for a, b in steps:
                if 0 <= i + a < h and 0 <= j + b < w:
                    rows.append(i * w + j)
                    cols.append((i + a) * w + j + b)
                    vals.append(costs[i + a, j + b])
    dist, pred = dijkstra(csr_matrix((vals, (rows, cols)), shape=(h * w, h * w)), indices=0,
                          return_predecessors=True)
    mask = np.zeros(h * w)
    cur = h * w - 1
    while cur >= 0:
        mask[cur] = 1
        cur = pred[cur]
    return dist[-1] + costs[0, 0], mask.reshape(h, w)


@pytest.mark.parametrize("connectivity", [8, 4])
@pytest.mark.parametrize("shape", [(5, 6), (7, 7)])
def test_shortest_path_matches_scipy(shape, connectivity):
    costs = jax.random.uniform(jax.random.PRNGKey(sum(shape) + connectivity), (4, *shape), minval=0.1, maxval=5.0)
    masks = np.asarray(jax.jit(jax.vmap(lambda c: E.solvers.shortest_path(c, connectivity)))(costs))
    for c, m in zip(np.asarray(costs, np.float64), masks):
        want_cost, want_mask = scipy_grid_path(c, connectivity)
        np.testing.assert_allclose((m * c).sum(), want_cost, rtol=1e-5)
        np.testing.assert_array_equal(m, want_mask)
        assert m[0, 0] == 1 and m[-1, -1] == 1


def test_shortest_path_brute_force_3x3():
    """All simple monotone and non-monotone paths on a 3x3 grid (4-connected), by exhaustive search."""
    c = np.array([[1.0, 9.0, 1.0], [1.0, 9.0, 1.0], [1.0, 1.0, 1.0]])
    m = np.asarray(E.solvers.shortest_path(jnp.asarray(c), 4))
    np.testing.assert_array_equal(m, [[1, 0, 0], [1, 0, 0], [1, 1, 1]])

    best = np.inf
    nodes = [(i, j) for i in range(3) for j in range(3)]

    def dfs(path, cost):
        nonlocal best
        i, j = path[-1]
        if (i, j) == (2, 2):
            best = min(best, cost)
            return
        for a, b in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nxt = (i + a, j + b)
            if nxt in nodes and nxt not in path:
                dfs(path + [nxt], cost + c[nxt])

    rng = np.random.default_rng(0)
    for _ in range(5):
        c = rng.uniform(0.1, 3.0, (3, 3))
        best = np.inf
        dfs([(0, 0)], c[0, 0])
        m = np.asarray(E.solvers.shortest_path(jnp.asarray(c), 4))
        np.testing.assert_allclose((m * c).sum(), best, rtol=1e-5)


def brute_force_binary(c, a_ub, b_ub, a_eq=None, b_eq=None):
    best, best_x = np.inf, None
    for x in itertools.product([0.0, 1.0], repeat=len(c)):
        x = np.array(x)
        if np.all(a_ub @ x <= b_ub + 1e-9) and (a_eq is None or np.allclose(a_eq @ x, b_eq)):
            if c @ x < best - 1e-9:
                best, best_x = c @ x, x
    return best, best_x


def test_ilp_matches_brute_force():
    rng = np.random.default_rng(1)
    for trial in range(4):
        n = 7
        c = rng.normal(size=n)
        a_ub = rng.uniform(0, 1, (3, n))
        b_ub = rng.uniform(1.5, 3, 3)
        a_eq = np.ones((1, n)) if trial % 2 else None
        b_eq = np.array([2.0]) if trial % 2 else None
        x = np.asarray(E.solvers.ilp(jnp.asarray(c), jnp.asarray(a_ub), jnp.asarray(b_ub), a_eq, b_eq))
        best, _ = brute_force_binary(c, a_ub, b_ub, a_eq, b_eq)
        assert np.isfinite(best)
        np.testing.assert_allclose(c @ x, best, rtol=1e-5, atol=1e-6)
        assert np.all(a_ub @ x <= b_ub + 1e-6) and set(np.unique(x)) <= {0.0, 1.0}


def test_ilp_as_top_k_under_jit_and_vmap():
    """Top-k as an ILP (sum x = k, maximize theta^T x) equals solvers.top_k, also under jit and vmap."""
    theta = jax.random.normal(jax.random.PRNGKey(2), (3, 8))
    solve = jax.jit(jax.vmap(lambda t: E.solvers.ilp(-t, None, None, jnp.ones((1, 8)), jnp.array([3.0]))))
    np.testing.assert_array_equal(solve(theta), E.solvers.top_k(theta, 3))


def test_ilp_infeasible_is_nan():
    x = E.solvers.ilp(jnp.ones(3), jnp.ones((1, 3)), jnp.array([-1.0]))
    assert np.all(np.isnan(np.asarray(x)))
