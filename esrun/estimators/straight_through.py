"""Straight-through estimation (Bengio et al., 2013): a hard forward pass with a smooth surrogate's backward.

For a hard decision ``z = H(a)`` (step function, argmax) the backward pass uses ``dz/da := dH~(a)/da``::

    grad_theta J ~= E_xi[ dL/dz  dH~(a_theta(xi))/da  da_theta(xi)/dtheta ].

This is not an identity: straight-through is biased. On ``b ~ Bernoulli(p)``, ``f(b) = (b - t)^2`` with
``b = H(p - u)`` and the identity surrogate it returns ``2 (p - t)`` in expectation where the true ``d/dp E f`` is
``1 - 2 t``.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from esrun.estimators.base import LAYERS, register


def heaviside(a: jax.Array) -> jax.Array:
    """``1[a > 0]`` as floats, shape of ``a``."""
    return (a > 0).astype(jnp.result_type(a, float))


def one_hot_argmax(a: jax.Array) -> jax.Array:
    """One-hot of ``argmax`` over the last axis, shape of ``a``."""
    return jax.nn.one_hot(jnp.argmax(a, axis=-1), a.shape[-1], dtype=jnp.result_type(a, float))


SURROGATES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": lambda a: a,
    "sigmoid": jax.nn.sigmoid,
    "softmax": lambda a: jax.nn.softmax(a, axis=-1),
}
"""name -> smooth surrogate ``H~`` whose derivative the backward pass uses."""

HARD_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {"heaviside": heaviside, "argmax": one_hot_argmax}
"""name -> hard decision ``H``."""


@register("straight_through", table=LAYERS, unbiased=False, needs_grad_f=True)
def straight_through(hard_fn: Callable | str, surrogate_fn: Callable | str = "identity") -> Callable:
    """Returns ``fn(a) = hard_fn(a)`` whose VJP is that of ``surrogate_fn`` (Bengio et al., 2013).

    Args:
      hard_fn: ``[*A] -> [*Z]`` hard decision, or a name in ``HARD_FNS`` ("heaviside", "argmax").
      surrogate_fn: ``[*A] -> [*Z]`` smooth surrogate, or a name in ``SURROGATES`` ("identity", "sigmoid",
        "softmax").

    Returns:
      ``fn: [*A] -> [*Z]``: forward ``hard_fn(a)`` exactly; backward ``vjp(surrogate_fn, a)``. One evaluation of the
      downstream loss per sample; biased.
    """
    hard = HARD_FNS[hard_fn] if isinstance(hard_fn, str) else hard_fn
    surrogate = SURROGATES[surrogate_fn] if isinstance(surrogate_fn, str) else surrogate_fn

    @jax.custom_vjp
    def fn(a):
        return hard(a)

    def fwd(a):
        return hard(a), a

    def bwd(a, g):
        _, vjp = jax.vjp(surrogate, a)
        return vjp(g)

    fn.defvjp(fwd, bwd)
    return fn
