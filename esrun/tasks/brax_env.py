"""Brax environments (``task.type: brax``): a chunk's whole rollout is one jitted program on the JAX devices.

Modelled on :mod:`esrun.tasks.jax_env`. For a chunk ``params: [C, P]`` with ``E = episodes_per_member``,
horizon ``H = episode_length / action_repeat`` policy steps and ``K = action_repeat``, episode ``e`` of member
``j`` starts from ``env.reset(fold_in(fold_in(key, j), e))`` and runs

    x_t = clip((o_t - mu) / s, -c, c)   (obs_norm, c = task.obs_clip, default 5; c = null: not clipped; else x_t = o_t)
    a_t = policy.apply(params[j], x_t);  K times: state <- env.step(state, a_t), G_je += r, n_je += 1 while alive
    alive <- not done  (Brax's ``done``: the robot fell / left its healthy range)

with a ``lax.while_loop`` over time that, under ``jax.vmap`` over members and episodes, stops as soon as every
episode of the chunk is done or at ``H``. ``fitness[j] = mean_e G_je`` (float64 on the host), ``steps[j] =
sum_e n_je`` useful env steps (each of Brax's env steps is ``n_frames`` physics substeps). Rewards after ``done``
are not counted; the physics of a finished episode keeps running (freezing a Brax state every step costs a copy
of the whole pipeline state, and nothing of it is read again).

Observation statistics (``obs_norm``): each episode keeps a Welford (count, mean, M2) of the observations the
policy acted on while alive, in float32 per episode; the host merges the ``[C, E]`` episode statistics in
float64 in row order (Chan et al.), so the result is the same however the chunk is sharded.

Sharding: the members of a chunk are split evenly over ``jax.local_devices()`` (esrun.tasks.sharding); the
mean policy's evaluation (one member) runs on one device.

brax (and with it mujoco-mjx) is imported only when a Brax task is built or its env names are checked, so other
runs do not pay for it. brax 0.14 needs Python >= 3.11.
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from esrun.errors import UserError
from esrun.policies import ActionSpec, build_policy
from esrun.tasks.base import ChunkResult, Task, register
from esrun.tasks.jax_env import episode_keys
from esrun.tasks.obs_norm import ObsStats
from esrun.tasks.sharding import constrain, member_sharding, place

if TYPE_CHECKING:

    from esrun.config.schema import BraxTaskConfig, PolicyConfig


def _brax_envs():
    """The ``brax.envs`` module, or a one-line UserError saying what is missing."""
    if sys.version_info < (3, 11):
        raise UserError(f"task.type=brax needs Python >= 3.11 (brax 0.14); this is "
                        f"{sys.version_info.major}.{sys.version_info.minor}")
    try:
        # mujoco.mjx prints "Failed to import warp" on stdout when the optional NVIDIA Warp is absent.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from brax import envs
    except ImportError as exc:
        raise UserError(f"task.type=brax needs brax ({exc}): pip install 'esrun[brax]'") from None
    return envs


def env_exists(env_name: str) -> tuple[bool, list[str]]:
    """Whether Brax knows ``env_name``, and the known names."""
    known = sorted(_brax_envs()._envs)
    return env_name in known, known


@cache
def brax_env(env_name: str, backend: str) -> Any:
    """One Brax env object per (name, pipeline) and process: it is a static argument of the jitted chunk program
    (hashed by identity), so tasks built from equal configs share one compiled program."""
    envs = _brax_envs()
    with warnings.catch_warnings():  # "Brax System, pipelines and environments are not actively maintained"
        warnings.simplefilter("ignore")
        return envs.get_environment(env_name, backend=backend)


def _welford(stats, x, alive):
    """One masked Welford update of ``(count [], mean [D], m2 [D])`` with observation ``x [D]``."""
    n, mean, m2 = stats
    n1 = n + alive.astype(jnp.float32)
    delta = jnp.where(alive, x - mean, 0.0)
    mean1 = mean + delta / jnp.maximum(n1, 1.0)
    return n1, mean1, m2 + delta * (x - mean1)


def _input(obs, mu, sd, obs_norm: bool, obs_clip: float | None):
    """The policy input: ``clip((obs - mu) / sd, -obs_clip, obs_clip)`` with obs_norm (no clip for None), else obs."""
    if not obs_norm:
        return obs
    x = (obs - mu) / sd
    return x if obs_clip is None else jnp.clip(x, -obs_clip, obs_clip)


def _episode(env, apply: Callable, horizon: int, repeat: int, obs_norm: bool, obs_clip: float | None, params, key,
             mu, sd):
    """``(return [] f32, env steps [] i32, (count [], mean [D], m2 [D]))`` of one episode of ``params [P]``."""
    state = env.reset(key)
    dim = state.obs.shape[-1]
    stats = (jnp.zeros((), jnp.float32), jnp.zeros((dim,), jnp.float32), jnp.zeros((dim,), jnp.float32))
    carry = (state, jnp.zeros((), bool), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), stats,
             jnp.zeros((), jnp.int32))

    def body(c):
        state, done, ret, steps, stats, t = c
        obs = state.obs
        if obs_norm:
            stats = _welford(stats, obs, ~done)
        action = apply(params, _input(obs, mu, sd, obs_norm, obs_clip))

        def env_step(inner, _):  # one of the K env steps that repeat ``action``
            state, done, ret, steps = inner
            state = env.step(state, action)
            alive = ~done
            ret = ret + jnp.where(alive, state.reward, 0.0)
            return (state, done | (state.done > 0.5), ret, steps + alive.astype(jnp.int32)), None

        (state, done, ret, steps), _ = jax.lax.scan(env_step, (state, done, ret, steps), None, length=repeat)
        return state, done, ret, steps, stats, t + 1

    carry = jax.lax.while_loop(lambda c: (~c[1]) & (c[5] < horizon), body, carry)
    return carry[2], carry[3], carry[4]


@partial(jax.jit, static_argnames=("env", "policy", "horizon", "repeat", "obs_norm", "obs_clip", "episodes",
                                   "sharding"))
def _run_chunk(params, key, mu, sd, *, env, policy, horizon, repeat, obs_norm, obs_clip, episodes, sharding=None):
    """``params [C, P]`` -> returns ``[C, E]``, steps ``[C, E]``, episode statistics ``([C, E], [C, E, D] x2)``."""
    keys = constrain(episode_keys(key, params.shape[0], episodes), sharding)
    one = lambda p, k: _episode(env, policy.apply, horizon, repeat, obs_norm, obs_clip, p, k, mu, sd)  # noqa: E731
    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, 0))(params, keys)


def _merge_episode_stats(count, mean, m2) -> ObsStats | None:
    """Episode statistics ``[C, E]`` merged in row order, float64."""
    count, mean, m2 = (np.asarray(a, np.float64) for a in (count, mean, m2))
    dim = mean.shape[-1]
    out = ObsStats.zeros(dim)
    for n, m, s in zip(count.reshape(-1), mean.reshape(-1, dim), m2.reshape(-1, dim)):
        out = out.merge(ObsStats(float(n), m, s))
    return out if out.count > 0 else None


class BraxTask(Task):
    """Fitness of policies on a Brax environment (continuous actions in [-1, 1])."""

    has_eval = True
    obs_dim: int  # always set (observation normalization)

    def __init__(self, env_name: str, backend: str, policy_cfg: Any, episode_length: int = 1000,
                 action_repeat: int = 1, episodes_per_member: int = 1, obs_norm: bool = True,
                 obs_clip: float | None = 5.0):
        if episode_length % action_repeat:
            raise UserError(f"task.action_repeat = {action_repeat} must divide task.episode_length = {episode_length}")
        ok, known = env_exists(env_name)
        if not ok:
            raise UserError(f"task.env_name = {env_name!r}: no such Brax environment; known: {', '.join(known)}")
        self.env_name, self.backend = env_name, backend
        self.env = brax_env(env_name, backend)
        self.obs_dim = int(self.env.observation_size)
        act = int(self.env.action_size)
        spec = ActionSpec(kind="continuous", dim=act, low=(-1.0,) * act, high=(1.0,) * act)
        self.policy = build_policy(policy_cfg, self.obs_dim, spec)
        self.num_params = int(self.policy.num_params)
        self.horizon = episode_length // action_repeat
        self.repeat = int(action_repeat)
        self.episodes = int(episodes_per_member)
        self.obs_norm = bool(obs_norm)
        self.obs_clip = None if obs_clip is None else float(obs_clip)

    def _normalizer(self, obs_stats: ObsStats | None):
        if self.obs_norm and obs_stats is not None:
            return obs_stats.normalizer()
        return np.zeros(self.obs_dim, np.float32), np.ones(self.obs_dim, np.float32)

    def _run(self, params: np.ndarray, key, episodes: int, obs_stats, sharding=None):
        mu, sd = self._normalizer(obs_stats)
        return _run_chunk(place(params, sharding), key, jnp.asarray(mu), jnp.asarray(sd), env=self.env,
                          policy=self.policy, horizon=self.horizon, repeat=self.repeat, obs_norm=self.obs_norm,
                          obs_clip=self.obs_clip, episodes=episodes, sharding=sharding)

    def initial_params(self, key: jax.Array) -> np.ndarray:
        return np.asarray(self.policy.init(key), np.float32)

    def evaluate(self, params: jax.Array | np.ndarray, key: jax.Array,
                 obs_stats: ObsStats | None = None) -> ChunkResult:
        params = np.asarray(params, np.float32)
        returns, steps, stats = self._run(params, key, self.episodes, obs_stats, member_sharding(params.shape[0]))
        fitness = np.asarray(returns, np.float64).mean(axis=1)
        delta = _merge_episode_stats(*stats) if self.obs_norm else None
        return ChunkResult(fitness, np.asarray(steps, np.int64).sum(axis=1), delta)

    def evaluate_policy(self, params: jax.Array | np.ndarray, key: jax.Array, episodes: int,
                        obs_stats: ObsStats | None = None) -> np.ndarray:
        """``[episodes]`` float64 returns of ``params: [P]`` (episode e from ``fold_in(fold_in(key, 0), e)``)."""
        returns, _, _ = self._run(np.asarray(params, np.float32)[None], key, int(episodes), obs_stats)
        return np.asarray(returns[0], np.float64)


@register("brax")
def make_brax_task(task_cfg: BraxTaskConfig, policy_cfg: PolicyConfig) -> BraxTask:
    return BraxTask(task_cfg.env_name, task_cfg.backend, policy_cfg, task_cfg.episode_length,
                    task_cfg.action_repeat, task_cfg.episodes_per_member, task_cfg.obs_norm, task_cfg.obs_clip)
