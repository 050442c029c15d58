"""A ``gymnasium.Env`` around one functional JAX environment, so the ``esrun/`` ids work with ``gymnasium.make``.

The adapter holds the current JAX state and calls the jitted pure ``step``; it reports ``terminated`` only and
leaves truncation to the ``TimeLimit`` wrapper that ``gymnasium.make`` adds (so ``max_episode_steps=`` overrides
behave as for Gymnasium's own environments). ``reset(seed=s)`` is deterministic in ``s``: the JAX key is drawn
from the seeded ``np_random``. Its observations are float32 as Gymnasium's, and ``unwrapped.state`` is the
environment's physical state as a float64 numpy vector (the same layout Gymnasium's classic-control envs expose).
"""
from __future__ import annotations

from typing import Any

import gymnasium
import jax
import numpy as np
from gymnasium import spaces


class JaxGymEnv(gymnasium.Env):
    metadata = {"render_modes": []}

    def __init__(self, env_id: str, render_mode: str | None = None):
        from envs.registry import JAX_ENVS

        self.env_id = env_id
        self._env = JAX_ENVS[env_id]
        # Truncation is TimeLimit's job here: make the inner counter never fire.
        self._params = self._env.params._replace(max_steps=np.iinfo(np.int32).max)
        high = np.array(self._env.observation_high, np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        spec = self._env.action_spec
        if spec.kind == "discrete":
            self.action_space = spaces.Discrete(spec.n)
        else:
            self.action_space = spaces.Box(spec.low, spec.high, shape=(spec.dim,), dtype=np.float32)
        self.render_mode = render_mode
        self._reset = jax.jit(self._env.reset, static_argnums=1)
        self._step = jax.jit(self._env.step, static_argnums=2)
        self._state: Any = None  # the JAX env's state pytree after reset

    @property
    def state(self) -> np.ndarray:
        leaves = [np.asarray(x, np.float64).reshape(-1) for x in self._state[:-1]]
        return np.concatenate(leaves)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        key = jax.random.PRNGKey(int(self.np_random.integers(0, 2**31 - 1)))
        self._state, obs = self._reset(key, self._params)
        return np.asarray(obs, np.float32), {}

    def step(self, action):
        assert self._state is not None, "call reset before step"
        action = np.asarray(action, np.int32 if self._env.action_spec.kind == "discrete" else np.float32)
        self._state, obs, reward, terminated, _ = self._step(self._state, action, self._params)
        return np.asarray(obs, np.float32), float(reward), bool(terminated), False, {}
