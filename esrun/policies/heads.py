"""Action specifications and the heads that turn network outputs into actions."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np


class ActionSpec(NamedTuple):
    """What a policy must output.

    kind "discrete": ``n`` actions, the policy returns an int32 scalar (argmax of ``n`` logits).
    kind "continuous": ``dim`` actions in [low, high], the policy returns ``[dim]`` float32 via
    ``low + (tanh(y) + 1) (high - low) / 2``.
    """

    kind: str
    n: int = 0
    dim: int = 0
    low: tuple | None = None
    high: tuple | None = None

    @property
    def outputs(self) -> int:
        return self.n if self.kind == "discrete" else self.dim

    @classmethod
    def from_gym_space(cls, space: Any) -> ActionSpec:
        import gymnasium as gym

        if isinstance(space, gym.spaces.Discrete):
            return cls(kind="discrete", n=int(space.n))
        if isinstance(space, gym.spaces.Box):
            low = np.broadcast_to(space.low, space.shape).astype(np.float32).ravel()
            high = np.broadcast_to(space.high, space.shape).astype(np.float32).ravel()
            return cls(kind="continuous", dim=int(np.prod(space.shape)), low=tuple(low), high=tuple(high))
        raise ValueError(f"unsupported action space {space}")


def discrete_head(logits: jnp.ndarray, spec: ActionSpec, squash: str = "tanh") -> jnp.ndarray:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def continuous_head(y: jnp.ndarray, spec: ActionSpec, squash: str = "tanh") -> jnp.ndarray:
    """``squash`` "tanh": low + (tanh(y) + 1) (high - low) / 2; "clip": clip(y, low, high); "none": y itself
    (ARS's raw M x: the env receives it unclipped — MuJoCo clamps ctrl to its range, Gymnasium's v5 control cost
    is computed on the raw action)."""
    if squash == "none":
        return y
    low = jnp.asarray(spec.low, jnp.float32)
    high = jnp.asarray(spec.high, jnp.float32)
    if squash == "clip":
        return jnp.clip(y, low, high)
    return low + (jnp.tanh(y) + 1.0) * 0.5 * (high - low)


HEADS = {"discrete": discrete_head, "continuous": continuous_head}
