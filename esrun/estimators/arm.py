"""Augment-REINFORCE-Merge (ARM) and DisARM: unbiased antithetic estimators for Bernoulli logits.

For ``b ~ Bernoulli(sigmoid(phi))`` (independent over the elements of ``phi``, shape ``[*S]``) both estimate
``grad_phi E[f(b)]`` from an antithetic pair of samples built from one uniform draw ``u ~ U(0, 1)^S``, so one
estimate costs two calls of ``f`` and ``n`` pairs cost ``num_evals = 2 n``. Both need only values of ``f``.

* ARM (Yin and Zhou, 2019):

      grad_phi E f(b) = E_u[ (f(1[u > sigma(-phi)]) - f(1[u < sigma(phi)])) (u - 1/2) ].

* DisARM (Dong et al., 2020) integrates the augmentation out.  With ``b = 1[u < sigma(phi)]`` and its antithetic
  partner ``b~ = 1[1 - u < sigma(phi)]``,

      g_i = 1/2 (f(b) - f(b~)) (-1)^{b~_i} 1[b_i != b~_i] sigma(|phi_i|),

  which is the conditional expectation of ARM given ``(b, b~)``, so ``Var(DisARM) <= Var(ARM)`` for every ``f``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Bernoulli


def _uniforms(key: jax.Array, logits: jax.Array, n: int) -> jax.Array:
    return jax.random.uniform(key, (n, *jnp.shape(logits)), jnp.result_type(logits, float))


def _check_bernoulli(dist) -> None:
    if not isinstance(dist, Bernoulli):
        raise TypeError(f"ARM / DisARM apply to Bernoulli distributions, got {type(dist).__name__}")


@register("arm", supports=("bernoulli",), unbiased=True, needs_grad_f=False)
def arm(key: jax.Array, f: Objective, dist: Bernoulli, num_samples: int) -> Estimate:
    """ARM estimator of ``grad_logits E_{b ~ Bernoulli(sigmoid(logits))}[f(b)]`` (Yin and Zhou, 2019).

    Equation (one pair, ``u ~ U(0,1)^S``)::

        g = (f(1[u > sigma(-phi)]) - f(1[u < sigma(phi)])) * (u - 1/2)

    Args:
      key: PRNG key.
      f: ``[*S] -> []`` function of one {0., 1.} sample.
      dist: ``Bernoulli(logits)`` with ``logits: [*S]``.
      num_samples: number of antithetic pairs ``n`` (static).

    Returns:
      ``Estimate(grad=Bernoulli([*S]), per_sample=Bernoulli([n, *S]), num_evals=2 n)``. Unbiased.
    """
    _check_bernoulli(dist)
    phi = jax.lax.stop_gradient(dist.logits)
    u = _uniforms(key, phi, num_samples)
    dtype = u.dtype
    b_hi = (u > jax.nn.sigmoid(-phi)).astype(dtype)
    b_lo = (u < jax.nn.sigmoid(phi)).astype(dtype)
    df = jax.vmap(f)(b_hi) - jax.vmap(f)(b_lo)  # [n]
    per = df.reshape((num_samples,) + (1,) * jnp.ndim(phi)) * (u - 0.5)
    return Estimate(Bernoulli(per.mean(0)), Bernoulli(per), 2 * num_samples)


@register("disarm", supports=("bernoulli",), unbiased=True, needs_grad_f=False)
def disarm(key: jax.Array, f: Objective, dist: Bernoulli, num_samples: int) -> Estimate:
    """DisARM estimator of ``grad_logits E_{b ~ Bernoulli(sigmoid(logits))}[f(b)]`` (Dong et al., 2020).

    Equation (one antithetic pair ``b = 1[u < sigma(phi)]``, ``b~ = 1[1 - u < sigma(phi)]``)::

        g_i = 1/2 (f(b) - f(b~)) (-1)^{b~_i} 1[b_i != b~_i] sigma(|phi_i|)

    Args:
      key: PRNG key.
      f: ``[*S] -> []`` function of one {0., 1.} sample.
      dist: ``Bernoulli(logits)`` with ``logits: [*S]``.
      num_samples: number of antithetic pairs ``n`` (static).

    Returns:
      ``Estimate(grad=Bernoulli([*S]), per_sample=Bernoulli([n, *S]), num_evals=2 n)``. Unbiased; the
      conditional expectation of ARM, hence never of larger variance.
    """
    _check_bernoulli(dist)
    phi = jax.lax.stop_gradient(dist.logits)
    u = _uniforms(key, phi, num_samples)
    dtype = u.dtype
    p = jax.nn.sigmoid(phi)
    b = (u < p).astype(dtype)
    b_tilde = (1.0 - u < p).astype(dtype)
    df = jax.vmap(f)(b) - jax.vmap(f)(b_tilde)  # [n]
    sign = 1.0 - 2.0 * b_tilde  # (-1)^{b~}
    differ = (b != b_tilde).astype(dtype)
    per = 0.5 * df.reshape((num_samples,) + (1,) * jnp.ndim(phi)) * sign * differ * jax.nn.sigmoid(jnp.abs(phi))
    return Estimate(Bernoulli(per.mean(0)), Bernoulli(per), 2 * num_samples)
