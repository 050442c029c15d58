"""The task interface: fitness of a slice of population members, behind one signature.

A task owns whatever produces fitness (a Gymnasium vector environment, a jitted JAX rollout, a synthetic
objective). Tasks are built from the config on every worker, so they are cheap to construct and hold no
run state: everything that changes (observation statistics) is passed in and returned.

    evaluate(params: [C, P], key, obs_stats) -> ChunkResult
        fitness [C] float64 (maximized; NaN allowed, the runner ranks it worst), steps [C] int64
        (environment steps spent per member; 0 for synthetic objectives), and ``obs_delta``: the
        observation statistics gathered by this chunk (``None`` when the task does not normalize).

    evaluate_policy(params: [P], key, episodes, obs_stats) -> [episodes] returns of the mean policy
        (``has_eval`` says whether the task has a notion of evaluation return).

``C`` is the evaluation chunk size; the runner always calls ``evaluate`` on fixed-size chunks so that the
shapes of jitted computations, and with them the floating-point results, never depend on how the population is
split between workers. ``key`` is derived by the caller from ``(run seed, generation, chunk index)``.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import jax

    from esrun.tasks.obs_norm import ObsStats

TASKS: dict[str, Callable[..., Task]] = {}
"""type name (config ``task.type``) -> factory(task_config, policy_config) -> Task."""


def register(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    def wrap(factory: Callable[..., Task]) -> Callable[..., Task]:
        if name in TASKS:
            raise ValueError(f"task type {name!r} registered twice")
        TASKS[name] = factory
        return factory

    return wrap


class ChunkResult(NamedTuple):
    fitness: np.ndarray  # [C] float64
    steps: np.ndarray  # [C] int64
    obs_delta: Any = None  # esrun.tasks.obs_norm.ObsStats or None


class Task(abc.ABC):
    """Abstract task; concrete tasks are final."""

    num_params: int
    has_eval: bool = False
    obs_dim: int | None = None  # set by tasks with observation normalization

    @abc.abstractmethod
    def initial_params(self, key: jax.Array) -> np.ndarray:
        """Starting point x0: ``[num_params]`` float32."""

    @abc.abstractmethod
    def evaluate(self, params: jax.Array | np.ndarray, key: jax.Array,
                 obs_stats: ObsStats | None = None) -> ChunkResult:
        """Fitness of the members whose parameters are ``params: [C, P]``."""

    def evaluate_policy(self, params: jax.Array | np.ndarray, key: jax.Array, episodes: int,
                        obs_stats: ObsStats | None = None) -> np.ndarray:
        """Returns ``[episodes]`` of the single parameter vector ``params: [P]``."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation return")

    def close(self) -> None:  # noqa: B027 (an optional hook: a task that holds no resource keeps it)
        """Release environments."""
