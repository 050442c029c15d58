"""Policies: flat parameters and their layout, the discrete and continuous heads, jit + vmap over members, and a
head that does not fit the environment refused as a user error."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun.config import PolicyConfig
from esrun.policies import ActionSpec, build_policy


def test_mlp_param_count_layout_and_heads():
    pol = build_policy(PolicyConfig(type="mlp", hidden=[16]), 4, ActionSpec(kind="discrete", n=2))
    assert pol.num_params == 4 * 16 + 16 + 16 * 2 + 2 == 114
    p = pol.init(jax.random.PRNGKey(0))
    assert p.shape == (114,) and p.dtype == jnp.float32
    (w0, b0), (w1, b1) = pol.unravel(p)
    obs = jnp.array([0.1, -0.2, 0.3, 0.05])
    logits = jnp.tanh(obs @ w0 + b0) @ w1 + b1
    np.testing.assert_allclose(pol.logits(p, obs), logits, rtol=1e-6)
    assert int(pol.apply(p, obs)) == int(jnp.argmax(logits))
    lin = build_policy(PolicyConfig(type="linear"), 3, ActionSpec(kind="continuous", dim=2, low=(-2.0, 0.0),
                                                                       high=(2.0, 1.0)))
    assert lin.num_params == 3 * 2 + 2
    a = jax.vmap(lin.apply, in_axes=(0, None))(jax.random.normal(jax.random.PRNGKey(1), (50, 8)) * 10,
                                                jnp.ones(3))
    assert a.shape == (50, 2)
    assert bool(jnp.all(a[:, 0] >= -2) & jnp.all(a[:, 0] <= 2) & jnp.all(a[:, 1] >= 0) & jnp.all(a[:, 1] <= 1))


def test_policy_jit_vmap_over_members_matches_loop():
    pol = build_policy(PolicyConfig(hidden=[8, 8], activation="relu"), 5, ActionSpec(kind="discrete", n=3))
    params = jax.random.normal(jax.random.PRNGKey(2), (7, pol.num_params))
    obs = jax.random.normal(jax.random.PRNGKey(3), (7, 5))
    batched = jax.jit(jax.vmap(pol.apply))(params, obs)
    assert [int(x) for x in batched] == [int(pol.apply(params[i], obs[i])) for i in range(7)]


def test_head_mismatch_is_a_user_error():
    from esrun.config import ConfigError

    with pytest.raises(ConfigError, match="policy.head = 'continuous'"):
        build_policy(PolicyConfig(head="continuous"), 4, ActionSpec(kind="discrete", n=2))
