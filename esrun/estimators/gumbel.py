"""Gumbel-softmax and Gumbel-sigmoid (binary concrete) relaxations (Jang et al., 2017; Maddison et al., 2017).

Categorical logits ``l: [*B, K]``, ``g_i = -log(-log u_i)``, ``u_i ~ U(0,1)``::

    y_i = exp((l_i + g_i) / tau) / sum_j exp((l_j + g_j) / tau),

a differentiable function of ``l`` whose pathwise gradient ``E_g[df/dy dy/dl]`` estimates the gradient of the
*relaxed* objective: biased for ``tau > 0`` (the bias shrinks as ``tau -> 0`` while the variance grows).
``argmax_i(l_i + g_i)`` is an exact sample (Gumbel-max): ``P(argmax = i) = softmax(l)_i``.

Binary case, logits ``a: [*B]``, logistic noise ``lambda = log u - log(1 - u)``::

    y = sigmoid((a + lambda) / tau),    P(a + lambda > 0) = sigmoid(a).

Numerics: ``u`` is clipped to ``[tiny, 1 - eps]`` so the noise is finite at ``u = 0`` or ``1``, the temperature is
floored at ``1e-12``, and softmax / sigmoid are evaluated in their stable forms, so values and gradients stay
finite at ``tau -> 0`` and for logits of magnitude ``1e4``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from esrun.estimators.base import LAYERS, register

MIN_TEMPERATURE = 1e-12


def _clip_uniform(u: jax.Array) -> jax.Array:
    fi = jnp.finfo(jnp.result_type(u, float))
    return jnp.clip(u, fi.tiny, 1.0 - fi.epsneg)


def gumbel_noise(u: jax.Array) -> jax.Array:
    """``g = -log(-log u)``, finite for every ``u`` in ``[0, 1]``."""
    return -jnp.log(-jnp.log(_clip_uniform(u)))


def logistic_noise(u: jax.Array) -> jax.Array:
    """``lambda = log u - log(1 - u)``, finite for every ``u`` in ``[0, 1]``."""
    u = _clip_uniform(u)
    return jnp.log(u) - jnp.log1p(-u)


def _uniform(key, u, shape, dtype):
    if u is None:
        return jax.random.uniform(key, shape, dtype)
    return jnp.broadcast_to(jnp.asarray(u, dtype), shape)


def _safe_temperature(temperature, dtype):
    return jnp.maximum(jnp.asarray(temperature, dtype), MIN_TEMPERATURE)


@register("gumbel_softmax", table=LAYERS, unbiased=False, needs_grad_f=True)
def gumbel_softmax(key: jax.Array, logits: jax.Array, temperature: ArrayLike, hard: bool = False,
                   u: jax.Array | None = None) -> jax.Array:
    """A Gumbel-softmax (concrete) sample ``y: [*B, K]`` of ``Categorical(softmax(logits))``.

    Equation: ``y = softmax((logits + g) / tau)``, ``g = -log(-log u)``, ``u ~ U(0,1)^{[*B, K]}``.

    Args:
      key: PRNG key (ignored when ``u`` is given).
      logits: ``[*B, K]``.
      temperature: ``tau > 0`` (scalar or broadcastable array; floored at ``1e-12``).
      hard: static; if True the forward value is ``one_hot(argmax y)`` (an exact Gumbel-max sample) and the
        backward is that of ``y`` (straight-through Gumbel-softmax).
      u: optional uniforms ``[*B, K]`` to use instead of drawing from ``key`` (tests, common random numbers).

    Returns:
      ``y: [*B, K]``. The pathwise gradient through ``y`` is biased for ``tau > 0``; one evaluation of the
      downstream function per sample (Jang et al., 2017; Maddison et al., 2017).
    """
    logits = jnp.asarray(logits)
    dtype = jnp.result_type(logits, float)
    u = _uniform(key, u, logits.shape, dtype)
    y = jax.nn.softmax((logits + gumbel_noise(u)) / _safe_temperature(temperature, dtype), axis=-1)
    if not hard:
        return y
    y_hard = jax.nn.one_hot(jnp.argmax(y, axis=-1), logits.shape[-1], dtype=dtype)
    return y_hard + (y - jax.lax.stop_gradient(y))  # exactly y_hard forward


@register("gumbel_sigmoid", table=LAYERS, unbiased=False, needs_grad_f=True)
def gumbel_sigmoid(key: jax.Array, logits: jax.Array, temperature: ArrayLike, hard: bool = False,
                   u: jax.Array | None = None) -> jax.Array:
    """A binary-concrete (Gumbel-sigmoid) sample ``y: [*B]`` of ``Bernoulli(sigmoid(logits))``.

    Equation: ``y = sigmoid((a + lambda) / tau)``, ``lambda = log u - log(1 - u)``, ``u ~ U(0,1)^{[*B]}``.

    Args:
      key: PRNG key (ignored when ``u`` is given).
      logits: ``a: [*B]``.
      temperature: ``tau > 0`` (floored at ``1e-12``).
      hard: static; if True the forward value is ``1[a + lambda > 0]`` (an exact Bernoulli sample) and the
        backward is that of ``y``.
      u: optional uniforms ``[*B]`` instead of drawing from ``key``.

    Returns:
      ``y: [*B]``; pathwise gradients through it are biased for ``tau > 0`` (Maddison et al., 2017).
    """
    logits = jnp.asarray(logits)
    dtype = jnp.result_type(logits, float)
    u = _uniform(key, u, logits.shape, dtype)
    x = logits + logistic_noise(u)
    y = jax.nn.sigmoid(x / _safe_temperature(temperature, dtype))
    if not hard:
        return y
    y_hard = (x > 0).astype(dtype)
    return y_hard + (y - jax.lax.stop_gradient(y))
