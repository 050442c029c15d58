"""REINFORCE / score-function estimator, with optional baselines.

    grad_theta E_{p_theta}[f(x)] = E[(f(x) - b) grad_theta log p_theta(x)]      (Williams, 1992)

holds for any b that does not depend on x. Per coordinate j, with s_j = d/dtheta_j log p(x), the variance
E[(f - b)^2 s_j^2] - (dJ/dtheta_j)^2 is minimised by the optimal constant baseline

    b*_j = E[f(x) s_j(x)^2] / E[s_j(x)^2].

Baselines estimated from the samples themselves would make the estimator biased (by O(1/n)): both
``"mean"`` and ``"optimal"`` are therefore estimated leave-one-out — sample k's baseline uses only the other
n - 1 samples — so every option of this estimator is unbiased.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Distribution
from esrun.estimators.leave_one_out import leave_one_out_mean, score_terms, weight_scores


def _no_baseline(fx, scores):
    return weight_scores(fx, scores)


def _mean_baseline(fx, scores):
    # b_k = mean of f over the other samples: identical to RLOO (see leave_one_out.py).
    return weight_scores(fx - leave_one_out_mean(fx), scores)


def _optimal_baseline(fx, scores):
    # b*_{k,j} = sum_{i != k} f_i s_ij^2 / sum_{i != k} s_ij^2, per coordinate j, leave-one-out.
    def one(s):
        w = fx.reshape(fx.shape + (1,) * (s.ndim - 1))
        s2 = s**2
        num = jnp.sum(w * s2, 0, keepdims=True) - w * s2
        den = jnp.sum(s2, 0, keepdims=True) - s2
        b = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
        return (w - b) * s

    return jax.tree_util.tree_map(one, scores)


BASELINES: dict[str | None, Callable] = {None: _no_baseline, "mean": _mean_baseline, "optimal": _optimal_baseline}
"""baseline option -> (f [n], scores pytree [n, ...]) -> per-sample terms. A number is a constant baseline."""


def _example_options(dist):
    return {"baseline": "optimal"}


@register(
    "score_function",
    supports=("gaussian", "bernoulli", "categorical", "poisson"),
    unbiased=True,
    example_options=_example_options,
)
def score_function(key: jax.Array, f: Objective, dist: Distribution, num_samples: int,
                   baseline: str | float | None = None) -> Estimate:
    """REINFORCE: grad_hat = 1/n sum_k (f(x_k) - b_k) grad_params log p(x_k), x_k ~ dist.

    Args:
      key: PRNG key.
      f: x -> [] scalar; x shaped like one sample of ``dist``.
      dist: any distribution pytree (Gaussian, Bernoulli, Categorical, Poisson).
      num_samples: n (static); n >= 2 for ``"mean"`` and ``"optimal"``.
      baseline: ``None`` (b = 0); ``"mean"`` (b_k = mean_{j != k} f(x_j), leave-one-out);
        ``"optimal"`` (b*_{k,j} = sum_{i != k} f_i s_ij^2 / sum_{i != k} s_ij^2 per parameter coordinate j,
        leave-one-out); or a number / array broadcastable to [n] (a constant b). Strings are static.

    Returns:
      Estimate(grad shaped like ``dist``, per_sample [n, *leaf], num_evals = n).

    Unbiased for every baseline option (leave-one-out baselines do not depend on their own sample; the
    per_sample terms are identically distributed, weakly dependent through the baseline). Cost: n
    evaluations of f. Paper: Williams, 1992.
    """
    xs = dist.sample(key, num_samples)
    fx, scores = score_terms(f, dist, xs)
    if baseline is None or isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {sorted(map(str, BASELINES))} or a number, got {baseline!r}")
        per_sample = BASELINES[baseline](fx, scores)
    else:
        per_sample = weight_scores(fx - jnp.asarray(baseline, fx.dtype), scores)
    grad = jax.tree_util.tree_map(lambda p: p.mean(0), per_sample)
    return Estimate(grad, per_sample, num_samples)
