"""Synthetic objectives (minima, a known value), observation statistics merged in parts, and the Gymnasium task's
job queue, statistics and per-job returns against a plain episode loop."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun.config import PolicyConfig
from esrun.tasks.obs_norm import ObsStats
from esrun.tasks.synthetic import OBJECTIVES


@pytest.mark.parametrize("name,x_opt", [("sphere", 0.0), ("rastrigin", 0.0), ("rosenbrock", 1.0), ("ackley", 0.0),
                                        ("styblinski_tang", -2.903534)])
def test_objectives_minimum(name, x_opt):
    f = OBJECTIVES[name]
    for d in (2, 7):
        x = jnp.full((d,), x_opt)
        assert abs(float(f(x))) < 1e-4 * d
        assert float(f(x + 0.3)) > float(f(x))


def test_rastrigin_known_value():
    assert float(OBJECTIVES["rastrigin"](jnp.array([1.0, 0.5]))) == pytest.approx(20 + (1 - 10) + (0.25 + 10))


def test_obs_stats_merge_equals_single_pass():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (1000, 4))
    parts = np.split(data, [10, 300, 301, 999])
    merged = ObsStats.zeros(4)
    for p in parts:
        merged = merged.merge(ObsStats.from_batch(p))
    one = ObsStats.from_batch(data)
    assert merged.count == 1000
    np.testing.assert_allclose(merged.mean, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, data.std(0), rtol=1e-12)
    np.testing.assert_allclose(merged.m2, one.m2, rtol=1e-12)


def test_gym_task_queue_counts_every_job_and_collects_useful_obs():
    from esrun.tasks.gym import GymTask

    task = GymTask("CartPole-v1", PolicyConfig(hidden=[4]), episodes_per_member=3, obs_norm=True, vector_width=5)
    params = jax.random.normal(jax.random.PRNGKey(0), (4, task.num_params))
    res = task.evaluate(np.asarray(params), jax.random.PRNGKey(1), ObsStats.zeros(4))
    assert res.fitness.shape == (4,) and res.steps.shape == (4,)
    # CartPole pays 1 per step: a member's fitness is its mean episode length, steps the total of its episodes.
    np.testing.assert_allclose(res.fitness * 3, res.steps)
    assert res.obs_delta.count == res.steps.sum()  # one observation per useful step, none from reset steps
    # Same key, same numbers; a different key gives different episodes.
    again = task.evaluate(np.asarray(params), jax.random.PRNGKey(1), ObsStats.zeros(4))
    np.testing.assert_array_equal(res.fitness, again.fitness)
    task.close()


def test_gym_task_fitness_equals_a_plain_episode_loop():
    """Each job's return equals an independent single-env rollout from the same initial state."""
    import gymnasium as gym

    from esrun.tasks.gym import GymTask

    task = GymTask("Pendulum-v1", PolicyConfig(hidden=[8]), episodes_per_member=1, max_episode_steps=30)
    params = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (3, task.num_params)) * 0.5)
    env = task._env(3)
    env.reset(seed=11)
    starts = [e.unwrapped.state.copy() for e in env.envs]
    ret, steps, _ = task.run_jobs(params, np.arange(3), 11, None, 3)
    assert list(steps) == [30, 30, 30]
    for j in range(3):
        single = gym.make("Pendulum-v1", max_episode_steps=30)
        obs, _ = single.reset(seed=0)
        single.unwrapped.state = starts[j].copy()
        obs = single.unwrapped._get_obs()
        total = 0.0
        for _ in range(30):
            a = np.asarray(task.policy.apply(jnp.asarray(params[j]), jnp.asarray(obs, jnp.float32)))
            obs, r, term, trunc, _ = single.step(a)
            total += r
        assert total == pytest.approx(ret[j], rel=1e-6)
