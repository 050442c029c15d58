"""REBAR: REINFORCE with a debiased continuous-relaxation control variate, for Bernoulli logits.

Notation (Tucker et al., 2017), elementwise over the logits ``phi: [*S]``, ``theta = sigmoid(phi)``:

* ``z = phi + logit(u)``, ``u ~ U(0,1)^S``, is a logistic relaxation; ``b = H(z) = 1[z > 0] ~ Bernoulli(theta)``.
* ``z~ ~ p(z | b, phi)`` is the conditional relaxed sample, reparameterized by ``v ~ U(0,1)^S``:
  ``u' = 1 - theta + v theta`` if ``b = 1``, ``u' = v (1 - theta)`` if ``b = 0``; ``z~ = phi + logit(u')``.
* ``sigma_lambda(z) = sigmoid(z / lambda)``, ``lambda`` the temperature.

The estimator, with control variate ``c(z) = eta f(sigma_lambda(z))``::

    g = [f(b) - eta f(sigma_lambda(z~))] grad_phi log p(b | phi)
        + eta grad_phi f(sigma_lambda(z)) - eta grad_phi f(sigma_lambda(z~)),

where ``grad_phi log p(b | phi) = b - theta`` and the last two gradients are pathwise (``u`` and ``v`` held
fixed). It is unbiased for every ``eta`` and ``lambda``; ``f`` must accept relaxed inputs in ``(0, 1)`` and be
differentiable there. ``eta`` and ``log lambda`` are tuned by descending the single-sample variance
``E ||g||^2 - ||grad J||^2``, whose gradient ``grad E||g||^2`` :func:`rebar_with_variance_grad` returns.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Bernoulli


def relaxed_bernoulli_pair(phi: jax.Array, u: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The REBAR / RELAX reparameterized samples for logits ``phi: [*S]`` and uniforms ``u, v: [*S]``.

    Returns ``(b, z, z_tilde)``, all ``[*S]``: ``b = 1[z > 0]`` (no gradient), ``z = phi + logit(u)`` and the
    conditional ``z~ ~ p(z | b, phi)``, both differentiable in ``phi``. Computed in log space so that no
    ``log(0)`` appears for large ``|phi|`` or ``u, v`` near 0 or 1.
    """
    tiny = jnp.finfo(jnp.result_type(u)).tiny
    u = jnp.clip(u, tiny, 1.0 - jnp.finfo(jnp.result_type(u)).epsneg)
    v = jnp.clip(v, tiny, 1.0 - jnp.finfo(jnp.result_type(v)).epsneg)
    z = phi + jnp.log(u) - jnp.log1p(-u)
    b = jax.lax.stop_gradient((z > 0).astype(jnp.result_type(phi, float)))
    ls_pos, ls_neg = jax.nn.log_sigmoid(phi), jax.nn.log_sigmoid(-phi)  # log theta, log (1 - theta)
    log_v, log_1mv = jnp.log(v), jnp.log1p(-v)
    # b = 1: u' = (1 - theta) + v theta,  1 - u' = theta (1 - v)
    zt1 = phi + jnp.logaddexp(ls_neg, log_v + ls_pos) - (ls_pos + log_1mv)
    # b = 0: u' = v (1 - theta),          1 - u' = theta + (1 - v)(1 - theta)
    zt0 = phi + (log_v + ls_neg) - jnp.logaddexp(ls_pos, log_1mv + ls_neg)
    z_tilde = jnp.where(b > 0, zt1, zt0)
    return b, z, z_tilde


@partial(jax.jit, static_argnums=(1, 3, 4))
def relaxed_per_sample(key: jax.Array, f: Objective, phi: jax.Array, num_samples: int,
                       cv_apply: Callable[[Any, jax.Array], jax.Array], cv_params: Any) -> jax.Array:
    """Per-sample REBAR/RELAX estimates ``[n, *S]`` for a control variate ``c(z) = cv_apply(cv_params, z)``.

    ``g = [f(b) - c(z~)] (b - sigmoid(phi)) + grad_phi c(z(phi)) - grad_phi c(z~(phi))``; differentiable in
    ``cv_params`` (used for the variance gradient). ``f`` and ``cv_apply`` are static (hashable) arguments.
    """
    control_variate = lambda z: cv_apply(cv_params, z)
    ku, kv = jax.random.split(key)
    shape = (num_samples, *jnp.shape(phi))
    dtype = jnp.result_type(phi, float)
    u = jax.random.uniform(ku, shape, dtype)
    v = jax.random.uniform(kv, shape, dtype)

    def one(u1, v1):
        b, _, _ = relaxed_bernoulli_pair(phi, u1, v1)

        def cv_diff(p):
            _, z, zt = relaxed_bernoulli_pair(p, u1, v1)
            return control_variate(z) - control_variate(zt)

        _, _, zt = relaxed_bernoulli_pair(phi, u1, v1)
        # The REINFORCE term's control variate is evaluated at z~ but not differentiated in phi.
        c_tilde = control_variate(jax.lax.stop_gradient(zt))
        score = b - jax.nn.sigmoid(phi)
        return (f(b) - c_tilde) * score + jax.grad(cv_diff)(phi)

    return jax.vmap(one)(u, v)


class _RebarControlVariate(NamedTuple):
    """``c(z) = eta f(sigmoid(z / exp(log_temperature)))``, params ``(eta [], log_temperature [])``; hashable."""

    f: Callable

    def __call__(self, params, z):
        eta, log_temperature = params
        return eta * self.f(jax.nn.sigmoid(z / jnp.exp(log_temperature)))


def _rebar_per_sample(key, f, phi, num_samples, eta, log_temperature):
    return relaxed_per_sample(key, f, phi, num_samples, _RebarControlVariate(f), (eta, log_temperature))


@register("rebar", supports=("bernoulli",), unbiased=True, needs_grad_f=True)
def rebar(key: jax.Array, f: Objective, dist: Bernoulli, num_samples: int, eta: ArrayLike = 1.0,
          temperature: ArrayLike = 0.5) -> Estimate:
    """REBAR estimator of ``grad_logits E_{b ~ Bernoulli(sigmoid(logits))}[f(b)]`` (Tucker et al., 2017).

    Equation (per sample; notation in the module docstring)::

        g = [f(b) - eta f(sigma_lambda(z~))] (b - sigmoid(phi))
            + eta grad_phi f(sigma_lambda(z)) - eta grad_phi f(sigma_lambda(z~))

    Args:
      key: PRNG key.
      f: ``[*S] -> []``, evaluated at {0,1} samples and at relaxed samples in (0,1); differentiable.
      dist: ``Bernoulli(logits)``, ``logits: [*S]``.
      num_samples: ``n`` (static).
      eta: scalar control-variate scale (tune with :func:`rebar_with_variance_grad`).
      temperature: ``lambda > 0``.

    Returns:
      ``Estimate(grad [*S], per_sample [n, *S], num_evals=3 n)`` (``f(b)``, ``f(sigma(z))``, ``f(sigma(z~))``).
      Unbiased for every ``eta`` and ``temperature``.
    """
    phi = jax.lax.stop_gradient(dist.logits)
    per = _rebar_per_sample(key, f, phi, num_samples, jnp.asarray(eta), jnp.log(jnp.asarray(temperature)))
    return Estimate(Bernoulli(per.mean(0)), Bernoulli(per), 3 * num_samples)


def rebar_with_variance_grad(key: jax.Array, f: Objective, dist: Bernoulli, num_samples: int, eta: ArrayLike,
                             log_temperature: ArrayLike) -> tuple[Estimate, tuple[jax.Array, jax.Array]]:
    """REBAR plus the gradient of its single-sample variance w.r.t. ``(eta, log_temperature)``.

    The variance of a single-sample estimate is ``E||g||^2 - ||grad J||^2`` and the second term does not depend
    on ``(eta, lambda)`` (REBAR is unbiased for all of them), so ``grad_{eta, log lambda} Var = grad
    mean_s ||g_s||^2``, estimated with the same samples as the returned estimate (Tucker et al., 2017, Sec. 3.3).

    Returns:
      ``(Estimate, (d_eta, d_log_temperature))``; descend the second to reduce variance.
    """
    phi = jax.lax.stop_gradient(dist.logits)

    def second_moment(eta_, lt_):
        per = _rebar_per_sample(key, f, phi, num_samples, eta_, lt_)
        return jnp.mean(jnp.sum(per.reshape(num_samples, -1) ** 2, -1)), per

    (_, per), grads = jax.value_and_grad(second_moment, argnums=(0, 1), has_aux=True)(
        jnp.asarray(eta, jnp.result_type(phi, float)), jnp.asarray(log_temperature, jnp.result_type(phi, float))
    )
    return Estimate(Bernoulli(per.mean(0)), Bernoulli(per), 3 * num_samples), grads
