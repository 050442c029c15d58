"""The JAX environments in ``envs/`` reproduce Gymnasium 1.4's CartPole-v1 and Pendulum-v1.

Two checks per environment, both driving Gymnasium and the JAX env with the same random action sequence from the
same initial state (Gymnasium's ``unwrapped.state`` is set to the JAX env's reset state):

1. Formula identity, whole trajectory. With 64-bit JAX (``jax.enable_x64`` inside the test only) the JAX env
   computes in float64 like Gymnasium, so any difference is operation-order / libm rounding (~1e-16 per step),
   amplified by the dynamics. CartPole (until termination) agrees to 1e-12 absolute; Pendulum is chaotic under
   random torques and its 200-step trajectories agree to ~1e-11 (measured 3.5e-12 on the state, 1.2e-10 on the
   reward for 10 seeds), so its tolerance is 1e-9 absolute.
2. The shipped float32 path. (a) One step from the same state at every step of the trajectory (Gymnasium is
   re-synchronised to the JAX state before each step): the only difference is float32 rounding of one step, so
   ``rtol=atol=2e-6`` (a few float32 ulps, 2^-23 = 1.2e-7 relative, of values of order 1-10). (b) CartPole open
   loop until termination in float32: accumulated rounding stays below 1e-4 (measured 1e-5 worst over 20 seeds),
   rewards and termination flags equal at every step.
"""
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import cartpole, pendulum


def _cartpole_actions(seed, n=500):
    return np.random.default_rng(seed).integers(0, 2, size=n)


def _pendulum_actions(seed, n=200):
    # Beyond the torque limit on purpose, so clipping is exercised.
    return np.random.default_rng(seed).uniform(-2.5, 2.5, size=(n, 1)).astype(np.float32)


def _gym(env_id, physics):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.unwrapped.state = np.asarray(physics, np.float64)
    return env


def _pendulum_physics(state):
    return np.array([state.theta, state.theta_dot], np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cartpole_float64_trajectory_is_gymnasiums(seed):
    with jax.enable_x64(True):
        state, obs = cartpole.reset(jax.random.PRNGKey(seed))
        state = state._replace(physics=state.physics.astype(jnp.float64))
        genv = _gym("CartPole-v1", state.physics)
        step = jax.jit(cartpole.step)
        for t, a in enumerate(_cartpole_actions(seed)):
            state, obs, r, term, trunc = step(state, jnp.int32(a))
            gobs, gr, gterm, gtrunc, _ = genv.step(int(a))
            assert state.physics.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(state.physics), genv.unwrapped.state, rtol=0, atol=1e-12)
            assert (float(r), bool(term), bool(trunc)) == (gr, gterm, gtrunc), t
            if gterm:
                break
        assert gterm, "random actions should end the episode"
        assert int(state.t) == t + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_pendulum_float64_trajectory_is_gymnasiums(seed):
    with jax.enable_x64(True):
        state, _ = pendulum.reset(jax.random.PRNGKey(seed))
        state = state._replace(theta=state.theta.astype(jnp.float64), theta_dot=state.theta_dot.astype(jnp.float64))
        genv = _gym("Pendulum-v1", _pendulum_physics(state))
        step = jax.jit(pendulum.step)
        for t, a in enumerate(_pendulum_actions(seed)):
            state, obs, r, term, trunc = step(state, a)
            gobs, gr, gterm, gtrunc, _ = genv.step(a)
            np.testing.assert_allclose(_pendulum_physics(state), genv.unwrapped.state, rtol=0, atol=1e-9)
            np.testing.assert_allclose(float(r), gr, rtol=0, atol=1e-9)
            assert (bool(term), bool(trunc)) == (gterm, gtrunc), t
        assert t == 199 and gtrunc


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cartpole_float32_matches_gymnasium(seed):
    state, obs = cartpole.reset(jax.random.PRNGKey(seed))
    assert obs.dtype == jnp.float32 and np.all(np.abs(np.asarray(obs)) < 0.05)
    open_loop = _gym("CartPole-v1", state.physics)
    resynced = _gym("CartPole-v1", state.physics)
    step = jax.jit(cartpole.step)
    for t, a in enumerate(_cartpole_actions(seed)):
        resynced.unwrapped.state = np.asarray(state.physics, np.float64)
        state, obs, r, term, trunc = step(state, jnp.int32(a))
        o1, r1, term1, _, _ = resynced.step(int(a))
        o2, r2, term2, trunc2, _ = open_loop.step(int(a))
        np.testing.assert_allclose(np.asarray(obs), o1, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(np.asarray(obs), o2, rtol=0, atol=1e-4)
        assert (float(r), bool(term), bool(trunc)) == (r2, term2, trunc2), t
        assert bool(term) == term1
        if term2:
            break
    assert term2


@pytest.mark.parametrize("seed", [0, 1])
def test_pendulum_float32_one_step_matches_gymnasium(seed):
    state, obs = pendulum.reset(jax.random.PRNGKey(seed))
    assert abs(float(state.theta)) <= np.pi and abs(float(state.theta_dot)) <= 1.0
    genv = _gym("Pendulum-v1", _pendulum_physics(state))
    step = jax.jit(pendulum.step)
    for t, a in enumerate(_pendulum_actions(seed)):
        genv.unwrapped.state = _pendulum_physics(state)
        state, obs, r, term, trunc = step(state, a)
        gobs, gr, gterm, gtrunc, _ = genv.step(a)
        assert obs.dtype == jnp.float32 and r.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(obs), gobs, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(float(r), gr, rtol=2e-6, atol=2e-6)
        assert (bool(term), bool(trunc)) == (gterm, gtrunc), t
    assert gtrunc


def test_registry_and_gymnasium_make_agree_with_gymnasium_spaces():
    pairs = {"esrun/CartPole-v1": "CartPole-v1", "esrun/Pendulum-v1": "Pendulum-v1"}
    assert set(envs.JAX_ENVS) == set(pairs)
    for ours_id, theirs_id in pairs.items():
        ours, theirs = gym.make(ours_id), gym.make(theirs_id)
        spec = envs.JAX_ENVS[ours_id]
        assert ours.spec.max_episode_steps == theirs.spec.max_episode_steps == spec.max_episode_steps
        assert ours.observation_space == theirs.observation_space
        assert ours.action_space == theirs.action_space
        assert spec.observation_dim == theirs.observation_space.shape[0]
        obs, _ = ours.reset(seed=3)
        obs_again, _ = ours.reset(seed=3)
        np.testing.assert_array_equal(obs, obs_again)
        assert ours.observation_space.contains(obs)
        ours.action_space.seed(0)
        steps, done = 0, False
        while not done:
            obs, r, term, trunc, _ = ours.step(ours.action_space.sample())
            steps += 1
            done = term or trunc
        assert steps <= spec.max_episode_steps
        if ours_id == "esrun/Pendulum-v1":
            assert trunc and steps == 200
    assert envs.JAX_ENVS["esrun/CartPole-v1"].action_spec == envs.ActionSpec("discrete", n=2)
    assert envs.JAX_ENVS["esrun/Pendulum-v1"].action_spec == envs.ActionSpec("continuous", dim=1, low=-2.0, high=2.0)
