"""Environments Gymnasium does not ship, under the ``esrun/`` namespace.

Functional JAX classic control with Gymnasium's exact dynamics (``envs.cartpole``, ``envs.pendulum``), for
jitted whole-population rollouts; see :mod:`envs.spec` for the ``reset`` / ``step`` contract and ``JAX_ENVS``
for the registry. Importing this package also registers the ids with Gymnasium.
"""
from envs.registry import JAX_ENVS, register_with_gymnasium
from envs.spec import ActionSpec, JaxEnv

register_with_gymnasium()

__all__ = ["JAX_ENVS", "ActionSpec", "JaxEnv", "register_with_gymnasium"]
