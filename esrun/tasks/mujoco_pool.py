"""Gymnasium's MuJoCo locomotion envs stepped by bare ``mujoco.mj_step`` on every core (``task.engine: mujoco``).

Gymnasium's per-env Python layer (wrappers, info dicts, per-env reward code) costs about half of the simulator's
speed, and its vector envs step every slot in one process. This engine keeps Gymnasium as the interface (the user
names ``task.env_id: Hopper-v5``; the model XML, frame skip, reward weights, health ranges, reset noise and time
limit are read from Gymnasium's own env) but steps the physics itself:

    slots s = 0 .. S-1, each an ``MjData``; worker w of W owns slots w, w + W, w + 2W, ... (any prefix balanced)
    one vector step:  main: actions [S, nu] = policy(obs)            (one jitted call, all slots)
                      workers: ctrl <- action; mj_step(model, data, nstep = frame_skip) per owned slot
                      main: obs, reward, terminated from (qpos, qvel) before/after, vectorized over slots

Actions and states cross between processes through shared memory; one byte through a pipe per worker and step
is the only message. With ``task.workers: 1`` the slots are stepped in this process (no pipes).

Equivalence with Gymnasium (tested): the same v5 formulas (``forward_weight * dx / dt + healthy_reward * healthy -
ctrl_weight * sum(a^2)``, the float32 control cost included), the same reset (``mj_resetData``, init state plus
the env's noise drawn from slot i's ``np_random(seed + i)`` as ``SyncVectorEnv.reset(seed)`` seeds env i, then
``mj_forward``), same-step autoreset and the same slot/job schedule as :mod:`esrun.tasks.gym`; returns equal
Gymnasium's for the same actions and seeds. A slot whose step raises or yields a non-finite state fails its
episode (the member's fitness is NaN, ranked worst) and is reset for the next job.

Supported: ``LOCOMOTION`` (Swimmer, Hopper, HalfCheetah, Walker2d v5); other ids keep ``engine: gymnasium``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from esrun.errors import UserError
from esrun.tasks import mujoco_worker
from esrun.tasks.base import ChunkResult, Task
from esrun.tasks.mujoco_worker import Buffers, step_slots

if TYPE_CHECKING:
    import jax

    from esrun.config.schema import GymTaskConfig, PolicyConfig
    from esrun.tasks.obs_norm import ObsStats


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
            state = np.concatenate([qpos[:, 2:], qvel], axis=1)
            ok &= np.all((self.state_range[0] < state) & (state < self.state_range[1]), axis=1)
        return ok

    def reward(self, x_before: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """(reward [S] float64, terminated [S] bool) of one step; ``action [S, nu]`` as the policy gave it."""
        x_velocity = (qpos[:, 0] - x_before) / self.dt
        # Gymnasium sums the squared action in the action's dtype (float32) before weighting it; a row-wise sum of a
        # C-contiguous array runs the same summation loop per row as np.sum of one row (tested bit for bit).
        ctrl = self.ctrl_weight * np.sum(np.square(np.ascontiguousarray(action)), axis=1)
        reward = self.forward_weight * x_velocity - ctrl
        healthy = self.is_healthy(qpos, qvel)
        if not self.kind.healthy:
            return reward, np.zeros(len(qpos), bool)
        reward = self.forward_weight * x_velocity + healthy * self.healthy_reward - ctrl
        return reward, (~healthy) & self.terminate


class SlotPool:
    """S slots of one model, stepped by W worker processes (W = 1: in this process).

    Workers are plain ``python mujoco_worker.py`` processes (numpy and mujoco only: no JAX, no esrun import, no
    fork of this process), each told to step through a one-byte write on its stdin and answering with one byte.
    """

    def __init__(self, env: EnvModel, slots: int, workers: int):
        import mujoco

        self.env, self.slots, self.workers = env, slots, max(1, min(workers, slots))
        self.buf = Buffers(slots, env.nq, env.nv, env.nu)
        self._procs: list[subprocess.Popen] = []
        if self.workers == 1:
            self._model = mujoco.MjModel.from_xml_path(env.xml_path)
            self._datas = {s: mujoco.MjData(self._model) for s in range(slots)}
            return
        for w in range(self.workers):
            self._procs.append(subprocess.Popen(
                [sys.executable, mujoco_worker.__file__, env.xml_path, str(env.frame_skip), self.buf.shm.name,
                 str(slots), str(env.nq), str(env.nv), str(env.nu), str(w), str(self.workers)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0))
        for p in self._procs:  # each answers once its model and data are built
            self._wait(p)

    def _wait(self, p: subprocess.Popen) -> None:
        if p.stdout is None or p.stdout.read(1) != b"k":  # stdout is a pipe (never None)
            raise RuntimeError(f"mujoco engine worker {p.pid} died (exit code {p.wait()})")

    def step(self) -> None:
        """Apply ``buf.flags`` to every slot: reset where 2, then step where 1 or 2; ``buf.failed`` marks errors."""
        b = self.buf
        if self.workers == 1:
            step_slots(self._model, self._datas, range(self.slots), b.flags, b.action, b.reset_qpos, b.reset_qvel,
                       b.qpos, b.qvel, b.failed, self.env.frame_skip)
            return
        for p in self._procs:
            if p.stdin is not None:  # a pipe (never None)
                p.stdin.write(b"s")
        for p in self._procs:
            self._wait(p)

    def close(self) -> None:
        for p in self._procs:
            try:
                if p.stdin is not None:
                    p.stdin.close()  # EOF: the worker exits
            except OSError:
                pass
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        self._procs = []
        self.buf.close(unlink=True)


def default_workers() -> int:
    """All cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# -- the task -----------------------------------------------------------------------------------------------


class MujocoTask(Task):
    """``task.engine: mujoco``: the Gymnasium task's contract (:mod:`esrun.tasks.gym`) on a :class:`SlotPool`."""

    has_eval = True
    obs_dim: int  # always set (observation normalization)

    def __init__(self, env_id: str, policy_cfg: PolicyConfig, episodes_per_member: int = 1,
                 max_episode_steps: int | None = None,
                 obs_norm: bool = False, vector_width: int | None = None, workers: int | None = None,
                 obs_clip: float | None = 5.0):
        import jax

        from esrun.policies import ActionSpec, build_policy

        self.env_id = env_id
        self.env = EnvModel(env_id, max_episode_steps)
        self.episodes = episodes_per_member
        self.obs_norm = obs_norm
        self.obs_clip = obs_clip
        self.vector_width = vector_width
        self.workers = workers or default_workers()
        self.obs_dim = self.env.obs_dim
        self.spec = ActionSpec.from_gym_space(self.env.action_space)
        self.policy = build_policy(policy_cfg, self.obs_dim, self.spec)
        self.num_params = self.policy.num_params
        self._pool_: SlotPool | None = None
        self.raw_steps = 0  # slot steps taken (useful or not), for the throughput benchmark
        self.failures = 0  # episodes failed by the simulator (raised, or a non-finite state)
        self._act = jax.jit(self._act_impl)

    def _act_impl(self, params, slot_member, obs, mean, std):
        import jax
        import jax.numpy as jnp

        x = (obs.astype(jnp.float32) - mean) / std
        if self.obs_norm and self.obs_clip is not None:  # as the Gymnasium task (task.obs_clip; None: ARS, no clip)
            x = jnp.clip(x, -self.obs_clip, self.obs_clip)
        return jax.vmap(self.policy.apply)(params[slot_member], x)

    def initial_params(self, key: jax.Array) -> np.ndarray:
        return np.asarray(self.policy.init(key), np.float32)

    def _pool(self, width: int) -> SlotPool:
        if self._pool_ is None or self._pool_.slots < width:
            if self._pool_ is not None:
                self._pool_.close()
            self._pool_ = SlotPool(self.env, width, self.workers)
        return self._pool_

    def _normalizer(self, obs_stats):
        if self.obs_norm and obs_stats is not None:
            return obs_stats.normalizer()
        return np.zeros(self.obs_dim, np.float32), np.ones(self.obs_dim, np.float32)

    def run_jobs(self, params: jax.Array | np.ndarray, job_member: np.ndarray, seed: int, obs_stats: ObsStats | None,
                 width: int | None = None, collect_obs: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, ObsStats | None]:
        """One episode per entry of ``job_member`` on ``width`` slots, scheduled as ``GymTask.run_jobs``.

        Returns (returns [J] float64, NaN for a failed episode; steps [J] int64; ObsStats or None).
        """
        import jax.numpy as jnp
        from gymnasium.utils.seeding import np_random

        from esrun.tasks.obs_norm import ObsStats

        env = self.env
        jobs = len(job_member)
        width = min(width or jobs, jobs)
        pool = self._pool(width)
        b = pool.buf
        mean, std = (jnp.asarray(a) for a in self._normalizer(obs_stats))
        params = jnp.asarray(params)
        rngs = [np_random(seed + i)[0] for i in range(width)]  # SyncVectorEnv.reset(seed): env i gets seed + i
        qpos, qvel = np.empty((width, env.nq)), np.empty((width, env.nv))
        for s in range(width):
            qpos[s], qvel[s] = env.reset_state(rngs[s])
        b.reset_qpos[:width], b.reset_qvel[:width] = qpos, qvel
        b.flags[:] = 0
        pending = np.ones(width, bool)  # reset before the next step
        obs = env.observe(qpos, qvel)
        x_before = qpos[:, 0].copy()
        returns, steps = np.zeros(jobs, np.float64), np.zeros(jobs, np.int64)
        failed = np.zeros(jobs, bool)
        ep_len = np.zeros(width, np.int64)
        slot_job = np.arange(width)
        next_job = width
        obs_batches = []
        while True:
            active = slot_job >= 0
            if not active.any():
                break
            action = np.asarray(self._act(params, job_member[np.maximum(slot_job, 0)], obs, mean, std))
            if collect_obs:
                obs_batches.append(obs[active])
            b.action[:width] = action
            b.flags[:width] = np.where(active, np.where(pending, 2, 1), 0)
            pool.step()
            self.raw_steps += width
            pending[:] = False
            qpos, qvel = b.qpos[:width].copy(), b.qvel[:width].copy()
            reward, term = env.reward(x_before, qpos, qvel, action)
            bad = active & ((b.failed[:width] == 1) | ~np.isfinite(qpos).all(1) | ~np.isfinite(qvel).all(1))
            ep_len += active
            done = (term | (ep_len >= env.max_steps) | bad) & active
            idx = slot_job[active]
            returns[idx] += reward[active]
            steps[idx] += 1
            failed[slot_job[bad]] = True
            self.failures += int(bad.sum())
            obs = env.observe(np.where(bad[:, None], 0.0, qpos), np.where(bad[:, None], 0.0, qvel))
            x_before = qpos[:, 0].copy()
            for s in np.flatnonzero(done).tolist():
                if next_job >= jobs:
                    slot_job[s] = -1
                    continue
                slot_job[s], next_job = next_job, next_job + 1
                b.reset_qpos[s], b.reset_qvel[s] = env.reset_state(rngs[s])
                pending[s], ep_len[s], x_before[s] = True, 0, b.reset_qpos[s, 0]
                obs[s] = env.observe(b.reset_qpos[s:s + 1], b.reset_qvel[s:s + 1])[0]
        returns[failed] = np.nan
        delta = ObsStats.from_batch(np.concatenate(obs_batches)) if obs_batches else None
        return returns, steps, delta

    def evaluate(self, params: jax.Array | np.ndarray, key: jax.Array,
                 obs_stats: ObsStats | None = None) -> ChunkResult:
        from esrun.tasks.gym import seed_from_key

        c = params.shape[0]
        job_member = np.repeat(np.arange(c), self.episodes)
        width = self.vector_width or c * self.episodes
        ret, steps, delta = self.run_jobs(params, job_member, seed_from_key(key), obs_stats, width, self.obs_norm)
        return ChunkResult(ret.reshape(c, self.episodes).mean(1), steps.reshape(c, self.episodes).sum(1), delta)

    def evaluate_policy(self, params: jax.Array | np.ndarray, key: jax.Array, episodes: int,
                        obs_stats: ObsStats | None = None) -> np.ndarray:
        from esrun.tasks.gym import seed_from_key

        ret, _, _ = self.run_jobs(np.asarray(params)[None], np.zeros(episodes, np.int64), seed_from_key(key),
                                  obs_stats, episodes)
        return ret

    def close(self) -> None:
        if self._pool_ is not None:
            self._pool_.close()
            self._pool_ = None


def make_mujoco_task(task_cfg: GymTaskConfig, policy_cfg: PolicyConfig) -> MujocoTask:
    return MujocoTask(task_cfg.env_id, policy_cfg, task_cfg.episodes_per_member, task_cfg.max_episode_steps,
                      task_cfg.obs_norm, task_cfg.vector_width, getattr(task_cfg, "workers", None),
                      getattr(task_cfg, "obs_clip", 5.0))
