"""Gymnasium's v5 MuJoCo locomotion envs as vectorized numpy formulas (``task.engine: mujoco``).

Everything is read from Gymnasium's own env once (:class:`EnvModel`): the model XML, frame skip, reward weights,
health ranges, reset noise and time limit. A step's state over S slots is a dict of ``MjData`` fields copied after
``mj_step`` (and ``mj_rnePostConstraint`` where contact forces are read, as Gymnasium's ``do_simulation``):
``qpos [S, nq]``, ``qvel [S, nv]`` and, per env, ``xpos`` / ``xipos [S, nbody, 3]``, ``cfrc_ext``, ``cvel
[S, nbody, 6]``, ``cinert [S, nbody, 10]``, ``qfrc_actuator [S, nv]``, ``ctrl [S, nu]``. Over it:

    obs      = [qpos[:, skip:], clip(qvel, -10, 10) where the env clips, extra fields (Ant: clip(cfrc_ext[:, 1:],
                -1, 1); Humanoid: cinert[:, 1:], cvel[:, 1:], qfrc_actuator[:, 6:], cfrc_ext[:, 1:])]    [S, obs_dim]
    x        = qpos[:, 0] | xpos[:, main_body, 0] (Ant) | mass centre (sum_b m_b xipos_b / sum_b m_b)_x (Humanoid)
    reward   = forward_weight * (x_after - x_before) / dt + healthy_reward * healthy - ctrl_weight * sum(a^2)
               - contact cost (Ant: w sum clip(cfrc_ext, -1, 1)^2; Humanoid: clip(w sum cfrc_ext^2, -inf, 10))
    terminated = not healthy (z, angle and state ranges, per env) where the env terminates

the same v5 formulas, bit for bit (the float32 control cost included), as Gymnasium's ``step`` (tested per env).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from esrun.errors import UserError


@dataclass(frozen=True)
class Locomotion:
    """A v5 locomotion env as vectorized formulas over the state dict (``qpos [S, nq]``, ``qvel [S, nv]``, ...)."""

    skip_qpos: int  # leading qpos entries left out of the observation
    clip_qvel: bool  # observation velocities clipped to [-10, 10]
    qvel_noise: str  # "uniform" or "normal" reset noise on qvel
    healthy: str = ""  # "": no health check; "planar": z / angle (/ state) ranges, strict; "ant": finite state
    #                    and min_z <= z <= max_z; "humanoid": min_z < z < max_z (z = qpos[2] for both)
    state_range: bool = False  # Hopper: every entry of (qpos[2:], qvel) inside healthy_state_range
    x_from: str = "qpos"  # forward position: "qpos" (qpos[0]), "body" (xpos of the main body), "mass_center"
    extra_obs: tuple[str, ...] = ()  # MjData fields appended to the observation (rows 1: of each)
    contact: str = ""  # contact cost: "" none, "clipped_forces" (Ant), "clipped_cost" (Humanoid)
    ctrl_from_data: bool = False  # Humanoid: the control cost on data.ctrl (float64), not the float32 action

    def fields(self) -> tuple[str, ...]:
        """The MjData fields a step's state holds (qpos and qvel first)."""
        out = ["qpos", "qvel", *self.extra_obs]
        out += {"qpos": [], "body": ["xpos"], "mass_center": ["xipos"]}[self.x_from]
        out += ["cfrc_ext"] if self.contact else []
        out += ["ctrl"] if self.ctrl_from_data else []
        return tuple(dict.fromkeys(out))  # unique, in order

    @property
    def contact_forces(self) -> bool:
        """cfrc_ext is read: Gymnasium's ``do_simulation`` computes it with ``mj_rnePostConstraint`` after
        ``mj_step``, and so must the engine."""
        return "cfrc_ext" in self.fields()


LOCOMOTION: dict[str, Locomotion] = {
    "Swimmer-v5": Locomotion(skip_qpos=2, clip_qvel=False, qvel_noise="uniform"),
    "HalfCheetah-v5": Locomotion(skip_qpos=1, clip_qvel=False, qvel_noise="normal"),
    "Hopper-v5": Locomotion(skip_qpos=1, clip_qvel=True, qvel_noise="uniform", healthy="planar", state_range=True),
    "Walker2d-v5": Locomotion(skip_qpos=1, clip_qvel=True, qvel_noise="uniform", healthy="planar"),
    "Ant-v5": Locomotion(skip_qpos=2, clip_qvel=False, qvel_noise="normal", healthy="ant", x_from="body",
                         extra_obs=("cfrc_ext",), contact="clipped_forces"),
    "Humanoid-v5": Locomotion(skip_qpos=2, clip_qvel=False, qvel_noise="uniform", healthy="humanoid",
                              x_from="mass_center", extra_obs=("cinert", "cvel", "qfrc_actuator", "cfrc_ext"),
                              contact="clipped_cost", ctrl_from_data=True),
}


class EnvModel:
    """Everything the engine reads from Gymnasium's env once: XML, frame skip, weights, ranges, init state."""

    def __init__(self, env_id: str, max_episode_steps: int | None):
        import gymnasium as gym

        if env_id not in LOCOMOTION:
            raise UserError(f"task.engine = mujoco: {env_id!r} is not supported (supported: "
                            f"{', '.join(LOCOMOTION)}); use task.engine = gymnasium")
        self.kind = kind = LOCOMOTION[env_id]
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
        self.fields = kind.fields()
        self.shapes = {f: tuple(getattr(u.data, f).shape) for f in self.fields}
        if kind.healthy:
            self.healthy_reward = float(u._healthy_reward)
            self.terminate = bool(u._terminate_when_unhealthy)
            self.z_range = tuple(u._healthy_z_range)
        if kind.healthy == "planar":
            self.angle_range = tuple(u._healthy_angle_range)
            self.state_range = tuple(u._healthy_state_range) if kind.state_range else None
            # strict bounds on (z, angle) = qpos[:, 1:3], one comparison pair
            self._lo = np.array([self.z_range[0], self.angle_range[0]], np.float64)
            self._hi = np.array([self.z_range[1], self.angle_range[1]], np.float64)
        if kind.x_from == "body":
            self.main_body = int(u.data.body(u._main_body).id)
        if kind.x_from == "mass_center":
            self.body_mass = np.array(u.model.body_mass, np.float64)
        if kind.contact:
            self.contact_weight = float(u._contact_cost_weight)
            self.contact_range = tuple(u._contact_force_range if kind.contact == "clipped_forces"
                                       else u._contact_cost_range)
        assert env.spec is not None and env.observation_space.shape is not None  # registered Box-observation envs
        steps = max_episode_steps or env.spec.max_episode_steps
        assert steps is not None  # the locomotion envs register a time limit
        self.max_steps = int(steps)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.action_space = env.action_space
        env.close()

    def alloc(self, slots: int) -> dict[str, np.ndarray]:
        """Zeroed state buffers for ``slots`` slots: field -> ``[slots, *MjData shape]`` float64; ``qpos`` and
        ``qvel`` are the two halves of one ``qs [slots, nq + nv]`` (one finiteness / range check covers both)."""
        qs = np.zeros((slots, self.nq + self.nv))
        out = {"qs": qs, "qpos": qs[:, :self.nq], "qvel": qs[:, self.nq:]}
        out.update({f: np.zeros((slots, *self.shapes[f])) for f in self.fields if f not in out})
        return out

    def reset_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(qpos [nq], qvel [nv]) of a fresh episode, drawn from ``rng`` in the env's order."""
        qpos = self.init_qpos + rng.uniform(low=-self.noise, high=self.noise, size=self.nq)
        if self.kind.qvel_noise == "normal":
            qvel = self.init_qvel + self.noise * rng.standard_normal(self.nv)
        else:
            qvel = self.init_qvel + rng.uniform(low=-self.noise, high=self.noise, size=self.nv)
        return qpos, qvel

    def observe(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """``[S, obs_dim]`` float64 observations; without clipping or extra fields a view of ``state`` (the engine
        consumes it before the next step)."""
        obs = state["qs"][:, self.kind.skip_qpos:]  # qpos[skip:] and qvel, contiguous
        if self.kind.clip_qvel:
            obs = obs.copy()
            v = obs[:, self.nq - self.kind.skip_qpos:]
            np.clip(v, -10, 10, out=v)
        if not self.kind.extra_obs:
            return obs
        parts = [obs]
        for f in self.kind.extra_obs:
            a = state[f]
            if f == "qfrc_actuator":
                parts.append(a[:, 6:])  # the free joint's 6 dofs are not actuated
                continue
            a = a[:, 1:]  # body 0 (the world) is left out
            if f == "cfrc_ext" and self.kind.contact == "clipped_forces":
                a = np.clip(a, *self.contact_range)
            parts.append(a.reshape(len(a), -1))
        return np.concatenate(parts, axis=1)

    def x_position(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """``[S]`` forward position the forward reward differentiates (:data:`X_POSITION`)."""
        return X_POSITION[self.kind.x_from](self, state)

    def is_healthy(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """``[S]`` bool (:data:`HEALTHY`; all True for envs without a health check)."""
        return HEALTHY[self.kind.healthy](self, state)

    def _contact_cost(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """``[S]`` contact cost (:data:`CONTACT_COST`)."""
        return CONTACT_COST[self.kind.contact](self, state)

    def reward(self, x_before: np.ndarray, x_after: np.ndarray, state: dict[str, np.ndarray], action: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """(reward [S] float64, terminated [S] bool) of one step; ``x_*`` from :meth:`x_position` before / after
        it, ``action [S, nu]`` (C-contiguous) as the policy gave it."""
        x_velocity = (x_after - x_before) / self.dt
        # Gymnasium sums the squared action in the action's dtype (float32) before weighting it; a row-wise sum of a
        # C-contiguous array runs the same summation loop per row as np.sum of one row (tested bit for bit).
        # Humanoid sums data.ctrl (the action as float64) instead.
        a = state["ctrl"] if self.kind.ctrl_from_data else action
        ctrl = self.ctrl_weight * np.add.reduce(np.square(a), axis=1)
        if not self.kind.healthy:
            return self.forward_weight * x_velocity - ctrl, np.zeros(len(x_before), bool)
        healthy = self.is_healthy(state)
        reward = self.forward_weight * x_velocity + healthy * self.healthy_reward
        if self.kind.contact:
            reward = reward - (ctrl + self._contact_cost(state))  # Gymnasium: rewards - (ctrl_cost + contact_cost)
        else:
            reward = reward - ctrl
        return reward, (~healthy) & self.terminate


# The per-env variants of a step's formulas, by the names a Locomotion entry gives (one function each, no chains).
# Each: (env, state dict) -> [S].
StateFn = Callable[[EnvModel, dict[str, np.ndarray]], np.ndarray]


def _x_qpos(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    return state["qpos"][:, 0].copy()


def _x_body(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    return state["xpos"][:, env.main_body, 0].copy()


def _x_mass_center(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    """Gymnasium's mass_center: sum_b m_b xipos_b (an einsum per slot, as Gymnasium's), then / total mass."""
    num = np.stack([np.einsum("b,bj->j", env.body_mass, xi) for xi in state["xipos"]])
    return (num / env.body_mass.sum())[:, 0]


X_POSITION: dict[str, StateFn] = {"qpos": _x_qpos, "body": _x_body, "mass_center": _x_mass_center}


def _healthy_always(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    return np.ones(len(state["qpos"]), bool)


def _healthy_planar(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    """Hopper / Walker2d: lo < (z, angle) = qpos[:, 1:3] < hi, strict; Hopper also lo < (qpos[2:], qvel) < hi."""
    qpos = state["qpos"]
    ok = np.logical_and.reduce((env._lo < qpos[:, 1:3]) & (qpos[:, 1:3] < env._hi), axis=1)
    if env.state_range is not None:  # (qpos[2:], qvel) = qs[:, 2:], contiguous
        lo, hi = env.state_range
        s = state["qs"][:, 2:]
        ok &= np.logical_and.reduce((lo < s) & (s < hi), axis=1)
    return ok


def _healthy_ant(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    """Ant: a finite state (Gymnasium's state_vector(): qpos and qvel) and min_z <= qpos[2] <= max_z."""
    z = state["qpos"][:, 2]
    return np.isfinite(state["qs"]).all(1) & (env.z_range[0] <= z) & (z <= env.z_range[1])


def _healthy_humanoid(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    """Humanoid: min_z < qpos[2] < max_z, strict."""
    z = state["qpos"][:, 2]
    return (env.z_range[0] < z) & (z < env.z_range[1])


HEALTHY: dict[str, StateFn] = {"": _healthy_always, "planar": _healthy_planar, "ant": _healthy_ant,
                               "humanoid": _healthy_humanoid}


def _contact_clipped_forces(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    """Ant: w sum clip(cfrc_ext, lo, hi)^2 over [nbody * 6] (C order, as np.sum flattens)."""
    f = state["cfrc_ext"].reshape(len(state["cfrc_ext"]), -1)
    return env.contact_weight * np.add.reduce(np.square(np.clip(f, *env.contact_range)), axis=1)


def _contact_clipped_cost(env: EnvModel, state: dict[str, np.ndarray]) -> np.ndarray:
    """Humanoid: clip(w sum cfrc_ext^2, lo, hi)."""
    f = state["cfrc_ext"].reshape(len(state["cfrc_ext"]), -1)
    return np.clip(env.contact_weight * np.add.reduce(np.square(f), axis=1), *env.contact_range)


CONTACT_COST: dict[str, StateFn] = {"clipped_forces": _contact_clipped_forces, "clipped_cost": _contact_clipped_cost}
