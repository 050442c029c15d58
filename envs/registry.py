"""``JAX_ENVS``: environment id -> :class:`envs.spec.JaxEnv`; the same ids are registered with Gymnasium.

``import envs`` makes ``gymnasium.make("esrun/CartPole-v1")`` work (through :mod:`envs.gym_adapter`, with
Gymnasium's ``TimeLimit`` at the environment's ``max_steps``), while JAX code uses ``JAX_ENVS[id]`` directly.
"""
from __future__ import annotations

import gymnasium

from envs import cartpole, pendulum
from envs.spec import JaxEnv

JAX_ENVS: dict[str, JaxEnv] = {
    "esrun/CartPole-v1": cartpole.ENV,
    "esrun/Pendulum-v1": pendulum.ENV,
}

_REWARD_THRESHOLD = {"esrun/CartPole-v1": 475.0}


def register_with_gymnasium() -> None:
    """Register every id of ``JAX_ENVS`` with Gymnasium (idempotent)."""
    for env_id, env in JAX_ENVS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="envs.gym_adapter:JaxGymEnv",
            kwargs={"env_id": env_id},
            max_episode_steps=env.max_episode_steps,
            reward_threshold=_REWARD_THRESHOLD.get(env_id),
        )
