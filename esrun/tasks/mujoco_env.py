"""Gymnasium's v5 MuJoCo locomotion envs as vectorized numpy formulas (``task.engine: mujoco``).

Everything is read from Gymnasium's own env once (:class:`EnvModel`): the model XML, frame skip, reward weights,
health ranges, reset noise and time limit. Over ``qpos [S, nq]`` and ``qvel [S, nv]`` of S slots:

    obs      = [qpos[:, skip:], clip(qvel, -10, 10) where the env clips]                      [S, obs_dim]
    reward   = forward_weight * (x_after - x_before) / dt + healthy_reward * healthy - ctrl_weight * sum(a^2)
    terminated = not healthy (z, angle and, for Hopper, state ranges) where the env terminates

the same v5 formulas, bit for bit (the float32 control cost included), as Gymnasium's ``step``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from esrun.errors import UserError


@dataclass(frozen=True)
class Locomotion:
    """A v5 locomotion env as vectorized formulas over ``qpos [S, nq]``, ``qvel [S, nv]``."""

    skip_qpos: int  # leading qpos entries left out of the observation
    clip_qvel: bool  # observation velocities clipped to [-10, 10]
    qvel_noise: str  # "uniform" or "normal" reset noise on qvel
    healthy: bool  # has a health check (terminates when unhealthy, pays healthy_reward while healthy)
    state_range: bool = False  # Hopper: every entry of (qpos[2:], qvel) inside healthy_state_range


LOCOMOTION: dict[str, Locomotion] = {
    "Swimmer-v5": Locomotion(skip_qpos=2, clip_qvel=False, qvel_noise="uniform", healthy=False),
    "HalfCheetah-v5": Locomotion(skip_qpos=1, clip_qvel=False, qvel_noise="normal", healthy=False),
    "Hopper-v5": Locomotion(skip_qpos=1, clip_qvel=True, qvel_noise="uniform", healthy=True, state_range=True),
    "Walker2d-v5": Locomotion(skip_qpos=1, clip_qvel=True, qvel_noise="uniform", healthy=True),
}


class EnvModel:
    """Everything the engine reads from Gymnasium's env once: XML, frame skip, weights, ranges, init state."""

    def __init__(self, env_id: str, max_episode_steps: int | None):
        import gymnasium as gym

        if env_id not in LOCOMOTION:
            raise UserError(f"task.engine = mujoco: {env_id!r} is not supported (supported: "
                            f"{', '.join(LOCOMOTION)}); use task.engine = gymnasium")
        self.kind = LOCOMOTION[env_id]
        env = gym.make(env_id)
        u: Any = env.unwrapped  # a MujocoEnv: its model, init state and reward weights are read below
        self.xml_path = u.fullpath
        self.frame_skip = int(u.frame_skip)
        self.dt = float(u.dt)
        self.nq, self.nv, self.nu = int(u.model.nq), int(u.model.nv), int(u.model.nu)
        self.init_qpos = np.array(u.init_qpos, np.float64)
        self.init_qvel = np.array(u.init_qvel, np.float64)
        self.noise = float(u._reset_noise_scale)
        self.forward_weight = float(u._forward_reward_weight)
        self.ctrl_weight = float(u._ctrl_cost_weight)
        if self.kind.healthy:
            self.healthy_reward = float(u._healthy_reward)
            self.terminate = bool(u._terminate_when_unhealthy)
            self.z_range = tuple(u._healthy_z_range)
            self.angle_range = tuple(u._healthy_angle_range)
            self.state_range = tuple(u._healthy_state_range) if self.kind.state_range else None
        assert env.spec is not None and env.observation_space.shape is not None  # registered Box-observation envs
        steps = max_episode_steps or env.spec.max_episode_steps
        assert steps is not None  # the locomotion envs register a time limit
        self.max_steps = int(steps)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.action_space = env.action_space
        env.close()

    def reset_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(qpos [nq], qvel [nv]) of a fresh episode, drawn from ``rng`` in the env's order."""
        qpos = self.init_qpos + rng.uniform(low=-self.noise, high=self.noise, size=self.nq)
        if self.kind.qvel_noise == "normal":
            qvel = self.init_qvel + self.noise * rng.standard_normal(self.nv)
        else:
            qvel = self.init_qvel + rng.uniform(low=-self.noise, high=self.noise, size=self.nv)
        return qpos, qvel

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """``[S, obs_dim]`` float64 observations."""
        vel = np.clip(qvel, -10, 10) if self.kind.clip_qvel else qvel
        return np.concatenate([qpos[:, self.kind.skip_qpos:], vel], axis=1)

    def is_healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """``[S]`` bool (all True for envs without a health check)."""
        if not self.kind.healthy:
            return np.ones(len(qpos), bool)
        z, angle = qpos[:, 1], qpos[:, 2]
        ok = (self.z_range[0] < z) & (z < self.z_range[1])
        ok &= (self.angle_range[0] < angle) & (angle < self.angle_range[1])
        if self.state_range is not None:
            lo, hi = self.state_range
            ok &= np.logical_and.reduce((lo < qpos[:, 2:]) & (qpos[:, 2:] < hi), axis=1)
            ok &= np.logical_and.reduce((lo < qvel) & (qvel < hi), axis=1)
        return ok

    def reward(self, x_before: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """(reward [S] float64, terminated [S] bool) of one step; ``action [S, nu]`` (C-contiguous) as the policy
        gave it."""
        x_velocity = (qpos[:, 0] - x_before) / self.dt
        # Gymnasium sums the squared action in the action's dtype (float32) before weighting it; a row-wise sum of a
        # C-contiguous array runs the same summation loop per row as np.sum of one row (tested bit for bit).
        ctrl = self.ctrl_weight * np.add.reduce(np.square(action), axis=1)
        if not self.kind.healthy:
            return self.forward_weight * x_velocity - ctrl, np.zeros(len(qpos), bool)
        healthy = self.is_healthy(qpos, qvel)
        reward = self.forward_weight * x_velocity + healthy * self.healthy_reward - ctrl
        return reward, (~healthy) & self.terminate
