"""REINFORCE leave-one-out (RLOO / VIMCO-style baseline).

For K independent samples x_1..x_K ~ p_theta, the baseline of sample k is the mean of the others,

    b_k = 1/(K-1) sum_{j != k} f(x_j),
    grad_hat = 1/K sum_k (f(x_k) - b_k) grad_theta log p_theta(x_k),

which is unbiased because b_k does not depend on x_k (Mnih and Rezende, 2016; Ahmadian et al., 2024).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Distribution


def leave_one_out_mean(values: jax.Array) -> jax.Array:
    """b_k = 1/(K-1) sum_{j != k} values_j along axis 0.

    Args:
      values: [K, ...] with K >= 2.
    Returns:
      [K, ...] the mean of the other K-1 rows, for every row.
    """
    k = values.shape[0]
    if k < 2:
        raise ValueError(f"a leave-one-out mean needs at least 2 samples, got {k}")
    return (jnp.sum(values, axis=0, keepdims=True) - values) / (k - 1)


def score_terms(f: Objective, dist: Distribution, xs: jax.Array) -> tuple[jax.Array, Distribution]:
    """f(x_k) [K] and the scores grad_params log p(x_k) (dist-shaped pytree, leading [K])."""
    fx = jax.vmap(f)(xs)
    scores = jax.vmap(jax.grad(lambda d, x: d.log_prob(x)), in_axes=(None, 0))(dist, xs)
    return fx, scores


def weight_scores(weights: jax.Array, scores: Any) -> Any:
    """weights [K] (or [K, *leaf] per leaf) times each score leaf [K, *leaf]."""

    def one(s):
        w = weights.reshape(weights.shape + (1,) * (s.ndim - weights.ndim))
        return w * s

    return jax.tree_util.tree_map(one, scores)


@register(
    "leave_one_out",
    supports=("gaussian", "bernoulli", "categorical", "poisson"),
    unbiased=True,
)
def leave_one_out(key: jax.Array, f: Objective, dist: Distribution, num_samples: int) -> Estimate:
    """RLOO: grad_hat = 1/K sum_k (f(x_k) - b_k) grad log p(x_k), b_k = mean_{j != k} f(x_j).

    Args:
      key: PRNG key.
      f: x -> [] scalar, x shaped like one sample of ``dist``.
      dist: any distribution pytree with ``sample`` and ``log_prob``.
      num_samples: K >= 2 (static).

    Returns:
      Estimate with grad shaped like ``dist``, per_sample [K, *leaf] (the K summands, which are identically
      distributed but weakly dependent through the shared baseline), num_evals = K.

    Unbiased. Cost: K evaluations of f. Paper: Kool et al. 2019; Ahmadian et al., 2024 (RLOO); Mnih and
    Rezende, 2016 (VIMCO's leave-one-out control variate).
    """
    xs = dist.sample(key, num_samples)
    fx, scores = score_terms(f, dist, xs)
    per_sample = weight_scores(fx - leave_one_out_mean(fx), scores)
    grad = jax.tree_util.tree_map(lambda p: p.mean(0), per_sample)
    return Estimate(grad, per_sample, num_samples)
