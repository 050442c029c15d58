"""The policy-gradient baselines' losses on a padded episode batch, against the sums their docstrings state."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun.errors import OptionError
from esrun.estimators import rl as R
from esrun.estimators.policy_gradient import (
    METHODS,
    Batch,
    normalised_step_advantages,
    resolve_options,
    reward_to_go,
    time_baseline,
)

N, T = 4, 5


def _batch(seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 3, 1, 4])
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
    rewards = rng.uniform(0, 1, (N, T)).astype(np.float32) * mask
    rtg = reward_to_go(rewards, mask, 0.9)
    old = (rng.normal(size=(N, T)) * 0.1 - 0.7).astype(np.float32)
    return Batch(obs=np.zeros((N, T, 1), np.float32), actions=np.zeros((N, T), np.int32), mask=mask, old_logp=old,
                 rtg=rtg, returns=rewards.sum(1), adv=normalised_step_advantages(rtg, mask), ref_logp=old)


def test_reward_to_go_is_the_discounted_masked_tail_sum():
    rewards = np.array([[1.0, 2.0, 3.0, 9.0]], np.float32)
    mask = np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)
    np.testing.assert_allclose(reward_to_go(rewards, mask, 0.5), [[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 0]])


def test_time_baseline_averages_only_running_episodes():
    rtg = jnp.array([[4.0, 2.0], [2.0, 7.0]])
    mask = jnp.array([[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(time_baseline(rtg, mask), [3.0, 2.0])


def test_reinforce_losses_are_episode_means_of_step_sums():
    b = _batch()
    logp = jnp.asarray(np.random.default_rng(1).normal(size=(N, T)).astype(np.float32))
    want = -np.sum(b.rtg * np.asarray(logp) * b.mask) / N
    assert float(METHODS["reinforce"].loss(logp, b, {})) == pytest.approx(want, rel=1e-5)
    adv = (b.rtg - np.asarray(time_baseline(b.rtg, b.mask))[None]) * b.mask
    want_b = -np.sum(adv * np.asarray(logp) * b.mask) / N
    assert float(METHODS["reinforce_baseline"].loss(logp, b, {})) == pytest.approx(want_b, rel=1e-5)


def test_rloo_uses_leave_one_out_advantages_within_each_group():
    b = _batch()
    logp = jnp.asarray(np.random.default_rng(2).normal(size=(N, T)).astype(np.float32))
    r = b.returns.reshape(2, 2)
    adv = (r - r[:, ::-1]).reshape(-1)  # groups of 2: A_i = R_i - R_other
    want = -np.mean(adv * (np.asarray(logp) * b.mask).sum(1))
    assert float(METHODS["rloo"].loss(logp, b, {"group_size": 2})) == pytest.approx(want, rel=1e-5)


def test_ppo_at_the_sampling_policy_is_minus_the_mean_step_advantage_sum():
    b = _batch()  # logp == old_logp: every ratio is 1, so the clipped surrogate is A_it itself
    o = resolve_options("ppo", {"episodes_per_worker": N})
    want = -np.sum(b.adv * b.mask) / N
    assert float(METHODS["ppo"].loss(jnp.asarray(b.old_logp), b, o)) == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_a_finite_gradient(method):
    b = _batch()
    o = resolve_options(method, {"episodes_per_worker": N, **({"group_size": 2} if METHODS[method].grouped else {})})
    g = jax.grad(lambda lp: METHODS[method].loss(lp, b, o))(jnp.asarray(b.old_logp) + 0.05)
    assert g.shape == (N, T) and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0


def test_grpo_with_kl_differs_from_grpo_without():
    b = _batch()._replace(ref_logp=_batch().old_logp - 0.3)
    o = resolve_options("grpo", {"episodes_per_worker": N, "group_size": 2})
    lp = jnp.asarray(b.old_logp)
    assert float(METHODS["grpo"].loss(lp, b, {**o, "kl_coef": 0.5})) != float(METHODS["grpo"].loss(lp, b, o))
    assert float(METHODS["grpo"].loss(lp, b, o)) == pytest.approx(
        float(R.grpo_loss(lp, lp, b.ref_logp, jax.vmap(R.group_advantages)(b.returns.reshape(2, 2)).reshape(-1),
                          b.mask, 0.2, 0.0)), rel=1e-6)


@pytest.mark.parametrize("method,options,words", [
    ("reinforce", {"bogus": 1}, "unknown option"),
    ("rloo", {"episodes_per_worker": 6, "group_size": 4}, "must be >= 2 and divide"),
    ("ppo", {"episodes_per_worker": 6, "minibatches": 4}, "must divide"),
    ("a2c", {}, "unknown policy-gradient method"),
])
def test_bad_options_are_one_line_option_errors(method, options, words):
    with pytest.raises(OptionError, match=words):
        resolve_options(method, options)
