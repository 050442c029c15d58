"""``task.engine: mujoco``: the same returns and step counts as Gymnasium's env for the same policies and
seeds (in this process and on worker processes; also with ARS's raw M x and unclipped inputs), results independent
of the worker count and width, a raising simulator step failing exactly its member, and ARS V2-t improving Hopper
within a few iterations (several seeds)."""
from __future__ import annotations

import jax
import mujoco
import numpy as np
import pytest

import esrun  # noqa: F401  (XLA flags before JAX use)
from esrun.config import load_config
from esrun.config.schema import PolicyConfig
from esrun.errors import UserError
from esrun.runner import train
from esrun.tasks import build_task
from esrun.tasks.gym import GymTask
from esrun.tasks.mujoco_pool import LOCOMOTION, MujocoTask
from esrun.tasks.obs_norm import ObsStats

POLICY = PolicyConfig(type="linear", init_scale=0.5, squash="clip")


def _params(task, n: int) -> np.ndarray:
    return np.stack([task.initial_params(jax.random.PRNGKey(i)) for i in range(n)])


def _gymnasium_returns(task, env_id, params, jobs, seed, stats, max_steps):
    """Episode j in a fresh Gymnasium env, ``reset(seed=seed + j)``, actions from the engine's own policy call on
    one row: (returns [J], lengths [J], ObsStats of every observation the policy saw)."""
    import gymnasium as gym
    import jax.numpy as jnp

    env = gym.make(env_id, max_episode_steps=max_steps)
    mean, std = task._normalizer(stats)
    returns, lengths, seen = [], [], []
    for j, member in enumerate(jobs):
        obs, _ = env.reset(seed=seed + j)
        total, n, done = 0.0, 0, False
        while not done:
            seen.append(obs)
            action = task._act(jnp.asarray(params), np.array([member]), obs[None], mean, std)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total, n, done = total + reward, n + 1, terminated or truncated
        returns.append(total)
        lengths.append(n)
    env.close()
    return np.array(returns), np.array(lengths), ObsStats.from_batch(np.array(seen))


@pytest.mark.parametrize("env_id,workers", [("Hopper-v5", 2), ("Walker2d-v5", 1), ("HalfCheetah-v5", 2),
                                            ("Swimmer-v5", 1), ("Ant-v5", 2), ("Humanoid-v5", 1)])
def test_returns_equal_gymnasium_for_the_same_policies_and_seeds(env_id, workers):
    """Each episode's return and length equal Gymnasium's own env (reset with seed + j, the same policy rows) bit
    for bit, with slots reused (10 episodes on 4 slots); observation statistics equal to rounding (summed per
    episode here, step by step there)."""
    fast = MujocoTask(env_id, POLICY, max_episode_steps=120, obs_norm=True, workers=workers)
    try:
        params = _params(fast, 5)
        jobs = np.repeat(np.arange(5), 2)
        stats = ObsStats.from_batch(np.random.default_rng(0).standard_normal((50, fast.obs_dim)))
        for seed in (3, 12345):
            r_fast, n_fast, d_fast = fast.run_jobs(params, jobs, seed, stats, 4, True)
            r_gym, n_gym, d_gym = _gymnasium_returns(fast, env_id, params, jobs, seed, stats, 120)
            np.testing.assert_array_equal(n_fast, n_gym)
            np.testing.assert_array_equal(r_fast, r_gym)
            assert d_fast.count == d_gym.count
            np.testing.assert_allclose(d_fast.mean, d_gym.mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(d_fast.m2, d_gym.m2, rtol=1e-12, atol=1e-12)  # constant entries: ~1e-26
        assert len(set(np.round(r_fast, 6))) > 5  # the policies and reset noise really differ
    finally:
        fast.close()


@pytest.mark.parametrize("policy", [POLICY, PolicyConfig(type="mlp", init_scale=1.0)], ids=["linear", "mlp"])
def test_policy_rows_have_the_same_bits_in_any_batch(policy):
    """make_act: a row's action does not depend on the batch size or the row's position (what makes an episode
    independent of the width and the worker count)."""
    from esrun.tasks.mujoco_episodes import make_act

    task = MujocoTask("Hopper-v5", policy, obs_norm=True, workers=1)
    params = jax.numpy.asarray(_params(task, 16))
    act = make_act(task.policy, True, 5.0)
    rng = np.random.default_rng(0)
    obs, members = 3 * rng.standard_normal((40, task.obs_dim)), rng.integers(0, 16, 40)
    mean = rng.standard_normal(task.obs_dim).astype(np.float32)
    std = (0.3 + rng.random(task.obs_dim)).astype(np.float32)
    alone = np.concatenate([act(params, members[i:i + 1], obs[i:i + 1], mean, std) for i in range(40)])
    for k in (2, 3, 5, 8, 13, 16, 40):
        for start in {0, 40 - k, (40 - k) // 2}:
            np.testing.assert_array_equal(act(params, members[start:start + k], obs[start:start + k], mean, std),
                                          alone[start:start + k])


def test_a_queue_larger_than_a_pipe_write_gives_the_same_results():
    """1,100 episodes (their job indices do not fit in one atomic pipe write: the queue is filled from a thread
    while the workers claim) on 2 workers equal the same episodes run in this process."""
    jobs = np.arange(1100) % 4
    tasks = [MujocoTask("Hopper-v5", POLICY, max_episode_steps=3, workers=w) for w in (1, 2)]
    try:
        params = _params(tasks[0], 4)
        one, two = (t.run_jobs(params, jobs, 11, None, 8, False) for t in tasks)
    finally:
        for t in tasks:
            t.close()
    np.testing.assert_array_equal(two[1], one[1])
    np.testing.assert_array_equal(two[0], one[0])
    assert (one[1] >= 1).all()


def test_close_to_the_gymnasium_engine():
    """Against ``engine: gymnasium`` (its policy call fuses the normalization: last bits differ, so trajectories
    may part after many steps): with one slot per episode the returns agree closely on short episodes."""
    fast = MujocoTask("Hopper-v5", POLICY, max_episode_steps=40, obs_norm=True, workers=1)
    slow = GymTask("Hopper-v5", POLICY, max_episode_steps=40, obs_norm=True)
    try:
        params = _params(fast, 5)
        jobs = np.repeat(np.arange(5), 2)
        stats = ObsStats.from_batch(np.random.default_rng(0).standard_normal((50, fast.obs_dim)))
        r_fast, n_fast, _ = fast.run_jobs(params, jobs, 3, stats, 10, False)
        r_slow, n_slow, _ = slow.run_jobs(params, jobs, 3, stats, 10, False)
    finally:
        fast.close()
        slow.close()
    np.testing.assert_array_equal(n_fast, n_slow)
    np.testing.assert_allclose(r_fast, r_slow, rtol=1e-4)


def test_results_do_not_depend_on_workers_or_width():
    """Episode j depends on its member, the normalizer and seed + j only: 1 or 2 workers, 2 to 10 slots (slots
    reused, jobs claimed from the shared queue in whatever order) give the same returns, lengths and statistics."""
    jobs = np.repeat(np.arange(5), 2)
    tasks = [MujocoTask("Hopper-v5", POLICY, max_episode_steps=100, obs_norm=True, workers=w) for w in (1, 2)]
    try:
        params = _params(tasks[0], 5)
        stats = ObsStats.from_batch(np.random.default_rng(2).standard_normal((50, tasks[0].obs_dim)))
        ref = tasks[0].run_jobs(params, jobs, 5, stats, 10, True)
        for task, width in ((tasks[0], 3), (tasks[1], 10), (tasks[1], 4), (tasks[1], 2)):
            out = task.run_jobs(params, jobs, 5, stats, width, True)
            np.testing.assert_array_equal(out[0], ref[0])
            np.testing.assert_array_equal(out[1], ref[1])
            assert out[2].count == ref[2].count
            np.testing.assert_array_equal(out[2].mean, ref[2].mean)
            np.testing.assert_array_equal(out[2].m2, ref[2].m2)
    finally:
        for t in tasks:
            t.close()


def test_raw_actions_and_unclipped_inputs_equal_gymnasium():
    """ARS as the paper runs it (``squash: none``, ``bias: false``, ``obs_clip: null``): M x goes to the env
    unclipped (MuJoCo clamps ctrl, the control cost sees the raw action) and the engine still equals Gymnasium;
    each switch really changes the returns (inputs beyond +-5 and actions beyond the bounds do occur here)."""
    raw = PolicyConfig(type="linear", init_scale=1.0, squash="none", bias=False)
    stats = ObsStats.from_batch(0.05 * np.random.default_rng(1).standard_normal((50, 11)))  # small std: |x| > 5
    jobs = np.repeat(np.arange(4), 2)
    tasks = {"fast": MujocoTask("Hopper-v5", raw, max_episode_steps=80, obs_norm=True, workers=2, obs_clip=None),
             "clip_in": MujocoTask("Hopper-v5", raw, max_episode_steps=80, obs_norm=True, workers=1),
             "clip_out": MujocoTask("Hopper-v5", PolicyConfig(type="linear", init_scale=1.0, squash="clip",
                                                             bias=False), max_episode_steps=80, obs_norm=True,
                                    workers=1, obs_clip=None)}
    try:
        params = _params(tasks["fast"], 4)
        assert params.shape == (4, 11 * 3)  # no bias: M is 3 x 11
        out = {k: t.run_jobs(params, jobs, 7, stats, 4, False)[:2] for k, t in tasks.items()}
        out["gym"] = _gymnasium_returns(tasks["fast"], "Hopper-v5", params, jobs, 7, stats, 80)[:2]
    finally:
        for t in tasks.values():
            t.close()
    np.testing.assert_array_equal(out["fast"][1], out["gym"][1])
    np.testing.assert_array_equal(out["fast"][0], out["gym"][0])
    assert not np.array_equal(out["fast"][0], out["clip_in"][0])  # obs_clip 5 (the default) changes the inputs
    assert not np.array_equal(out["fast"][0], out["clip_out"][0])  # squash clip changes the control cost


def test_a_raising_step_fails_only_its_member_and_the_slot_is_reused(monkeypatch):
    task = MujocoTask("Hopper-v5", POLICY, max_episode_steps=60, workers=1)
    params = _params(task, 4)
    key = jax.random.PRNGKey(0)
    clean = task.evaluate(params, key).fitness
    assert np.all(np.isfinite(clean))
    real_step, calls = mujoco.mj_step, {"n": 0}

    def flaky(m, d, nstep=1):
        calls["n"] += 1
        if calls["n"] == 7:  # the 7th slot step of the chunk: slot 2 (member 2) on its second step
            raise RuntimeError("simulated simulator failure")
        return real_step(m, d, nstep=nstep)

    monkeypatch.setattr(mujoco, "mj_step", flaky)
    result = task.evaluate(params, key)
    task.close()
    assert np.isnan(result.fitness[2]) and task.failures == 1
    np.testing.assert_array_equal(np.delete(result.fitness, 2), np.delete(clean, 2))


def test_unsupported_env_is_a_one_line_user_error():
    cfg = load_config(None, ["task.env_id=Pendulum-v1", "task.engine=mujoco"])
    with pytest.raises(UserError, match="not supported"):
        build_task(cfg)
    assert set(LOCOMOTION) == {"Swimmer-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"}


def test_ars_improves_hopper_in_a_few_iterations(tmp_path):
    """configs/hopper.yaml (ARS V2-t), 12 iterations of 200-step episodes: the final 10-episode evaluation beats
    the initial policy's (M = 0: about 80, the hopper falls) by a wide margin on at least 2 of 3 seeds."""
    finals, initial = [], None
    for seed in range(3):
        cfg = load_config("configs/hopper.yaml", [
            f"seed={seed}", f"name=s{seed}", f"logging.dir={tmp_path}", "logging.progress=false",
            "logging.tensorboard=false", "task.max_episode_steps=200", "budget.generations=12",
            "budget.wall_seconds=null", "budget.target_return=null", "task.eval_every=100", "task.workers=2"])
        if initial is None:
            task = build_task(cfg)
            x0 = task.initial_params(jax.random.PRNGKey(0))
            initial = float(np.mean(task.evaluate_policy(x0, jax.random.PRNGKey(1), 10)))
            task.close()
        finals.append(train(cfg).summary["final_eval_return"])
    assert initial < 150
    assert sum(f > initial + 100 for f in finals) >= 2, (initial, finals)
