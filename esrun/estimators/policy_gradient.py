"""The policy-gradient baselines as losses on a padded batch of episodes: REINFORCE, +baseline, RLOO, GRPO, PPO.

A batch is N episodes padded to T steps (``Batch``); ``logp [N, T]`` is log pi_theta(a_t | s_t) of the actions
taken (:func:`token_logp`). Each method is a scalar loss to *minimise* whose gradient in theta is its estimator
of -grad_theta E[return]:

    reinforce            -1/N sum_i sum_t rtg_it log pi(a_it | s_it)                    (Williams, 1992)
    reinforce_baseline   -1/N sum_i sum_t (rtg_it - b_t) log pi(a_it | s_it),  b_t = time_baseline
    rloo                 -1/N sum_i A_i sum_t log pi(a_it | s_it),  A = leave-one-out within groups of G
    grpo                 grpo_loss, A = group-normalised within groups of G, pi_old = the sampling policy,
                         pi_ref = theta_0 (its KL term only when kl_coef > 0)
    ppo                  -T/(N T) sum_i sum_t min(r_it A_it, clip(r_it, 1 - eps, 1 + eps) A_it),
                         r = pi / pi_old, A = the batch-normalised (rtg - b_t)

where rtg_it = sum_{t' >= t} gamma^(t'-t) r_it' (:func:`reward_to_go`). The losses are the library's objectives
(:mod:`esrun.estimators.rl`); per-step advantages go through them as sequences of length one (rows ``[N*T, 1]``)
and are rescaled by T, so each loss is an average over episodes of a sum over time steps.

The keys of a run (docs/design.md, "The seed protocol"): worker w's episodes of iteration k use
``fold_in(fold_in(fold_in(PRNGKey(seed), 5), k), w)``; theta_0 = ``policy.init(fold_in(PRNGKey(seed), 3))``,
the key ES uses for x0, so ES and the baselines start from the same parameters.

Reward-to-go and the step advantages are computed on the host in numpy (float64 accumulation) once per
collected batch; everything differentiated is JAX.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from esrun.errors import OptionError
from esrun.estimators import rl as R

COMMON_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.01,
    "episodes_per_worker": 8,  # N: episodes each worker collects per iteration
    "gamma": 0.99,  # discount of the reward-to-go
    "eval_every": 5,  # iterations between greedy evaluations
    "eval_episodes": 10,
    "final_eval_episodes": 20,
    "max_episode_steps": None,
}
"""Options every method takes (the collection and evaluation schedule), with their defaults."""


# -- keys ------------------------------------------------------------------------------------------------------
def collect_key(seed: int, iteration: int, worker: int) -> jax.Array:
    """Key of worker ``w``'s episodes in iteration ``k``: fold_in(fold_in(fold_in(PRNGKey(seed), 5), k), w)."""
    root = jax.random.fold_in(jax.random.PRNGKey(seed), 5)
    return jax.random.fold_in(jax.random.fold_in(root, iteration), worker)


def initial_key(seed: int) -> jax.Array:
    """fold_in(PRNGKey(seed), 3): the key ES's Replica uses for x0, so ES and PG start from the same theta."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 3)


# -- batches ---------------------------------------------------------------------------------------------------
class Batch(NamedTuple):
    """N episodes padded to T steps (numpy or jax arrays).

    obs [N, T, D] float32; actions [N, T] int32; mask [N, T] float32 (1 while the episode runs);
    old_logp [N, T] log pi_old(a_t | s_t) recorded at sampling; rtg [N, T] discounted reward-to-go
    sum_{t' >= t} gamma^{t'-t} r_t'; returns [N] undiscounted episode return; adv [N, T] per-step advantage
    prepared by the method (zeros when unused); ref_logp [N, T] log pi_ref (the initial policy; GRPO's KL).
    """

    obs: np.ndarray
    actions: np.ndarray
    mask: np.ndarray
    old_logp: np.ndarray
    rtg: np.ndarray
    returns: np.ndarray
    adv: np.ndarray
    ref_logp: np.ndarray


def reward_to_go(rewards: np.ndarray, mask: np.ndarray, gamma: float) -> np.ndarray:
    """``rtg[:, t] = (r_t + gamma * rtg[:, t + 1]) * mask[:, t]``; rewards, mask [N, T] -> [N, T] float32
    (accumulated in float64)."""
    out = np.zeros_like(rewards, dtype=np.float32)
    acc = np.zeros(rewards.shape[0], np.float64)
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = (rewards[:, t] + gamma * acc) * mask[:, t]
        out[:, t] = acc
    return out


def time_baseline(rtg: jax.Array, mask: jax.Array) -> jax.Array:
    """b_t = sum_i mask_it rtg_it / max(sum_i mask_it, 1), the mean reward-to-go at step t of the episodes still
    running; [N, T] -> [T]. Independent of the action at t only up to the episode's own 1/N share (the usual
    batch baseline)."""
    return (rtg * mask).sum(0) / jnp.maximum(mask.sum(0), 1.0)


def normalised_step_advantages(rtg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PPO's A_it = (a_it - mean(a)) / (std(a) + 1e-8) * mask_it, a = (rtg - b_t) * mask, mean and std over the
    running steps of the batch; [N, T] -> [N, T] float32."""
    adv = (rtg - np.asarray(time_baseline(rtg, mask))[None]) * mask
    valid = mask > 0
    std = adv[valid].std() if valid.any() else 1.0
    return ((adv - adv[valid].mean()) / (std + 1e-8) * mask).astype(np.float32)


def token_logp(policy, params: jax.Array, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi_theta(a_t | s_t) = log_softmax(Policy.logits(theta, s_t))[a_t]; obs [N, T, D], actions [N, T] -> [N, T]
    (``policy`` is an ``esrun.policies`` policy with a categorical head)."""
    logits = jax.vmap(jax.vmap(policy.logits, (None, 0)), (None, 0))(params, obs)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None], axis=-1)[..., 0]


def _rows(x: jax.Array) -> jax.Array:
    return x.reshape(-1, 1)


# -- the five losses: (logp [N, T], Batch, options) -> [] ------------------------------------------------------
def _reinforce(logp: jax.Array, b: Batch, o: dict) -> jax.Array:
    """-1/N sum_i sum_t rtg_it log pi(a_it | s_it): REINFORCE with reward-to-go (Williams, 1992)."""
    t = logp.shape[1]
    return t * R.reinforce_loss(_rows(logp), b.rtg.reshape(-1), _rows(b.mask))


def _reinforce_baseline(logp: jax.Array, b: Batch, o: dict) -> jax.Array:
    """-1/N sum_i sum_t (rtg_it - b_t) log pi(a_it | s_it), b_t the batch mean reward-to-go at step t."""
    t = logp.shape[1]
    adv = (b.rtg - time_baseline(b.rtg, b.mask)[None]) * b.mask
    return t * R.reinforce_loss(_rows(logp), adv.reshape(-1), _rows(b.mask))


def _grouped(fn: Callable, returns: jax.Array, group: int) -> jax.Array:
    """``fn`` applied to each group of ``group`` consecutive returns: [N] -> [N]."""
    return jax.vmap(fn)(returns.reshape(-1, group)).reshape(-1)


def _rloo(logp: jax.Array, b: Batch, o: dict) -> jax.Array:
    """-1/N sum_i A_i sum_t log pi(a_it | s_it), A = leave_one_out_advantages(R) within each group of G."""
    adv = _grouped(R.leave_one_out_advantages, b.returns, o["group_size"])
    return R.reinforce_loss(logp, adv, b.mask)


def _grpo(logp: jax.Array, b: Batch, o: dict) -> jax.Array:
    """grpo_loss with A = group_advantages(R) per group of G, pi_old = the sampling policy, pi_ref = theta_0."""
    adv = _grouped(R.group_advantages, b.returns, o["group_size"])
    return R.grpo_loss(logp, b.old_logp, b.ref_logp, adv, b.mask, o["clip_eps"], o["kl_coef"], o["kl_estimator"])


def _ppo(logp: jax.Array, b: Batch, o: dict) -> jax.Array:
    """T x ppo_clip_loss over steps: -1/N sum_i sum_t min(r_it A_it, clip(r_it) A_it), A normalised (rtg - b_t)."""
    t = logp.shape[1]
    return t * R.ppo_clip_loss(_rows(logp), _rows(b.old_logp), b.adv.reshape(-1), _rows(b.mask), o["clip_eps"])


class PGMethod(NamedTuple):
    """A policy-gradient method: its loss ``(logp [N, T], Batch, options) -> []`` and its option defaults.

    ``epochs`` x ``minibatches`` (options) gradient steps per collected batch; ``group_size`` divides N."""

    loss: Callable[[jax.Array, Batch, dict], jax.Array]
    defaults: dict
    step_advantages: bool = False  # fill Batch.adv with normalised (rtg - b_t) at collection
    grouped: bool = False  # episodes in groups of G sharing a reset seed


METHODS: dict[str, PGMethod] = {
    "reinforce": PGMethod(_reinforce, {}),
    "reinforce_baseline": PGMethod(_reinforce_baseline, {}),
    "rloo": PGMethod(_rloo, {"group_size": 4}, grouped=True),
    "grpo": PGMethod(_grpo, {"group_size": 4, "epochs": 1, "clip_eps": 0.2, "kl_coef": 0.0,
                             "kl_estimator": "k3"}, grouped=True),
    "ppo": PGMethod(_ppo, {"epochs": 4, "minibatches": 2, "clip_eps": 0.2}, step_advantages=True),
}
"""method name -> PGMethod (the registry the compare harness and the tests iterate)."""


def resolve_options(method: str, options: dict) -> dict:
    """Defaults merged with ``options``; an unknown option or an inconsistent size raises OptionError (a UserError
    and a ValueError), one line, before any work starts."""
    if method not in METHODS:
        raise OptionError(f"unknown policy-gradient method {method!r}; known: {sorted(METHODS)}")
    m = METHODS[method]
    allowed = {**COMMON_DEFAULTS, "epochs": 1, "minibatches": 1, **m.defaults}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise OptionError(f"{method}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    o = {**allowed, **options}
    n = o["episodes_per_worker"]
    if m.grouped and (o["group_size"] < 2 or n % o["group_size"]):
        raise OptionError(f"{method}: group_size = {o['group_size']} must be >= 2 and divide "
                         f"episodes_per_worker = {n}")
    if n % o["minibatches"]:
        raise OptionError(f"{method}: minibatches = {o['minibatches']} must divide episodes_per_worker = {n}")
    return o


def updates_per_iteration(options: dict) -> int:
    """U = epochs x minibatches: the gradient steps (and all-reduces) per collected batch."""
    return int(options["epochs"]) * int(options["minibatches"])
