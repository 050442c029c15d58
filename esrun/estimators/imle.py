"""Implicit Maximum Likelihood Estimation (Niepert et al., 2021) and Adaptive I-MLE (Minervini et al., 2022).

A layer ``theta -> z = MAP(theta + eps)``, ``eps ~ rho`` (perturb-and-MAP), whose backward pass replaces the zero
Jacobian of ``MAP`` by the finite difference of perturb-and-MAP marginals toward the target ``theta' = theta -
lambda g``, ``g = dL/dz``::

    grad_theta ~= (1 / lambda) (1/S) sum_i [ MAP(theta + eps_i) - MAP(theta - lambda g_i + eps_i) ]

(``mu(theta) - mu(theta')``, the gradient of the implicit maximum-likelihood objective, with the marginals ``mu``
replaced by perturb-and-MAP samples). The source absorbs ``1/lambda`` into the learning rate; here it is applied
(``scale_by_lambda=True``, the default) so that the estimate has the units of a gradient and tends, for ``k = 1``
top-k, Gumbel noise and a linear loss ``c^T z``, to ``(diag p - p p^T) c`` as ``lambda -> 0``. Biased.

AIMLE adapts ``lambda`` so that the size of the perturbation difference tracks ``target_norm`` and optionally uses
centered differences ``(1 / 2 lambda) [MAP(theta + lambda g + eps) - MAP(theta - lambda g + eps)]``.

Convention for ``S`` samples: the layer returns ``z: [S, *theta.shape]`` and the downstream loss is taken to be the
*mean* over the ``S`` samples, so the per-sample downstream gradient is ``g_i = S * cotangent_i``; the backward
pass is then exactly the equation above and, in the small-``lambda`` regime, linear in the cotangent.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from esrun.estimators.base import LAYERS, register


def _gumbel(key, shape, k, temperature, steps):
    return temperature * jax.random.gumbel(key, shape)


def _sum_of_gamma(key, shape, k, temperature, steps):
    """Sum-of-Gamma noise (Niepert et al., 2021): ``(tau / k) [sum_{i=1}^{s} Gamma(1/k, k/i) - log s]``.

    For top-k MAP problems a sum of ``k`` such variables is Gumbel-distributed.
    """
    i = jnp.arange(1, steps + 1, dtype=jnp.float32).reshape((steps,) + (1,) * len(shape))
    gam = jax.random.gamma(key, 1.0 / k, (steps, *shape)) * (k / i)
    return (temperature / k) * (gam.sum(0) - jnp.log(steps))


NOISES: dict[str, Callable] = {"gumbel": _gumbel, "sum_of_gamma": _sum_of_gamma}
"""name -> ``noise(key, shape, k, temperature, steps)``, the perturbation law ``rho``."""


def _perturbations(key, theta, num_samples, noise, noise_k, noise_temperature, sog_steps):
    return NOISES[noise](key, (num_samples, *jnp.shape(theta)), noise_k, noise_temperature, sog_steps).astype(
        jnp.result_type(theta, float))


def _make_layer(map_solver, num_samples, centered, scale_by_lambda):
    """custom_vjp ``(theta, eps [S,...], lam []) -> z [S,...]``; its ``lam`` cotangent is the measured norm."""
    solve = jax.vmap(map_solver)

    @jax.custom_vjp
    def layer(theta, eps, lam):
        return solve(theta + eps)

    def fwd(theta, eps, lam):
        z = solve(theta + eps)
        return z, (theta, eps, lam, z)

    def bwd(res, cot):
        theta, eps, lam, z = res
        g = num_samples * cot  # per-sample downstream gradient under the mean-loss convention
        if centered:
            diff = solve(theta + lam * g + eps) - solve(theta - lam * g + eps)
            scale = 2.0 * lam
        else:
            diff = z - solve(theta - lam * g + eps)
            scale = lam
        grad = diff.mean(0) / scale if scale_by_lambda else diff.mean(0)
        norm = jnp.sqrt(jnp.sum(diff.reshape(num_samples, -1) ** 2, -1)).mean()
        return grad, jnp.zeros_like(eps), norm.astype(jnp.result_type(lam))

    layer.defvjp(fwd, bwd)
    return layer


@register("imle", table=LAYERS, unbiased=False, needs_grad_f=True)
def imle(map_solver: Callable, num_samples: int = 1, lam: float = 1.0, noise: str = "gumbel", noise_k: int = 1,
         noise_temperature: float = 1.0, sog_steps: int = 10, scale_by_lambda: bool = True) -> Callable:
    """The I-MLE layer (Niepert et al., 2021): ``fn(theta, key) -> z: [S, *theta.shape]``.

    Forward: ``z_i = MAP(theta + eps_i)``, ``eps_i ~ rho`` (``noise``). Backward (cotangent ``G: [S, ...]``,
    ``g_i = S G_i``)::

        grad_theta = (1 / lambda) (1/S) sum_i [ z_i - MAP(theta - lambda g_i + eps_i) ]

    Args:
      map_solver: ``theta [*T] -> z [*T]`` (e.g. ``lambda s: solvers.top_k(s, k)``); vmapped over samples.
      num_samples: ``S`` perturbations (static).
      lam: ``lambda > 0``, the target step.
      noise: "gumbel" or "sum_of_gamma" (``noise_k`` = the ``k`` of top-k, ``sog_steps`` terms).
      noise_temperature: scale of the noise.
      scale_by_lambda: divide by ``lambda`` (True) or leave it to the learning rate as in the source (False).

    Returns:
      ``fn(theta, key) -> z [S, *T]``; each backward costs ``S`` extra MAP calls. Biased.
    """

    layer = _make_layer(map_solver, num_samples, False, scale_by_lambda)

    def fn(theta, key):
        eps = _perturbations(key, theta, num_samples, noise, noise_k, noise_temperature, sog_steps)
        return layer(theta, eps, jnp.asarray(lam, jnp.result_type(theta, float)))

    return jax.jit(fn)


class AimleState(NamedTuple):
    """Adaptive-lambda state (a pytree): ``lam []`` and the running mean ``norm_ema []`` of the measured norm."""

    lam: jax.Array
    norm_ema: jax.Array


class Aimle(NamedTuple):
    """``init() -> AimleState``; ``apply(theta, key, state) -> z [S, *T]``; ``update(state, state_grad) -> state``.

    ``jax.grad`` of a loss w.r.t. ``state`` (through ``apply``) returns an ``AimleState`` whose ``lam`` field holds the
    perturbation-difference norm measured in the backward pass (summed over the calls of ``apply``); ``update``
    turns it into the next ``lambda``.
    """

    init: Callable
    apply: Callable
    update: Callable


@register("aimle", table=LAYERS, unbiased=False, needs_grad_f=True)
def aimle(map_solver: Callable, num_samples: int = 1, target_norm: float = 1.0, lam_init: float = 1.0,
          lam_lr: float = 0.1, lam_min: float = 1e-3, ema: float = 0.9, centered: bool = True,
          noise: str = "gumbel", noise_k: int = 1, noise_temperature: float = 1.0, sog_steps: int = 10,
          scale_by_lambda: bool = True) -> Aimle:
    """Adaptive I-MLE (Minervini et al., 2022): I-MLE whose ``lambda`` tracks a target perturbation norm.

    Backward (centered, the default; ``g_i = S G_i``)::

        grad_theta = (1 / 2 lambda) (1/S) sum_i [ MAP(theta + lambda g_i + eps_i) - MAP(theta - lambda g_i + eps_i) ]

    (forward differences as in :func:`imle` with ``centered=False``). The measured norm
    ``m = (1/S) sum_i ||MAP(.) - MAP(.)||_2`` (how many components the finite difference moves: 0 when ``lambda``
    is too small to change any solution) updates the state by

        norm_ema <- ema norm_ema + (1 - ema) m,   lambda <- max(lam_min, lambda + lam_lr (target_norm - norm_ema)),

    so ``lambda`` grows while the difference is too sparse and shrinks while it is too dense.

    Returns:
      ``Aimle(init, apply, update)``; ``apply(theta, key, state) -> z [S, *T]``. Biased.
    """
    layer = _make_layer(map_solver, num_samples, centered, scale_by_lambda)

    def init():
        return AimleState(lam=jnp.asarray(lam_init, jnp.float32), norm_ema=jnp.asarray(target_norm, jnp.float32))

    def apply(theta, key, state):
        eps = _perturbations(key, theta, num_samples, noise, noise_k, noise_temperature, sog_steps)
        return layer(theta, eps, state.lam)  # norm_ema gets a zero cotangent

    def update(state, state_grad):
        measured = state_grad.lam
        norm_ema = ema * state.norm_ema + (1.0 - ema) * measured
        lam = jnp.maximum(lam_min, state.lam + lam_lr * (target_norm - norm_ema))
        return AimleState(lam=lam, norm_ema=norm_ema)

    return Aimle(init, jax.jit(apply), update)
