"""Gymnasium environments: every episode of an evaluation chunk stepped together in one vector environment.

A chunk of C members with E episodes each is a queue of C*E episode jobs run on W vector slots (W =
``task.vector_width``, default C*E). Each slot runs one job; when its episode ends the vector environment's
autoreset starts a fresh episode in that slot, which takes the next job from the queue, so a short episode
never leaves a slot idle while work remains. The policy is one jitted call per vector step, vmapped over slots
(each slot gathers its member's parameters from the chunk's ``[C, P]`` array on the device).

Episode initial states come from one reset seed per chunk, derived by the caller from (run seed, generation,
chunk index); the slot/job schedule is deterministic, so a member's fitness depends only on those and never on
which worker evaluated the chunk. Native vector environments are used where Gymnasium has them (CartPole), a
``SyncVectorEnv`` with same-step autoreset otherwise (MuJoCo, Pendulum).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode

from esrun.policies import ActionSpec, build_policy
from esrun.tasks.base import ChunkResult, Task, register
from esrun.tasks.env_guard import FailureGuard, FailureHook, describe
from esrun.tasks.obs_norm import ObsStats

if TYPE_CHECKING:
    from jax.typing import ArrayLike

    from esrun.config.schema import GymTaskConfig, PolicyConfig


def seed_from_key(key: ArrayLike) -> int:
    """A 32-bit integer seed for Gymnasium from a JAX key (or any int sequence)."""
    words = np.asarray(jax.random.key_data(key) if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key)
                       else key).ravel().tolist()
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def make_vector_env(env_id: str, num_envs: int, max_episode_steps: int | None, render_mode: str | None = None,
                    on_failure: FailureHook | None = None) -> gym.vector.VectorEnv:
    """Native vector env where Gymnasium has one, else a same-step-autoreset ``SyncVectorEnv`` whose slots are
    each wrapped in a :class:`FailureGuard` (a raising or NaN-emitting slot fails one episode and is rebuilt)."""
    kwargs: dict[str, Any] = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if gym.spec(env_id).vector_entry_point is not None and render_mode is None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    guard = [lambda env: FailureGuard(env, lambda: gym.make(env_id, **kwargs), on_failure)]
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, wrappers=guard, **kwargs,
    )


class GymTask(Task):
    has_eval = True
    obs_dim: int  # always set (used by observation normalization)

    def __init__(self, env_id: str, policy_cfg: PolicyConfig, episodes_per_member: int = 1,
                 max_episode_steps: int | None = None, obs_norm: bool = False, vector_width: int | None = None,
                 obs_clip: float | None = 5.0):
        self.env_id = env_id
        self.obs_clip = obs_clip  # with obs_norm: clip normalized inputs to [-obs_clip, obs_clip]; None: no clip
        self.episodes = episodes_per_member
        self.max_episode_steps = max_episode_steps
        self.obs_norm = obs_norm
        self.vector_width = vector_width
        probe = gym.make(env_id)
        shape = probe.observation_space.shape
        assert shape is not None  # Box / Discrete observation spaces have a shape
        self.obs_dim = int(np.prod(shape))
        self.spec = ActionSpec.from_gym_space(probe.action_space)
        probe.close()
        self.policy = build_policy(policy_cfg, self.obs_dim, self.spec)
        self.num_params = self.policy.num_params
        self._envs: dict[int, gym.vector.VectorEnv] = {}
        self.raw_steps = 0  # vector-slot steps taken (useful or not), for the throughput benchmark
        self.policy_seconds = 0.0
        self.failures = 0  # episodes failed by the environment (raised, or a non-finite observation)
        self.last_failure: str | None = None
        self._act = jax.jit(self._act_impl)

    def _record_failure(self, why: str) -> None:
        self.failures += 1
        self.last_failure = why

    def _act_impl(self, params, slot_member, obs, mean, std):
        x = (obs.astype(jnp.float32) - mean) / std
        if self.obs_norm and self.obs_clip is not None:  # normalized inputs clipped; raw observations untouched
            x = jnp.clip(x, -self.obs_clip, self.obs_clip)
        return jax.vmap(self.policy.apply)(params[slot_member], x)

    def initial_params(self, key: jax.Array) -> np.ndarray:
        return np.asarray(self.policy.init(key), np.float32)

    def _env(self, width: int):
        if width not in self._envs:
            self._envs[width] = make_vector_env(self.env_id, width, self.max_episode_steps,
                                                on_failure=self._record_failure)
        return self._envs[width]

    def _normalizer(self, obs_stats: ObsStats | None):
        if self.obs_norm and obs_stats is not None:
            return obs_stats.normalizer()
        return np.zeros(self.obs_dim, np.float32), np.ones(self.obs_dim, np.float32)

    def run_jobs(self, params: jax.Array | np.ndarray, job_member: np.ndarray, seed: int, obs_stats: ObsStats | None,
                 width: int | None = None, collect_obs: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, ObsStats | None]:
        """Run one episode per entry of ``job_member`` (member index into ``params``) on ``width`` slots.

        Returns (returns [J] float64, steps [J] int64, ObsStats of the useful observations or None).
        """
        jobs = len(job_member)
        width = min(width or jobs, jobs)
        env = self._env(width)
        same_step = env.metadata.get("autoreset_mode") == AutoresetMode.SAME_STEP
        mean, std = self._normalizer(obs_stats)
        mean, std = jnp.asarray(mean), jnp.asarray(std)
        params = jnp.asarray(params)
        returns = np.zeros(jobs, np.float64)
        steps = np.zeros(jobs, np.int64)
        slot_job = np.arange(width)  # job each slot runs; -1 = idle
        next_job = width
        pending_reset = np.zeros(width, bool)  # NEXT_STEP mode: this step only resets the slot
        obs_batches = []
        discrete = self.spec.kind == "discrete"
        try:
            obs, _ = env.reset(seed=seed)
        except Exception as exc:  # noqa: BLE001 - the environment failed as a whole: see _fail_chunk
            return self._fail_chunk(width, exc, returns, steps, np.zeros(jobs, bool))
        while True:
            active = slot_job >= 0
            if not active.any():
                break
            members = job_member[np.maximum(slot_job, 0)]
            action = np.asarray(self._act(params, members, obs, mean, std))
            useful = active & ~pending_reset
            if collect_obs and useful.any():
                obs_batches.append(np.asarray(obs)[useful])
            try:
                obs, reward, term, trunc, _ = env.step(action.astype(np.int64) if discrete else action)
            except Exception as exc:  # noqa: BLE001 - a native vector env failed as a whole: see _fail_chunk
                finished = np.arange(jobs) < next_job
                finished[slot_job[slot_job >= 0]] = False
                return self._fail_chunk(width, exc, returns, steps, finished)
            self.raw_steps += width
            done = (term | trunc) & useful
            idx = slot_job[useful]
            returns[idx] += reward[useful]
            # A non-finite observation in a native vector env (guarded slots never show one): the job fails
            # and the slot, whose state is now unusable, takes no further job in this chunk.
            broken = useful & ~np.isfinite(np.asarray(obs, np.float64).reshape(width, -1)).all(axis=1)
            if broken.any():
                self._record_failure("non-finite observation")
                returns[slot_job[broken]] = np.nan
                slot_job[broken] = -1
                done &= ~broken
            steps[idx] += 1
            if not same_step:
                # a slot that was resetting now holds a fresh episode for its (already assigned) job
                pending_reset[:] = False
            for s in np.flatnonzero(done):
                if next_job < jobs:
                    slot_job[s] = next_job
                    next_job += 1
                else:
                    slot_job[s] = -1
                if not same_step:
                    pending_reset[s] = True
        returns[next_job:] = np.nan  # jobs never started: every slot broke before it could take them
        delta = ObsStats.from_batch(np.concatenate(obs_batches)) if obs_batches else None
        return returns, steps, delta

    def _fail_chunk(self, width: int, exc: Exception, returns, steps, finished):
        """The vector environment raised as a whole (native vector envs; a slot's reset that fails twice): every
        unfinished job of the chunk fails, and the environment is rebuilt on next use."""
        self._record_failure(describe(exc))
        env = self._envs.pop(width, None)
        try:
            if env is not None:
                env.close()
        except Exception:  # noqa: BLE001 - it is dropped anyway
            pass
        returns = returns.copy()
        returns[~finished] = np.nan
        return returns, steps, None

    def evaluate(self, params: jax.Array | np.ndarray, key: jax.Array,
                 obs_stats: ObsStats | None = None) -> ChunkResult:
        c = params.shape[0]
        job_member = np.repeat(np.arange(c), self.episodes)
        width = self.vector_width or c * self.episodes
        ret, steps, delta = self.run_jobs(params, job_member, seed_from_key(key), obs_stats, width, self.obs_norm)
        fitness = ret.reshape(c, self.episodes).mean(1)
        return ChunkResult(fitness, steps.reshape(c, self.episodes).sum(1), delta)

    def evaluate_policy(self, params: jax.Array | np.ndarray, key: jax.Array, episodes: int,
                        obs_stats: ObsStats | None = None) -> np.ndarray:
        ret, _, _ = self.run_jobs(np.asarray(params)[None], np.zeros(episodes, np.int64), seed_from_key(key),
                                  obs_stats, episodes)
        return ret

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


@register("gym")
def make_gym_task(task_cfg: GymTaskConfig, policy_cfg: PolicyConfig) -> GymTask:
    return GymTask(task_cfg.env_id, policy_cfg, task_cfg.episodes_per_member, task_cfg.max_episode_steps,
                   task_cfg.obs_norm, task_cfg.vector_width, getattr(task_cfg, "obs_clip", 5.0))
