"""RELAX: REINFORCE with a learned, debiased control variate ``c_phi`` (Grathwohl et al., 2018), Bernoulli case.

With the REBAR notation (:mod:`esrun.estimators.rebar`: ``z`` the logistic relaxation, ``b = H(z)``, ``z~`` the
conditional relaxed sample, all reparameterized by uniforms)::

    g = [f(b) - c_phi(z~)] grad_theta log p(b | theta) + grad_theta c_phi(z) - grad_theta c_phi(z~).

Unbiased for every ``c_phi``; ``c_phi`` is trained to minimize the variance, whose gradient is
``grad_phi E||g||^2`` (the mean ``grad J`` does not depend on ``phi``).

A control variate is a :class:`ControlVariate` ``(init, apply, f_evals)``: ``init(key, shape) -> params``,
``apply(params, z [*S]) -> []`` (``z`` in logit space), ``f_evals`` the calls of ``f`` per ``apply`` (for the
``num_evals`` count). :func:`mlp_control_variate` is the default small network; :func:`rebar_mlp_control_variate`
is the paper's ``c = eta f(sigma_lambda(z)) + r_rho(z)``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Bernoulli
from esrun.estimators.rebar import relaxed_per_sample


class ControlVariate(NamedTuple):
    """``init(key, shape) -> params``; ``apply(params, z [*S]) -> []``; ``f_evals`` calls of ``f`` per apply."""

    init: Callable[[jax.Array, tuple], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    f_evals: int = 0


def _mlp_init(key, sizes):
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, m, n) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        # The output layer starts at zero so that c_phi = 0 (plain REINFORCE) before any training.
        w = jnp.zeros((m, n)) if last else jax.random.normal(k, (m, n)) / jnp.sqrt(m)
        params.append({"w": w, "b": jnp.zeros((n,))})
    return params


def _mlp_apply(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return (x @ params[-1]["w"] + params[-1]["b"])[0]


def mlp_control_variate(hidden: Sequence[int] = (16,)) -> ControlVariate:
    """A small MLP ``c_phi(z) = MLP(sigmoid(z))`` (tanh hidden layers, zero-initialized output), ``f_evals = 0``."""

    def init(key, shape):
        return _mlp_init(key, (math.prod(shape), *hidden, 1))

    def apply(params, z):
        return _mlp_apply(params, jax.nn.sigmoid(jnp.ravel(z)))

    return ControlVariate(init, apply, 0)


def rebar_mlp_control_variate(f: Objective, hidden: Sequence[int] = (8,), eta: float = 1.0,
                              temperature: float = 0.5) -> ControlVariate:
    """``c(z) = eta f(sigmoid(z / lambda)) + MLP(z)``, params ``{"eta", "log_temperature", "mlp"}``; ``f_evals = 1``.

    REBAR's control variate plus a learned residual, as in the discrete experiments of Grathwohl et al. (2018).
    """

    def init(key, shape):
        d = math.prod(shape)
        return {"eta": jnp.asarray(eta, float), "log_temperature": jnp.log(jnp.asarray(temperature, float)),
                "mlp": _mlp_init(key, (d, *hidden, 1))}

    def apply(params, z):
        lam = jnp.exp(params["log_temperature"])
        return params["eta"] * f(jax.nn.sigmoid(z / lam)) + _mlp_apply(params["mlp"], jnp.ravel(z))

    return ControlVariate(init, apply, 1)


def _as_cv(control_variate) -> ControlVariate:
    if isinstance(control_variate, ControlVariate):
        return control_variate
    return ControlVariate(lambda key, shape: None, control_variate, 0)


def _example_options(dist):
    cv = mlp_control_variate()
    return {"control_variate": cv, "cv_params": cv.init(jax.random.PRNGKey(0), jnp.shape(dist.logits))}


@register("relax", supports=("bernoulli",), unbiased=True, needs_grad_f=False, example_options=_example_options)
def relax(key: jax.Array, f: Objective, dist: Bernoulli, num_samples: int,
          control_variate: ControlVariate | Callable[[Any, jax.Array], jax.Array], cv_params: Any,
          return_cv_grad: bool = False) -> Estimate | tuple[Estimate, Any]:
    """RELAX estimator of ``grad_logits E_{b ~ Bernoulli(sigmoid(logits))}[f(b)]`` (Grathwohl et al., 2018).

    Equation (per sample)::

        g = [f(b) - c_phi(z~)] (b - sigmoid(theta)) + grad_theta c_phi(z) - grad_theta c_phi(z~)

    Args:
      key: PRNG key.
      f: ``[*S] -> []`` on {0,1} samples (need not be differentiable; a control variate that calls ``f`` on
        relaxed inputs makes it so).
      dist: ``Bernoulli(logits)``, ``logits: [*S]``.
      num_samples: ``n`` (static).
      control_variate: a :class:`ControlVariate` (or a bare ``apply(params, z) -> []``).
      cv_params: its parameters (a pytree).
      return_cv_grad: static; also return ``grad_{cv_params} mean_s ||g_s||^2``, the variance gradient.

    Returns:
      ``Estimate(grad [*S], per_sample [n, *S], num_evals = n (1 + 2 f_evals))``, or
      ``(Estimate, cv_grad)`` when ``return_cv_grad``. Unbiased for every ``c_phi``.
    """
    cv = _as_cv(control_variate)
    phi = jax.lax.stop_gradient(dist.logits)
    evals = num_samples * (1 + 2 * cv.f_evals)

    def second_moment(params):
        per = relaxed_per_sample(key, f, phi, num_samples, cv.apply, params)
        return jnp.mean(jnp.sum(per.reshape(num_samples, -1) ** 2, -1)), per

    if not return_cv_grad:
        _, per = second_moment(cv_params)
        return Estimate(Bernoulli(per.mean(0)), Bernoulli(per), evals)
    (_, per), cv_grad = jax.value_and_grad(second_moment, has_aux=True)(cv_params)
    return Estimate(Bernoulli(per.mean(0)), Bernoulli(per), evals), cv_grad
