"""Fitness functions behind one interface (``esrun.tasks.base.Task``), looked up by ``task.type`` in ``TASKS``."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

# Import order is registration order (TASKS lists the task types in it).
# isort: off
from esrun.tasks import gym as _gym  # noqa: F401  (registers "gym")
from esrun.tasks import synthetic as _synthetic  # noqa: F401  (registers "synthetic")
from esrun.tasks import brax_env as _brax_env  # noqa: F401  (registers "brax"; brax itself is imported lazily)
# isort: on
from esrun.tasks.base import TASKS, ChunkResult, Task
from esrun.tasks.mujoco_pool import make_mujoco_task
from esrun.tasks.synthetic import OBJECTIVES

if TYPE_CHECKING:
    from esrun.config.schema import Config

GYM_ENGINES: dict[str, Callable[..., Task]] = {"mujoco": make_mujoco_task}
"""``task.engine`` (other than gymnasium) -> task factory for the same Gymnasium env ids."""

try:  # JAX-native environments (envs/) register "jax_env"
    importlib.import_module("esrun.tasks.jax_env")
except ModuleNotFoundError as exc:  # pragma: no cover
    if exc.name not in ("esrun.tasks.jax_env", "envs"):
        raise


def env_exists(task_type: str, env_id: str) -> tuple[bool, list[str]]:
    """Whether ``env_id`` names an environment of ``task_type``, and the known ids (for suggestions)."""
    if task_type == "brax":
        return _brax_env.env_exists(env_id)
    if task_type == "jax_env":
        try:
            from envs import JAX_ENVS
        except ImportError:
            return False, []
        return env_id in JAX_ENVS, sorted(JAX_ENVS)
    import gymnasium as gym

    try:
        import envs  # noqa: F401  (registers esrun/ ids with gymnasium)
    except ImportError:
        pass
    known = sorted(gym.registry)
    return env_id in gym.registry, known


def build_task(cfg: Config) -> Task:
    """The task for a validated Config (policy built inside for environment tasks)."""
    engine = getattr(cfg.task, "engine", "gymnasium")
    factory = GYM_ENGINES[engine] if engine != "gymnasium" else TASKS[cfg.task.type]
    return factory(cfg.task, cfg.policy)


__all__ = ["TASKS", "Task", "ChunkResult", "OBJECTIVES", "build_task", "env_exists"]
