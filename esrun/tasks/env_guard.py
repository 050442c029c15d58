"""A Gymnasium environment that fails one episode instead of the run.

Each slot of a synchronous vector environment is wrapped in :class:`FailureGuard`. When the wrapped
environment's ``step`` raises, or returns an observation with a NaN or an infinity, the guard ends the episode
(``terminated=True``) with a NaN reward, so the member running it gets a NaN fitness, which the runner ranks
worst and counts in ``fitness/nonfinite_total``; the vector environment's autoreset then calls ``reset``, and
the guard replaces the broken environment by a fresh one before resetting it. Everything else passes through.

Determinism: a rebuilt environment is reset with ``seed = (s * 1_000_003 + k) mod 2^32``, where ``s`` is the
last seed the slot was reset with and ``k`` counts its rebuilds since, so a rerun that meets the same failures
reproduces the same episodes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

FailureHook = Callable[[str], None]
"""Told ``"<ExceptionType>: <message>"`` (or ``"non-finite observation"``) each time a slot fails."""


def describe(exc: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class FailureGuard(gym.Wrapper):
    """One vector slot; ``make`` builds a fresh inner environment, ``on_failure`` hears of each failure."""

    def __init__(self, env: gym.Env, make: Callable[[], gym.Env], on_failure: FailureHook | None = None):
        super().__init__(env)
        self._make = make
        self._on_failure = on_failure
        self._broken = False
        self._seed = 0
        self._rebuilds = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._seed, self._rebuilds = int(seed), 0
        if self._broken:
            try:
                self.env.close()
            except Exception:  # noqa: BLE001 - a broken environment may fail to close; it is dropped anyway
                pass
            self.env = self._make()
            self._broken = False
            self._rebuilds += 1
            if seed is None:
                seed = (self._seed * 1_000_003 + self._rebuilds) % 2**32
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as exc:  # noqa: BLE001 - any failure of user environment code fails this episode only
            return self._fail(describe(exc))
        if not np.all(np.isfinite(np.asarray(obs, np.float64))):
            return self._fail("non-finite observation")
        return obs, reward, terminated, truncated, info

    def _fail(self, why: str) -> tuple[Any, float, bool, bool, dict]:
        self._broken = True
        if self._on_failure is not None:
            self._on_failure(why)
        space = self.observation_space
        return np.zeros(space.shape, space.dtype), float("nan"), True, False, {}
