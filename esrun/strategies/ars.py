"""Augmented Random Search (Mania, Guy & Recht, 2018) on esrun's seed protocol.

ARS samples N directions per iteration and evaluates each with both signs (the antithetic layout of
:mod:`esrun.strategies.openai_es`, so workers rebuild any member from the seed alone):

    eps_k   = noise(run_key, g, k)                       k = 0 .. N-1, [P]
    member 2k   = mean + nu * eps_k   -> reward r+_k
    member 2k+1 = mean - nu * eps_k   -> reward r-_k

It keeps the b directions with the largest max(r+_k, r-_k) (b = N: all of them) and steps

    mean <- mean + alpha / (b * sigma_R) * sum_{k in top b} (r+_k - r-_k) eps_k

with sigma_R the standard deviation (ddof 0) of the 2b rewards used. Plain SGD, no fitness shaping, constant nu.

The four variants of the paper are combinations of two switches: V1 / V2 is ``task.obs_norm`` (V2 normalizes
states with the running mean and std of every state seen so far, :mod:`esrun.tasks.obs_norm`; the statistics of
iteration j are frozen while it runs, as in the paper); "-t" is ``top_directions < directions``. The policy of
the paper is a linear map M x initialized at M = 0, its output sent to the env as is, on a normalized state that
is not clipped: ``policy.type: linear``, ``policy.init_scale: 0``, ``policy.bias: false``, ``policy.squash: none``,
``task.obs_clip: null`` (configs/hopper.yaml). esrun's defaults differ: a bias (M acting on [x, 1]), inputs
clipped to [-5, 5]; ``squash: clip`` clips M x to the action bounds before the env (and its control cost) sees it.

Config mapping: ``strategy.population = 2 N``, ``strategy.top_directions = b``, ``strategy.sigma = nu``,
``strategy.learning_rate = alpha``. Ties in max(r+, r-) go to the lower direction index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from esrun.strategies.base import Strategy, register
from esrun.strategies.openai_es import noise

if TYPE_CHECKING:
    from esrun.config.schema import StrategyConfig


class ARSState(NamedTuple):
    key: jax.Array  # [2] uint32 run key
    generation: jax.Array  # [] int32
    mean: jax.Array  # [P] float32 (the flat policy parameters, M)


def directions_noise(state: ARSState, index: jax.Array, num_params: int) -> jax.Array:
    """eps for direction indices ``index: [n]`` -> ``[n, P]``: the only place ARS draws noise."""
    return jax.vmap(lambda k: noise(state.key, state.generation, k, num_params))(index)


def top_directions(r_plus: jax.Array, r_minus: jax.Array, b: int) -> jax.Array:
    """Indices ``[b]`` of the b directions with the largest max(r+, r-), best first (ties: lower index)."""
    score = jnp.maximum(r_plus, r_minus)
    return jnp.argsort(-score, stable=True)[:b].astype(jnp.int32)


def ars_step(r_plus: jax.Array, r_minus: jax.Array, eps: jax.Array,
             learning_rate: float) -> tuple[jax.Array, jax.Array]:
    """alpha / (b sigma_R) * sum_k (r+_k - r-_k) eps_k over the b rows given.

    Args: ``r_plus, r_minus: [b]`` rewards of the kept directions, ``eps: [b, P]`` their noise.
    Returns ``(step [P], sigma_R [])``; the step is 0 when sigma_R = 0 (all rewards equal: no information).
    """
    if r_plus.ndim != 1 or eps.ndim != 2 or eps.shape[0] != r_plus.shape[0]:
        raise ValueError(f"ars_step: r_plus {r_plus.shape}, eps {eps.shape}: want [b] and [b, P]")
    b = r_plus.shape[0]
    sigma_r = jnp.std(jnp.concatenate([r_plus, r_minus]))
    scale = jnp.where(sigma_r > 0, learning_rate / (b * jnp.where(sigma_r > 0, sigma_r, 1.0)), 0.0)
    return scale * ((r_plus - r_minus) @ eps), sigma_r


@dataclass(frozen=True)
class ARS(Strategy):
    num_params: int
    population: int  # 2 N
    sigma: float = 0.025  # nu
    learning_rate: float = 0.01  # alpha
    top: int | None = None  # b; None = N

    @property
    def directions(self) -> int:
        return self.population // 2

    @property
    def b(self) -> int:
        return self.directions if self.top is None else self.top

    def init(self, key: jax.Array, x0: jax.Array) -> ARSState:
        return ARSState(key=jnp.asarray(key, jnp.uint32), generation=jnp.zeros((), jnp.int32),
                        mean=jnp.asarray(x0, jnp.float32))

    def member_params(self, state: ARSState, members: jax.Array) -> jax.Array:
        members = jnp.asarray(members, jnp.int32)
        sign = 1.0 - 2.0 * (members % 2).astype(jnp.float32)
        eps = directions_noise(state, members // 2, self.num_params)
        return state.mean[None, :] + self.sigma * sign[:, None] * eps

    def range_params(self, state: ARSState, start: jax.Array, size: int) -> jax.Array:
        """Members ``start .. start + size - 1`` (``[size, P]``); an even range draws each direction once."""
        if size % 2:
            return self.member_params(state, start + jnp.arange(size, dtype=jnp.int32))
        eps = directions_noise(state, start // 2 + jnp.arange(size // 2, dtype=jnp.int32), self.num_params)
        step = self.sigma * eps
        both = jnp.stack([state.mean[None, :] + step, state.mean[None, :] + (-step)], axis=1)
        return both.reshape(size, self.num_params)

    def mean(self, state: ARSState) -> jax.Array:
        return state.mean

    def tell(self, state: ARSState, fitness: jax.Array) -> tuple[ARSState, dict[str, jax.Array]]:
        fitness = jnp.asarray(fitness, jnp.float32)
        r_plus, r_minus = fitness[0::2], fitness[1::2]
        keep = top_directions(r_plus, r_minus, self.b)
        eps = directions_noise(state, keep, self.num_params)
        step, sigma_r = ars_step(r_plus[keep], r_minus[keep], eps, self.learning_rate)
        metrics = {
            "sigma_rewards": sigma_r,
            "step_norm": jnp.linalg.norm(step),
            "kept_min_score": jnp.maximum(r_plus[keep], r_minus[keep]).min(),
        }
        return state._replace(generation=state.generation + 1, mean=state.mean + step), metrics


@register("ars")
def make_ars(num_params: int, population: int, cfg: StrategyConfig) -> ARS:
    return ARS(num_params=num_params, population=population, sigma=cfg.sigma, learning_rate=cfg.learning_rate,
               top=cfg.top_directions)
