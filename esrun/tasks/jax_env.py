"""JAX-native environments (``envs/``): a chunk's whole rollout is one jitted program.

For a chunk ``params: [C, P]`` with ``E = episodes_per_member`` episodes per member and horizon ``T``
(``max_episode_steps``, default the environment's), episode ``e`` of member ``j`` starts from
``env.reset(fold_in(fold_in(key, j), e))`` and runs

    a_t = policy.apply(params[j], o_t);  (s_{t+1}, o_{t+1}, r_t, term_t, trunc_t) = env.step(s_t, a_t)
    G_je = sum_{t < tau} r_t,   tau = 1 + first t with term_t or trunc_t   (tau <= T)

with the loop over time and ``jax.vmap`` over members and episodes, so one XLA call evaluates the chunk on
CPU or GPU. Finished episodes are masked: their state is frozen and their rewards are not counted, so the
return counts rewards up to and including the terminating step only. An episode whose observation turns NaN or
infinite ends there with ``G_je = NaN`` (a failed member, ranked worst). ``fitness[j] = mean_e G_je`` (float64),
``steps[j] = sum_e tau_je`` (int64: useful steps only).

Two loops compute the same numbers, bitwise (``loop=``): ``"scan"`` runs ``lax.scan`` for exactly ``T`` steps;
``"while"`` (the default) runs ``lax.while_loop``, which under ``vmap`` stops as soon as every episode of the
chunk is done. Measured on CPU (bench/jax_rollout.py, CartPole, MLP 4-16-2, 2 shared cores): when some member
lasts all 500 steps the two take the same time within noise (pop 1024: best of 15, 83 ms scan vs 72 ms while;
medians 106 vs 108 ms); when every episode ends early the while_loop is ~40x faster (pop 1024, all episodes
over in 11 steps: 2 ms vs 92 ms). So the while_loop is never slower here and wins big in early generations. (On
a GPU each while iteration reads its predicate back to the host, a few microseconds; the scan avoids that.)

A member's fitness depends only on ``(key, j, params[j])``: keys are folded per member, and the vmapped program
computes row ``j`` without reading other rows. Rewards are accumulated in float32 (exact for CartPole's unit
rewards; for Pendulum, relative rounding ~1e-7 per step) and returned as float64.

Observation normalization is not used on this path: ``obs_stats`` is accepted and ignored, ``obs_delta`` is
``None``.

The members of a chunk are split evenly over all local JAX devices (esrun.tasks.sharding); the evaluation of
the mean policy (one member) runs on one device.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from envs import JAX_ENVS
from esrun.policies import ActionSpec, build_policy
from esrun.tasks.base import ChunkResult, Task, register
from esrun.tasks.sharding import constrain, member_sharding, place

if TYPE_CHECKING:

    from envs import ActionSpec as EnvActionSpec
    from envs import JaxEnv
    from esrun.config.schema import JaxEnvTaskConfig, PolicyConfig
    from esrun.tasks.obs_norm import ObsStats


def policy_action_spec(env_spec: EnvActionSpec) -> ActionSpec:
    """The policy-side ``ActionSpec`` of an ``envs.ActionSpec``."""
    if env_spec.kind == "discrete":
        return ActionSpec(kind="discrete", n=env_spec.n)
    return ActionSpec(kind="continuous", dim=env_spec.dim, low=(float(env_spec.low),) * env_spec.dim,
                      high=(float(env_spec.high),) * env_spec.dim)


def episode_keys(key: jax.Array, members: int, episodes: int) -> jax.Array:
    """``[members, episodes]`` keys, ``fold_in(fold_in(key, j), e)``."""
    per_member = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(members))
    return jax.vmap(lambda k: jax.vmap(lambda e: jax.random.fold_in(k, e))(jnp.arange(episodes)))(per_member)


def _masked_step(env, env_params, apply: Callable, params, carry):
    """One step of one episode; a finished episode keeps its state and earns nothing."""
    state, obs, done, ret, steps = carry
    action = apply(params, obs)
    new_state, new_obs, reward, term, trunc = env.step(state, action, env_params)
    alive = ~done
    # A non-finite observation fails the episode: it ends with a NaN return, which the runner ranks worst.
    broken = alive & ~jnp.all(jnp.isfinite(new_obs))
    state = jax.tree.map(lambda new, old: jnp.where(alive, new, old), new_state, state)
    obs = jnp.where(alive & ~broken, new_obs, obs)
    ret = jnp.where(broken, jnp.nan, ret + jnp.where(alive, reward, 0.0))
    steps = steps + alive.astype(jnp.int32)
    return state, obs, done | term | trunc | broken, ret, steps


def _scan_episode(env, env_params, apply, horizon, params, key):
    state, obs = env.reset(key, env_params)
    carry = (state, obs, jnp.zeros((), bool), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
    carry, _ = jax.lax.scan(lambda c, _: (_masked_step(env, env_params, apply, params, c), None), carry,
                            None, length=horizon)
    return carry[3], carry[4]


def _while_episode(env, env_params, apply, horizon, params, key):
    # Under vmap the batched while_loop runs until *every* episode's predicate is false (early stop for the
    # chunk) and keeps finished episodes' carries unchanged; the explicit mask keeps the semantics of the scan.
    state, obs = env.reset(key, env_params)
    carry = (state, obs, jnp.zeros((), bool), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
             jnp.zeros((), jnp.int32))

    def body(c):
        return (*_masked_step(env, env_params, apply, params, c[:5]), c[5] + 1)

    carry = jax.lax.while_loop(lambda c: (~c[2]) & (c[5] < horizon), body, carry)
    return carry[3], carry[4]


LOOPS: dict[str, Callable] = {"scan": _scan_episode, "while": _while_episode}
"""time loop name -> episode(env, env_params, apply, horizon, params [P], key) -> (return [], steps [])."""


def rollout(env: JaxEnv, env_params: Any, apply: Callable, horizon: int, loop: str, params: jax.Array,
            keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns and useful steps of every episode: ``params [C, P], keys [C, E] -> ([C, E] float32, [C, E] int32)``."""
    if params.ndim != 2 or keys.shape[0] != params.shape[0]:
        raise ValueError(f"params must be [C, P] and keys [C, E, ...]; got {params.shape} and {keys.shape}")
    episode = LOOPS[loop]
    one = lambda p, k: episode(env, env_params, apply, horizon, p, k)  # noqa: E731
    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, 0))(params, keys)


@partial(jax.jit, static_argnames=("env", "env_params", "policy", "horizon", "loop", "episodes", "sharding"))
def _run_chunk(params, key, *, env, env_params, policy, horizon, loop, episodes, sharding=None):
    # Module-level with hashable static arguments (the policy is a frozen dataclass compared by value -- a bound
    # method would compare its instance by identity --, Params a NamedTuple), so
    # tasks built from equal configs on the same worker share one compiled program. ``sharding`` splits the
    # members over the local devices (esrun.tasks.sharding); None = one device.
    keys = constrain(episode_keys(key, params.shape[0], episodes), sharding)
    return rollout(env, env_params, policy.apply, horizon, loop, params, keys)


class JaxEnvTask(Task):
    """Fitness of policies on a JAX-native environment; ``obs_stats`` is ignored (no normalization here)."""

    has_eval = True

    def __init__(self, env_id: str, policy: Any, episodes_per_member: int = 1,
                 max_episode_steps: int | None = None, loop: str = "while"):
        if env_id not in JAX_ENVS:
            raise ValueError(f"unknown JAX environment {env_id!r}; known: {sorted(JAX_ENVS)}")
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {sorted(LOOPS)}, got {loop!r}")
        self.env_id = env_id
        self.env = JAX_ENVS[env_id]
        self.env_params = self.env.params
        if max_episode_steps is not None:
            self.env_params = self.env_params._replace(max_steps=int(max_episode_steps))
        self.horizon = int(self.env_params.max_steps)
        self.policy = policy
        self.num_params = int(policy.num_params)
        self.episodes = int(episodes_per_member)
        self.loop = loop

    def _run(self, params, key, episodes: int, sharding=None):
        return _run_chunk(place(params, sharding), key, env=self.env, env_params=self.env_params,
                          policy=self.policy, horizon=self.horizon, loop=self.loop, episodes=episodes,
                          sharding=sharding)

    def initial_params(self, key: jax.Array) -> np.ndarray:
        return np.asarray(self.policy.init(key), np.float32)

    def evaluate(self, params: jax.Array | np.ndarray, key: jax.Array,
                 obs_stats: ObsStats | None = None) -> ChunkResult:
        params = np.asarray(params, np.float32)
        returns, steps = self._run(params, key, self.episodes, member_sharding(params.shape[0]))
        returns = np.asarray(returns, np.float64)
        return ChunkResult(returns.mean(axis=1), np.asarray(steps, np.int64).sum(axis=1), None)

    def evaluate_policy(self, params: jax.Array | np.ndarray, key: jax.Array, episodes: int,
                        obs_stats: ObsStats | None = None) -> np.ndarray:
        """``[episodes]`` float64 returns of ``params: [P]`` (episode e from ``fold_in(fold_in(key, 0), e)``)."""
        returns, _ = self._run(jnp.asarray(params, jnp.float32)[None], key, int(episodes))
        return np.asarray(returns[0], np.float64)


@register("jax_env")
def make_jax_env_task(task_cfg: JaxEnvTaskConfig, policy_cfg: PolicyConfig) -> JaxEnvTask:
    env = JAX_ENVS[task_cfg.env_id]
    policy = build_policy(policy_cfg, env.observation_dim, policy_action_spec(env.action_spec))
    return JaxEnvTask(task_cfg.env_id, policy, task_cfg.episodes_per_member, task_cfg.max_episode_steps)
