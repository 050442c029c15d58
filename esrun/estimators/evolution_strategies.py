"""Evolution Strategies: the score function of a Gaussian search distribution over parameters.

    J(theta) = E_{eps ~ N(0, I)}[f(theta + sigma eps)],
    grad_theta J = 1/sigma E_eps[f(theta + sigma eps) eps]                 (standardized; Salimans et al., 2017)
                 = 1/sigma^2 E_{delta ~ N(0, sigma^2 I)}[f(theta + delta) delta]   (scaled; Huszar, 2017; Barber, 2017)

The two forms are one estimator under the change of variables delta = sigma eps; with the same key they
evaluate f at the same points and agree to floating-point rounding. With antithetic pairs (+eps, -eps) the
per-pair estimate is (f(theta + sigma eps) - f(theta - sigma eps)) eps / (2 sigma), still unbiased, and its
variance no longer explodes as sigma -> 0 (for f = ||x||^2 its covariance is 4 (||theta||^2 I + theta theta^T)
for every sigma).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Gaussian
from esrun.strategies.noise import NoiseSource, noise_rows


def _standardized(f_batch, mean, sigma, eps, antithetic):
    if antithetic:
        return (f_batch(mean + sigma * eps) - f_batch(mean - sigma * eps))[:, None] * eps / (2 * sigma)
    return f_batch(mean + sigma * eps)[:, None] * eps / sigma


def _scaled(f_batch, mean, sigma, eps, antithetic):
    delta = sigma * eps
    if antithetic:
        return (f_batch(mean + delta) - f_batch(mean - delta))[:, None] * delta / (2 * sigma**2)
    return f_batch(mean + delta)[:, None] * delta / sigma**2


FORMS: dict[str, Callable] = {"standardized": _standardized, "scaled": _scaled}
"""form -> (f over [n, D], mean [D], sigma [] or [D], eps [n, D], antithetic) -> per-perturbation terms [n, D]."""


def evolution_strategies(
    key: jax.Array,
    f: Objective,
    mean: jax.Array,
    sigma: ArrayLike,
    num_samples: int,
    antithetic: bool = True,
    form: str = "standardized",
    noise: NoiseSource | None = None,
) -> Estimate:
    """ES gradient of E_{eps ~ N(0, I)}[f(mean + sigma eps)] with respect to ``mean``.

    standardized: g_k = f(mean + sigma eps_k) eps_k / sigma
    scaled:       g_k = f(mean + delta_k) delta_k / sigma^2, delta_k = sigma eps_k
    antithetic:   g_k = (f(mean + sigma eps_k) - f(mean - sigma eps_k)) eps_k / (2 sigma)  (same in either form)

    Args:
      key: PRNG key.
      f: x -> [] scalar, x of ``mean.shape`` (need not be differentiable).
      mean: [*shape] the search distribution's mean (any shape).
      sigma: [] or broadcastable to ``mean.shape``; a traced array is fine.
      num_samples: n perturbations eps_k (static); with ``antithetic`` each is a pair (+eps_k, -eps_k).
      antithetic: static bool.
      form: ``"standardized"`` | ``"scaled"`` (static); same key -> same estimate up to rounding.
      noise: None (default): ``eps = normal(key, [n, D])``; a noise source (``strategies/noise.py``: COUNTER or
        a ``TableNoise`` over a shared table): ``eps_k = noise_rows(noise, key, 0, k, D)`` (float32), so a
        million-dimensional estimate reads table slices instead of drawing n x D normals.

    Returns:
      Estimate(grad [*shape], per_sample [n, *shape] (one entry per perturbation or pair),
      num_evals = 2 n with antithetic pairs, n without).

    Unbiased for the gradient of the Gaussian-smoothed objective (not of f itself). Paper: Salimans et al.,
    2017; Wierstra et al., 2014 (NES); Huszar, 2017; Barber, 2017.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {sorted(FORMS)}, got {form!r}")
    mean = jnp.asarray(mean)
    shape = mean.shape
    dtype = jnp.result_type(mean, float)
    if noise is None:
        eps = jax.random.normal(key, (num_samples, mean.size), dtype)
    else:
        eps = noise_rows(noise, key, 0, jnp.arange(num_samples, dtype=jnp.int32), mean.size).astype(dtype)
    sig = jnp.broadcast_to(jnp.asarray(sigma, dtype), shape).reshape(-1)
    f_batch = jax.vmap(lambda x: f(x.reshape(shape)))
    per = FORMS[form](f_batch, mean.reshape(-1), sig, eps, antithetic).reshape(num_samples, *shape)
    return Estimate(per.mean(0), per, num_samples * (2 if antithetic else 1))


@register("evolution_strategies", supports=("gaussian",), unbiased=True)
def evolution_strategies_dist(key: jax.Array, f: Objective, dist: Gaussian, num_samples: int, antithetic: bool = True,
                              noise: NoiseSource | None = None) -> Estimate:
    """Registry form of :func:`evolution_strategies` with the common (key, f, dist, n) signature.

    Estimates the gradient w.r.t. ``dist.mean`` only, with sigma = exp(dist.log_std) held fixed. The
    ``log_std`` leaf of ``grad`` and ``per_sample`` is identically zero: it is NOT an estimate of
    d/dlog_std (ES adapts the mean; callers that need the scale gradient use score_function, pathwise or
    measure_valued). ``meta["estimates"] == ("mean",)`` records this; ``unbiased`` refers to the mean leaf.

    Returns:
      Estimate(Gaussian(mean=grad [*shape], log_std=zeros), per_sample Gaussian with leading [n],
      num_evals = 2 n with antithetic pairs, n without).
    """
    est = evolution_strategies(key, f, dist.mean, dist.std, num_samples, antithetic=antithetic, noise=noise)
    zeros = jnp.zeros_like(jnp.asarray(dist.log_std, est.grad.dtype))
    grad = Gaussian(est.grad, zeros)
    per_sample = Gaussian(est.per_sample, jnp.zeros((num_samples, *zeros.shape), zeros.dtype))
    return Estimate(grad, per_sample, est.num_evals)


evolution_strategies_dist.meta["estimates"] = ("mean",)
