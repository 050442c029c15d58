"""ARS (Mania et al., 2018): the update against a hand-computed numpy step, top-b selection, the seed protocol's
member layout, config validation, and the zero-initialized linear policy of the paper (clipped, or the raw M x
without bias).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import esrun  # noqa: F401  (XLA flags before JAX use)
from esrun.config import load_config
from esrun.config.load import ConfigError
from esrun.config.schema import PolicyConfig, StrategyConfig
from esrun.policies import ActionSpec, build_policy
from esrun.strategies import STRATEGIES
from esrun.strategies.ars import ARS, top_directions
from esrun.strategies.openai_es import noise

KEY = jax.random.PRNGKey(11)


def make(num_params: int, population: int, **kw) -> ARS:
    cfg = StrategyConfig(name="ars", population=population, **kw)
    return STRATEGIES["ars"](num_params, population, cfg)


def test_members_are_mean_plus_minus_nu_eps_of_the_protocol_noise():
    s = make(7, 12, sigma=0.05)
    mean = jnp.linspace(-1.0, 1.0, 7)
    state = s.init(KEY, mean)._replace(generation=jnp.int32(3))
    x = np.asarray(s.member_params(state, jnp.arange(12)), np.float64)
    for k in range(6):
        eps = np.asarray(noise(state.key, state.generation, k, 7), np.float64)
        np.testing.assert_allclose(x[2 * k], np.asarray(mean) + 0.05 * eps, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(x[2 * k + 1], np.asarray(mean) - 0.05 * eps, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(s.range_params(state, jnp.int32(4), 6)), x[4:10], atol=1e-7)


def test_top_directions_rank_by_the_better_of_the_two_signs():
    r_plus = jnp.array([1.0, 9.0, 3.0, 0.0, 5.0])
    r_minus = jnp.array([8.0, 2.0, 3.0, 7.5, 0.0])
    # max: [8, 9, 3, 7.5, 5] -> order 1, 0, 3, 4, 2
    np.testing.assert_array_equal(top_directions(r_plus, r_minus, 3), [1, 0, 3])
    np.testing.assert_array_equal(top_directions(r_plus, r_minus, 5), [1, 0, 3, 4, 2])
    # ties go to the lower index
    np.testing.assert_array_equal(top_directions(jnp.ones(4), jnp.zeros(4), 2), [0, 1])


@pytest.mark.parametrize("top", [None, 2])
def test_tell_equals_a_hand_computed_numpy_step(top):
    P, N, alpha = 5, 4, 0.02
    s = make(P, 2 * N, sigma=0.03, learning_rate=alpha, top_directions=top)
    mean0 = np.array([0.5, -0.25, 0.0, 1.0, 2.0], np.float32)
    state = s.init(KEY, jnp.asarray(mean0))._replace(generation=jnp.int32(7))
    fitness = np.array([3.0, 1.0, -2.0, 4.0, 10.0, 0.5, 2.5, 2.0], np.float32)  # (r+, r-) pairs
    new, metrics = s.tell(state, jnp.asarray(fitness))

    eps = np.stack([np.asarray(noise(state.key, state.generation, k, P), np.float64) for k in range(N)])
    rp, rm = fitness[0::2].astype(np.float64), fitness[1::2].astype(np.float64)
    b = N if top is None else top
    keep = np.argsort(-np.maximum(rp, rm), kind="stable")[:b]
    if top == 2:
        assert list(keep) == [2, 1]  # max(r+, r-) = [3, 4, 10, 2.5]
    sigma_r = np.std(np.concatenate([rp[keep], rm[keep]]))
    expected = mean0 + alpha / (b * sigma_r) * ((rp[keep] - rm[keep]) @ eps[keep])
    np.testing.assert_allclose(np.asarray(new.mean), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(metrics["sigma_rewards"]), sigma_r, rtol=1e-6)
    assert int(new.generation) == 8


def test_equal_rewards_leave_the_mean_in_place():
    s = make(3, 6)
    state = s.init(KEY, jnp.ones(3))
    new, _ = s.tell(state, jnp.full(6, 2.0))
    np.testing.assert_array_equal(np.asarray(new.mean), np.ones(3, np.float32))


def test_config_validation_of_top_directions(tmp_path):
    with pytest.raises(ValueError, match="at most population / 2 = 4"):
        StrategyConfig(name="ars", population=8, top_directions=5)
    with pytest.raises(ValueError, match="ars only"):
        StrategyConfig(name="openai_es", population=8, top_directions=2)
    with pytest.raises(ValueError, match="both signs"):
        StrategyConfig(name="ars", population=8, antithetic=False)
    with pytest.raises(ConfigError, match="top_directions"):
        load_config(None, ["strategy.name=ars", "strategy.population=8", "strategy.top_directions=9"])


def test_linear_policy_of_the_paper_is_zero_and_clips():
    spec = ActionSpec(kind="continuous", dim=2, low=(-1.0, -0.5), high=(1.0, 0.5))
    pol = build_policy(PolicyConfig(type="linear", init_scale=0.0, squash="clip"), 3, spec)
    theta = pol.init(KEY)
    assert theta.shape == (3 * 2 + 2,) and not np.any(np.asarray(theta))
    w = jnp.array([[2.0, 0.1], [0.0, 0.0], [0.0, 0.0]]).ravel()
    theta = jnp.concatenate([w, jnp.zeros(2)])
    np.testing.assert_allclose(np.asarray(pol.apply(theta, jnp.array([0.25, 1.0, 1.0]))), [0.5, 0.025], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pol.apply(theta, jnp.array([3.0, 0.0, 0.0]))), [1.0, 0.3], rtol=1e-6)


def test_linear_policy_without_bias_passes_the_raw_m_x():
    """``bias: false, squash: none``: the paper's a = M x, no bias parameters, nothing clipped."""
    spec = ActionSpec(kind="continuous", dim=2, low=(-1.0, -0.5), high=(1.0, 0.5))
    pol = build_policy(PolicyConfig(type="linear", init_scale=0.0, squash="none", bias=False), 3, spec)
    theta = pol.init(KEY)
    assert theta.shape == (3 * 2,) and not np.any(np.asarray(theta))
    w = jnp.array([[2.0, 0.1], [0.0, 0.0], [0.0, -1.0]]).ravel()
    np.testing.assert_allclose(np.asarray(pol.apply(w, jnp.array([3.0, 5.0, 1.0]))), [6.0, -0.7], rtol=1e-6)
    mlp = build_policy(PolicyConfig(type="mlp", hidden=[4], bias=False), 3, spec)
    assert mlp.num_params == 3 * 4 + 4 * 2
