"""Synthetic objectives over R^d (minimized; the task returns fitness = -f(x), its one sign flip).

    sphere          f(x) = sum x_i^2                                              min 0 at 0
    rastrigin       f(x) = 10 d + sum (x_i^2 - 10 cos(2 pi x_i))                  min 0 at 0
    rosenbrock      f(x) = sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2              min 0 at 1
    ackley          f(x) = -20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos 2 pi x) + 20 + e   min 0 at 0
    styblinski_tang f(x) = sum (x_i^4 - 16 x_i^2 + 5 x_i) / 2 + 39.16617 d        min ~0 at x_i = -2.903534
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from esrun.tasks.base import ChunkResult, Task, register

if TYPE_CHECKING:

    from esrun.config.schema import PolicyConfig, SyntheticTaskConfig
    from esrun.tasks.obs_norm import ObsStats


def sphere(x: jax.Array) -> jax.Array:
    return jnp.sum(x**2)


def rastrigin(x: jax.Array) -> jax.Array:
    return 10.0 * x.shape[-1] + jnp.sum(x**2 - 10.0 * jnp.cos(2 * jnp.pi * x))


def rosenbrock(x: jax.Array) -> jax.Array:
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def ackley(x: jax.Array) -> jax.Array:
    return (
        -20.0 * jnp.exp(-0.2 * jnp.sqrt(jnp.mean(x**2)))
        - jnp.exp(jnp.mean(jnp.cos(2 * jnp.pi * x)))
        + 20.0
        + jnp.e
    )


def styblinski_tang(x: jax.Array) -> jax.Array:
    return jnp.sum(x**4 - 16.0 * x**2 + 5.0 * x) / 2.0 + 39.16616570377142 * x.shape[-1]


OBJECTIVES = {
    "sphere": sphere,
    "rastrigin": rastrigin,
    "rosenbrock": rosenbrock,
    "ackley": ackley,
    "styblinski_tang": styblinski_tang,
}


class SyntheticTask(Task):
    """Fitness of a chunk ``[C, d]`` is ``-f(x)`` per member, one jitted vmapped call."""

    has_eval = True

    def __init__(self, objective: str, dim: int, init_scale: float):
        self.objective, self.num_params, self.init_scale = objective, dim, init_scale
        f = OBJECTIVES[objective]
        self._batch = jax.jit(jax.vmap(lambda x: -f(x)))
        self._single = jax.jit(lambda x: -f(x))

    def initial_params(self, key: jax.Array) -> np.ndarray:
        x0 = jax.random.uniform(key, (self.num_params,), minval=-self.init_scale, maxval=self.init_scale)
        return np.asarray(x0, np.float32)

    def evaluate(self, params: jax.Array | np.ndarray, key: jax.Array,
                 obs_stats: ObsStats | None = None) -> ChunkResult:
        fit = np.asarray(self._batch(params), np.float64)
        return ChunkResult(fit, np.zeros(len(fit), np.int64), None)

    def evaluate_policy(self, params: jax.Array | np.ndarray, key: jax.Array, episodes: int = 1,
                        obs_stats: ObsStats | None = None) -> np.ndarray:
        return np.full(episodes, float(self._single(jnp.asarray(params))))


@register("synthetic")
def make_synthetic(task_cfg: SyntheticTaskConfig, policy_cfg: PolicyConfig) -> SyntheticTask:
    return SyntheticTask(task_cfg.objective, task_cfg.dim, task_cfg.init_scale)
