"""Gymnasium's MuJoCo locomotion envs stepped by bare ``mujoco.mj_step`` on every core (``task.engine: mujoco``).

Gymnasium's per-env Python layer (wrappers, info dicts, per-env reward code) costs about half of the simulator's
speed, and its vector envs step every slot in one process. This engine keeps Gymnasium as the interface (the user
names ``task.env_id: Hopper-v5``; the model XML, frame skip, reward weights, health ranges, reset noise and time
limit are read from Gymnasium's own env, :mod:`esrun.tasks.mujoco_env`) but steps the physics itself, and runs
whole episodes where the physics is:

    a call of J jobs (episodes) on `width` slots and W workers:
        each worker has ceil(width / W) slots; a free slot claims the next job from a queue the workers share
        each worker: lock-step over its own slots, its own jitted policy call (vmapped over them) per env step,
                     rewards / observations / health in numpy (esrun.tasks.mujoco_episodes)
        one message each way per worker and call: (params, members, seeds, normalizer) out; returns, lengths and
        per-job observation statistics back

With ``task.workers: 1`` the episodes run in this process. Job j resets from ``np_random(seed + j)`` (Gymnasium's
``env.reset(seed=seed + j)``), so every job's return, length and observations depend on its member's parameters, the
normalizer and the seed only, not on the worker count or the width; the per-job observation statistics are merged
in job order, so they do not either (all tested). Against Gymnasium (tested): the same v5 formulas, the float32
control cost included, and the same reset; with one slot per job (no slot reuse) the returns and lengths equal
``GymTask``'s ``SyncVectorEnv`` bit for bit. A slot whose step raises or yields a non-finite state fails its
episode (the member's fitness is NaN, ranked worst) and takes the next job.

Supported: ``LOCOMOTION`` (Swimmer, Hopper, HalfCheetah, Walker2d, Ant, Humanoid v5; Ant and Humanoid with their
contact-force observations and costs); other ids keep ``engine: gymnasium``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from esrun.tasks.base import ChunkResult, Task
from esrun.tasks.mujoco_env import LOCOMOTION, EnvModel, Locomotion
from esrun.tasks.mujoco_episodes import EpisodeRunner, Episodes, make_act
from esrun.tasks.obs_norm import ObsStats, merge_all
from esrun.tasks.pipe_messages import JobQueue, receive, send

if TYPE_CHECKING:
    import jax

    from esrun.config.schema import GymTaskConfig, PolicyConfig

__all__ = ["LOCOMOTION", "EnvModel", "Locomotion", "MujocoTask", "WorkerPool", "default_workers", "make_mujoco_task"]


class WorkerPool:
    """W worker processes (``python -m esrun.tasks.mujoco_worker``), each running whole episodes of its share of a
    call's jobs. They start in the background; the first call waits for them."""

    def __init__(self, init: tuple, workers: int):
        self.workers = workers
        self.queue = JobQueue.create()
        self._procs = [subprocess.Popen([sys.executable, "-m", "esrun.tasks.mujoco_worker", str(self.queue.read_fd)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                        pass_fds=(self.queue.read_fd,)) for _ in range(workers)]
        for p in self._procs:
            self._send(p, init)
        self._ready = False

    @staticmethod
    def _send(p: subprocess.Popen, obj: Any) -> None:
        assert p.stdin is not None  # a pipe
        send(p.stdin.fileno(), obj)

    @staticmethod
    def _receive(p: subprocess.Popen) -> Any:
        assert p.stdout is not None  # a pipe
        try:
            return receive(p.stdout.fileno())
        except EOFError:
            raise RuntimeError(f"mujoco engine worker {p.pid} died (exit code {p.wait()})") from None

    def run(self, request: tuple, jobs: int) -> list[Episodes]:
        """``request`` (with all ``jobs``) to every worker, the jobs queued for them to claim; their answers."""
        if not self._ready:
            for p in self._procs:
                if self._receive(p) != "ready":
                    raise RuntimeError(f"mujoco engine worker {p.pid} did not start")
            self._ready = True
        self.queue.fill(jobs, len(self._procs))
        for p in self._procs:
            self._send(p, request)
        return [self._receive(p) for p in self._procs]

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
        self.queue.close()


def default_workers() -> int:
    """All cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# -- the task -----------------------------------------------------------------------------------------------


class MujocoTask(Task):
    """``task.engine: mujoco``: the Gymnasium task's contract (:mod:`esrun.tasks.gym`) on worker processes."""

    has_eval = True
    obs_dim: int  # always set (observation normalization)

    def __init__(self, env_id: str, policy_cfg: PolicyConfig, episodes_per_member: int = 1,
                 max_episode_steps: int | None = None,
                 obs_norm: bool = False, vector_width: int | None = None, workers: int | None = None,
                 obs_clip: float | None = 5.0):
        from esrun.policies import ActionSpec, build_policy

        self.env_id = env_id
        self.env = EnvModel(env_id, max_episode_steps)
        self.episodes = episodes_per_member
        self.obs_norm = obs_norm
        self.vector_width = vector_width
        self.workers = workers or default_workers()
        self.obs_dim = self.env.obs_dim
        self.spec = ActionSpec.from_gym_space(self.env.action_space)
        self.policy = build_policy(policy_cfg, self.obs_dim, self.spec)
        self.num_params = self.policy.num_params
        self.raw_steps = 0  # slot steps taken (useful or not), for the throughput benchmark
        self.failures = 0  # episodes failed by the simulator (raised, or a non-finite state)
        self._act = make_act(self.policy, obs_norm, obs_clip)
        self._init = (env_id, max_episode_steps, policy_cfg, obs_norm, obs_clip)
        self._local: EpisodeRunner | None = None
        self._pool_: WorkerPool | None = None  # started by the first call that has jobs for two workers or more

    def initial_params(self, key: jax.Array) -> np.ndarray:
        return np.asarray(self.policy.init(key), np.float32)

    def _normalizer(self, obs_stats: ObsStats | None) -> tuple[np.ndarray, np.ndarray]:
        if self.obs_norm and obs_stats is not None:
            return obs_stats.normalizer()
        return np.zeros(self.obs_dim, np.float32), np.ones(self.obs_dim, np.float32)

    def run_jobs(self, params: jax.Array | np.ndarray, job_member: np.ndarray, seed: int, obs_stats: ObsStats | None,
                 width: int | None = None, collect_obs: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, ObsStats | None]:
        """One episode per entry of ``job_member`` (job j reset from ``seed + j``) on ``width`` slots in all.

        Returns (returns [J] float64, NaN for a failed episode; steps [J] int64; the observations' ObsStats,
        merged in job order, or None).
        """
        import jax.numpy as jnp

        jobs = len(job_member)
        width = min(width or jobs, jobs)
        mean, std = self._normalizer(obs_stats)
        params = np.asarray(params, np.float32)
        members = np.asarray(job_member, np.int64)
        seeds = seed + np.arange(jobs, dtype=np.int64)
        if self.workers > 1 and jobs > 1 and self._pool_ is None:
            self._pool_ = WorkerPool(self._init, self.workers)
        if self._pool_ is None or jobs <= 1:
            if self._local is None:
                self._local = EpisodeRunner(self.env, self._act)
            parts = [self._local.run(jnp.asarray(params), members, seeds, mean, std, width, collect_obs)]
        else:
            slots = -(-width // self._pool_.workers)
            parts = self._pool_.run((params, members, seeds, mean, std, slots, collect_obs), jobs)
        returns, steps = np.zeros(jobs), np.zeros(jobs, np.int64)
        count, obs_mean, m2 = np.zeros(jobs), np.zeros((jobs, self.obs_dim)), np.zeros((jobs, self.obs_dim))
        for part in parts:
            s = part.jobs
            returns[s], steps[s], count[s] = part.returns[s], part.steps[s], part.count[s]
            obs_mean[s], m2[s] = part.mean[s], part.m2[s]
            self.raw_steps += part.slot_steps
            self.failures += part.failures
        delta = merge_all(ObsStats(float(count[j]), obs_mean[j], m2[j]) for j in range(jobs)) if collect_obs else None
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
        self._local = None  # the in-process slots' MjData / MjModel, freed now rather than at interpreter exit


def make_mujoco_task(task_cfg: GymTaskConfig, policy_cfg: PolicyConfig) -> MujocoTask:
    return MujocoTask(task_cfg.env_id, policy_cfg, task_cfg.episodes_per_member, task_cfg.max_episode_steps,
                      task_cfg.obs_norm, task_cfg.vector_width, getattr(task_cfg, "workers", None),
                      getattr(task_cfg, "obs_clip", 5.0))
