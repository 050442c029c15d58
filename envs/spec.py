"""What a functional JAX environment is: pure ``reset`` / ``step`` plus the static facts about its spaces.

Every environment in ``envs/`` is a module of pure functions over an immutable state pytree,

    reset(key, params) -> (state, obs: [obs_dim] float32)
    step(state, action, params) -> (state, obs: [obs_dim] float32, reward: [] float32,
                                    terminated: [] bool, truncated: [] bool)

where ``params`` is the environment's frozen ``Params`` NamedTuple of physical constants (Python floats, so they
are folded into the jitted program as constants) and ``state`` carries the time step ``t`` (int32) so that
``truncated`` is ``t >= params.max_steps`` exactly like Gymnasium's ``TimeLimit``. Both functions are written for a
single environment; batching is ``jax.vmap``'s job.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class ActionSpec(NamedTuple):
    """Action space of a JAX environment.

    ``kind="discrete"``: an action is an int32 scalar in ``[0, n)``.
    ``kind="continuous"``: an action is a ``[dim]`` float32 vector, clipped by the environment to ``[low, high]``.
    """

    kind: str
    n: int = 0
    dim: int = 0
    low: float = 0.0
    high: float = 0.0


class JaxEnv(NamedTuple):
    """One registered JAX environment: its pure functions, default constants and static space facts."""

    reset: Callable[..., Any]
    step: Callable[..., Any]
    params: Any  # the module's Params() with Gymnasium's defaults
    observation_dim: int
    observation_high: tuple  # symmetric Box bound per observation component, as Gymnasium declares it
    action_spec: ActionSpec

    @property
    def max_episode_steps(self) -> int:
        return int(self.params.max_steps)
