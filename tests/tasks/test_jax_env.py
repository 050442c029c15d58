"""JaxEnvTask: the jitted, vmapped rollout equals a plain step-by-step loop over the JAX env, is deterministic,
and a member's fitness does not depend on the rest of its chunk."""
import hashlib

import jax
import numpy as np
import pytest

from envs import JAX_ENVS
from esrun.config.schema import JaxEnvTaskConfig, PolicyConfig
from esrun.policies import build_policy
from esrun.tasks import TASKS
from esrun.tasks.jax_env import LOOPS, JaxEnvTask, policy_action_spec

CARTPOLE, PENDULUM = "esrun/CartPole-v1", "esrun/Pendulum-v1"


def _linear_task(env_id, episodes, max_steps=None, loop="while"):
    env = JAX_ENVS[env_id]
    policy = build_policy(PolicyConfig(type="linear"), env.observation_dim, policy_action_spec(env.action_spec))
    return JaxEnvTask(env_id, policy, episodes, max_steps, loop=loop)


def _cartpole_linear(w_right):
    """Linear policy (W [4, 2], b [2]) whose argmax pushes right iff ``w_right . obs > 0``."""
    w = np.zeros((4, 2), np.float32)
    w[:, 1] = w_right
    return np.concatenate([w.ravel(), np.zeros(2, np.float32)])


# Balances for all 500 steps / fails after ~40 / after 10-50 / falls at once: exercises truncation and masking.
CARTPOLE_POLICIES = np.stack([_cartpole_linear(w) for w in
                              ([0, 0, 1, 0.5], [0, 0, 1, 0], [0.5, 0, 1, 0], [0, 0, -1, 0])])
# Pendulum: torque = 2 tanh(w . obs + b); two hand-set feedback laws and two random vectors.
PENDULUM_POLICIES = np.array([[-1.0, -2.0, -0.5, 0.0], [0.3, -1.0, -0.2, 0.1],
                              [0.5, 0.5, 0.5, -0.5], [0.0, 0.0, 0.0, 0.0]], np.float32)
POLICIES = {CARTPOLE: CARTPOLE_POLICIES, PENDULUM: PENDULUM_POLICIES}


def _python_loop(task, params, key, episodes):
    """Reference: one episode at a time, one step at a time, stopping at termination or truncation."""
    env, env_params = task.env, task.env_params
    step = jax.jit(lambda s, a: env.step(s, a, env_params))
    act = jax.jit(task.policy.apply)
    returns = np.zeros((len(params), episodes), np.float32)
    steps = np.zeros((len(params), episodes), np.int64)
    for j, p in enumerate(params):
        for e in range(episodes):
            state, obs = env.reset(jax.random.fold_in(jax.random.fold_in(key, j), e), env_params)
            done = False
            while not done:
                state, obs, r, term, trunc = step(state, act(p, obs))
                returns[j, e] += np.float32(r)
                steps[j, e] += 1
                done = bool(term) or bool(trunc)
    return returns.astype(np.float64).mean(1), steps.sum(1)


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("env_id", [CARTPOLE, PENDULUM])
def test_fitness_equals_step_by_step_loop(env_id, loop):
    task = _linear_task(env_id, episodes=2, loop=loop)
    key = jax.random.PRNGKey(7)
    result = task.evaluate(POLICIES[env_id], key)
    fitness, steps = _python_loop(task, POLICIES[env_id], key, 2)
    assert result.fitness.dtype == np.float64 and result.fitness.shape == (4,)
    assert result.steps.dtype == np.int64 and result.obs_delta is None
    np.testing.assert_array_equal(result.steps, steps)
    if env_id == CARTPOLE:
        np.testing.assert_array_equal(result.fitness, fitness)  # unit rewards: exact
        assert result.fitness[0] == 500.0 and result.fitness[3] < 15  # truncated at 500 / falls at once
        assert len(set(result.fitness.tolist())) == 4
    else:
        assert result.steps.tolist() == [400] * 4  # never terminates, truncated at 200
        # Same float32 operations (bitwise equal when measured); XLA fusion of the whole program may reorder roundings.
        np.testing.assert_allclose(result.fitness, fitness, rtol=1e-6)
        assert np.all(result.fitness < 0)


def test_max_episode_steps_truncates():
    task = _linear_task(CARTPOLE, episodes=3, max_steps=57)
    result = task.evaluate(CARTPOLE_POLICIES[:1], jax.random.PRNGKey(0))
    assert result.fitness.tolist() == [57.0] and result.steps.tolist() == [171]


def _digest(result):
    return hashlib.sha256(result.fitness.tobytes() + result.steps.tobytes()).hexdigest()


@pytest.mark.parametrize("env_id", [CARTPOLE, PENDULUM])
def test_deterministic_and_member_independent(env_id):
    task = TASKS["jax_env"](JaxEnvTaskConfig(env_id=env_id, episodes_per_member=2), PolicyConfig(hidden=[16]))
    chunk = np.stack([task.initial_params(jax.random.PRNGKey(i)) for i in range(6)])
    key = jax.random.PRNGKey(3)
    first = task.evaluate(chunk, key)
    assert _digest(task.evaluate(chunk.copy(), key)) == _digest(first)
    fresh = TASKS["jax_env"](JaxEnvTaskConfig(env_id=env_id, episodes_per_member=2), PolicyConfig(hidden=[16]))
    assert _digest(fresh.evaluate(chunk, key)) == _digest(first)
    assert _digest(task.evaluate(chunk, jax.random.PRNGKey(4))) != _digest(first)

    # Member j's row alone determines its fitness: rewrite every other row.
    j = 2
    other = np.stack([task.initial_params(jax.random.PRNGKey(100 + i)) for i in range(6)])
    other[j] = chunk[j]
    mixed = task.evaluate(other, key)
    assert mixed.fitness[j].tobytes() == first.fitness[j].tobytes()
    assert mixed.steps[j] == first.steps[j]
    assert not np.array_equal(np.delete(mixed.fitness, j), np.delete(first.fitness, j))  # the others did change


def test_scan_and_while_agree_bitwise():
    key = jax.random.PRNGKey(11)
    for env_id in (CARTPOLE, PENDULUM):
        a = _linear_task(env_id, 2, loop="scan").evaluate(POLICIES[env_id], key)
        b = _linear_task(env_id, 2, loop="while").evaluate(POLICIES[env_id], key)
        assert _digest(a) == _digest(b), env_id


def test_evaluate_policy_returns_per_episode():
    task = _linear_task(CARTPOLE, episodes=1)
    key = jax.random.PRNGKey(5)
    returns = task.evaluate_policy(CARTPOLE_POLICIES[1], key, episodes=4)
    assert returns.shape == (4,) and returns.dtype == np.float64
    fitness, _ = _python_loop(_linear_task(CARTPOLE, 4), CARTPOLE_POLICIES[1:2], key, 4)
    assert returns.mean() == fitness[0]
    assert task.has_eval and task.num_params == 10
    assert task.initial_params(jax.random.PRNGKey(0)).shape == (10,)
