"""``task.engine: mujoco``: the same returns, step counts and observation statistics as Gymnasium's vector env for
the same policies and seeds (in this process and on worker processes; also with ARS's raw M x and unclipped
inputs), a raising simulator step failing exactly its member, and ARS V2-t improving Hopper within a few iterations
(several seeds)."""
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


@pytest.mark.parametrize("env_id,workers", [("Hopper-v5", 2), ("Walker2d-v5", 1), ("HalfCheetah-v5", 2),
                                            ("Swimmer-v5", 1)])
def test_returns_equal_gymnasium_for_the_same_policies_and_seeds(env_id, workers):
    fast = MujocoTask(env_id, POLICY, max_episode_steps=120, obs_norm=True, workers=workers)
    slow = GymTask(env_id, POLICY, max_episode_steps=120, obs_norm=True)
    try:
        params = _params(fast, 5)
        jobs = np.repeat(np.arange(5), 2)  # 10 episodes on 4 slots: slots are reused (autoreset, job queue)
        stats = ObsStats.from_batch(np.random.default_rng(0).standard_normal((50, fast.obs_dim)))
        for seed in (3, 12345):
            r_fast, n_fast, d_fast = fast.run_jobs(params, jobs, seed, stats, 4, True)
            r_slow, n_slow, d_slow = slow.run_jobs(params, jobs, seed, stats, 4, True)
            np.testing.assert_array_equal(n_fast, n_slow)
            np.testing.assert_array_equal(r_fast, r_slow)
            assert d_fast.count == d_slow.count
            np.testing.assert_array_equal(d_fast.mean, d_slow.mean)
            np.testing.assert_array_equal(d_fast.m2, d_slow.m2)
        assert len(set(np.round(r_fast, 6))) > 5  # the policies and reset noise really differ
    finally:
        fast.close()
        slow.close()


def test_raw_actions_and_unclipped_inputs_equal_gymnasium():
    """ARS as the paper runs it (``squash: none``, ``bias: false``, ``obs_clip: null``): M x goes to the env
    unclipped (MuJoCo clamps ctrl, the control cost sees the raw action) and the engine still equals Gymnasium;
    each switch really changes the returns (inputs beyond +-5 and actions beyond the bounds do occur here)."""
    raw = PolicyConfig(type="linear", init_scale=1.0, squash="none", bias=False)
    stats = ObsStats.from_batch(0.05 * np.random.default_rng(1).standard_normal((50, 11)))  # small std: |x| > 5
    jobs = np.repeat(np.arange(4), 2)
    tasks = {"fast": MujocoTask("Hopper-v5", raw, max_episode_steps=80, obs_norm=True, workers=2, obs_clip=None),
             "slow": GymTask("Hopper-v5", raw, max_episode_steps=80, obs_norm=True, obs_clip=None),
             "clip_in": MujocoTask("Hopper-v5", raw, max_episode_steps=80, obs_norm=True, workers=1),
             "clip_out": MujocoTask("Hopper-v5", PolicyConfig(type="linear", init_scale=1.0, squash="clip",
                                                             bias=False), max_episode_steps=80, obs_norm=True,
                                    workers=1, obs_clip=None)}
    try:
        params = _params(tasks["fast"], 4)
        assert params.shape == (4, 11 * 3)  # no bias: M is 3 x 11
        out = {k: t.run_jobs(params, jobs, 7, stats, 4, False)[:2] for k, t in tasks.items()}
    finally:
        for t in tasks.values():
            t.close()
    np.testing.assert_array_equal(out["fast"][1], out["slow"][1])
    np.testing.assert_array_equal(out["fast"][0], out["slow"][0])
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
    assert set(LOCOMOTION) == {"Swimmer-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"}


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
