"""MLP and linear policies over a flat parameter vector.

Layer l maps ``h_{l+1} = act(h_l W_l + b_l)`` (no activation on the last layer), with ``W_l: [d_l, d_{l+1}]``.
The flat vector concatenates ``(W_0, b_0, W_1, b_1, ...)`` in that order, row-major; ``num_params = sum d_l
d_{l+1} + d_{l+1}``. A linear policy is the MLP with no hidden layer. With ``bias=False`` every ``b_l`` is absent
(``h_{l+1} = act(h_l W_l)``, ``num_params = sum d_l d_{l+1}``): the linear policy is then ARS's ``a = M x`` with
``M = W_0^T``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from esrun.errors import ConfigError
from esrun.policies.heads import HEADS, ActionSpec

if TYPE_CHECKING:
    from esrun.config.schema import PolicyConfig

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
}


@dataclass(frozen=True)
class Policy:
    """A pure policy: static layer sizes, activation and head; parameters live outside, flat."""

    sizes: tuple[int, ...]
    activation: str
    spec: ActionSpec
    init_scale: float = 1.0
    squash: str = "tanh"  # continuous head: "tanh", "clip" or "none"
    bias: bool = True  # False: no b_l (ARS's M x)

    @property
    def num_params(self) -> int:
        return sum(a * b + (b if self.bias else 0) for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def init(self, key: jax.Array) -> jax.Array:
        """Weights ~ N(0, init_scale^2 / fan_in), biases 0: ``[num_params]`` float32 (init_scale 0: all zeros)."""
        parts = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            key, sub = jax.random.split(key)
            parts.append((jax.random.normal(sub, (a * b,)) * self.init_scale / np.sqrt(a)).astype(jnp.float32))
            if self.bias:
                parts.append(jnp.zeros((b,), jnp.float32))
        return jnp.concatenate(parts)

    def unravel(self, params: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
        """``[(W_l [d_l, d_{l+1}], b_l [d_{l+1}])]``; without biases ``b_l`` is a zero vector (not a parameter)."""
        layers, i = [], 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            w = params[i : i + a * b].reshape(a, b)
            i += a * b
            if self.bias:
                layers.append((w, params[i : i + b]))
                i += b
            else:
                layers.append((w, jnp.zeros((b,), params.dtype)))
        return layers

    def logits(self, params: jax.Array, obs: jax.Array) -> jax.Array:
        """Network output before the head: ``params [P], obs [obs_dim] -> [outputs]``."""
        act = ACTIVATIONS[self.activation]
        h = obs.astype(jnp.float32)
        layers = self.unravel(params)
        for w, b in layers[:-1]:
            h = act(h @ w + b)
        w, b = layers[-1]
        return h @ w + b

    def apply(self, params: jax.Array, obs: jax.Array) -> jax.Array:
        """``params [P], obs [obs_dim] -> action`` (int32 scalar or ``[dim]`` float32)."""
        return HEADS[self.spec.kind](self.logits(params, obs), self.spec, self.squash)


def _mlp(cfg, obs_dim: int, spec: ActionSpec) -> Policy:
    return Policy((obs_dim, *cfg.hidden, spec.outputs), cfg.activation, spec, cfg.init_scale,
                  getattr(cfg, "squash", "tanh"), getattr(cfg, "bias", True))


def _linear(cfg, obs_dim: int, spec: ActionSpec) -> Policy:
    return Policy((obs_dim, spec.outputs), cfg.activation, spec, cfg.init_scale, getattr(cfg, "squash", "tanh"),
                  getattr(cfg, "bias", True))


POLICIES: dict[str, Callable[..., Policy]] = {"mlp": _mlp, "linear": _linear}


def build_policy(cfg: PolicyConfig, obs_dim: int, spec: ActionSpec) -> Policy:
    """Policy for ``cfg`` (a PolicyConfig: type, hidden, activation, head, init_scale)."""
    head = getattr(cfg, "head", "auto")
    if head != "auto" and head != spec.kind:
        raise ConfigError(f"policy.head = {head!r} does not fit the environment's {spec.kind} action space")
    return POLICIES[cfg.type](cfg, obs_dim, spec)
