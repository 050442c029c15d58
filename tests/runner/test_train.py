"""End-to-end training on real environments: thresholds, determinism hashes, interrupt / resume, bad files."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from esrun.runner import checkpoint

from esrun_helpers import CONFIGS, esrun_cmd, processes, read_summary, run_esrun

SUMMARY_KEYS = {"generations", "env_steps", "evaluations", "wall_seconds", "best_fitness", "final_eval_return",
                "backend", "workers", "bytes_per_generation", "params_sha256"}

# A short fixed-budget CartPole run (no target, so its length never depends on the evaluation).
SHORT = ["budget.generations=8", "budget.target_return=null", "strategy.population=64", "backend.chunk_size=32",
         "task.max_episode_steps=200", "task.eval_every=4", "logging.checkpoint_every=2", "--quiet"]


def test_default_cartpole_solves(runs):
    """The README's default job reaches final_eval_return >= 475 (mean of >= 10 episodes)."""
    proc = run_esrun("train", str(CONFIGS / "cartpole.yaml"), f"logging.dir={runs}", "--quiet", check=True)
    run_dir = runs / "cartpole"
    s = read_summary(run_dir)
    assert SUMMARY_KEYS <= set(s)
    assert s["final_eval_episodes"] >= 10
    assert s["final_eval_return"] >= 475, s
    assert s["backend"] == "local" and s["workers"] == 1
    assert len(s["params_sha256"]) == 64
    assert (run_dir / "config.yaml").is_file()
    assert list((run_dir / "checkpoints").glob("gen_*.ckpt.npz"))
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert "params_sha256=" in proc.stdout


def test_same_seed_same_hash_and_other_seed_differs(runs):
    hashes = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run_esrun("train", str(CONFIGS / "cartpole.yaml"), f"logging.dir={runs}", f"name={name}", f"seed={seed}",
                  *SHORT, check=True)
        hashes.append(read_summary(runs / name)["params_sha256"])
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def _wait_for(pattern: Path, proc: subprocess.Popen, timeout: float = 300):
    """Wait until a file matching ``pattern`` (a path whose name may hold a glob) exists."""
    t0 = time.time()
    path = pattern
    while not list(pattern.parent.glob(pattern.name)):
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {path} appeared: {proc.stderr.read()[-2000:]}")
        if time.time() - t0 > timeout:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_and_resumed_matches_undisturbed(runs, sig):
    base = ["train", str(CONFIGS / "cartpole.yaml"), f"logging.dir={runs}", *SHORT, "budget.generations=14"]
    run_esrun(*base, "name=undisturbed", check=True)
    want = read_summary(runs / "undisturbed")["params_sha256"]

    proc = subprocess.Popen(esrun_cmd(*base, "name=cut"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=CONFIGS.parent)
    _wait_for(runs / "cut" / "checkpoints" / "gen_*.ckpt.npz", proc)
    # Frozen first, so the signal lands mid-run however fast this machine runs generations: it waits in the stopped
    # process, which stops at the end of the generation it is in once continued.
    processes.stop([proc.pid])
    frozen_at = checkpoint.latest_generation(runs / "cut")
    assert frozen_at is not None and frozen_at < 14
    proc.send_signal(sig)
    processes.cont([proc.pid])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    first = read_summary(runs / "cut")
    assert first["stop_reason"] == "signal", first
    assert frozen_at <= first["generations"] < 14

    run_esrun("train", "--resume", str(runs / "cut"), "--quiet", check=True)
    done = read_summary(runs / "cut")
    assert done["generations"] == 14
    assert done["params_sha256"] == want


def test_tensorboard_events_read_back(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_esrun("train", str(CONFIGS / "cartpole.yaml"), f"logging.dir={runs}", "name=tb", *SHORT, check=True)
    acc = EventAccumulator(str(runs / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("fitness/best", "fitness/mean", "fitness/nonfinite", "eval/return_mean", "es/grad_norm",
                "es/update_ratio", "es/sigma", "perf/steps_per_second", "perf/seconds_per_generation"):
        assert tag in tags, (tag, sorted(tags))
    steps = [e.step for e in acc.Scalars("fitness/best")]
    assert steps == list(range(1, 9))
    assert [e.step for e in acc.Scalars("eval/return_mean")] == [4, 8]
    best = max(e.value for e in acc.Scalars("fitness/best"))
    assert best == pytest.approx(read_summary(runs / "tb")["best_fitness"])


def test_nonfinite_fitness_ranked_worst_and_counted(monkeypatch):
    """NaN / inf fitness never reaches the update and is counted."""
    import esrun
    from esrun.runner.replica import Replica, sanitize_fitness

    clean, bad = sanitize_fitness(np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 2.0]))
    assert bad == 3 and np.all(np.isfinite(clean)) and clean[1] == clean[3] == clean[4] == 1.0

    cfg = esrun.load_config(None, "task.type=synthetic", "task.objective=sphere", "task.dim=5",
                            "strategy.population=8", "budget.generations=1")
    ev = Replica(cfg)
    state = ev.init_state()
    fit = np.array([1, 2, np.nan, 4, 5, np.inf, 7, 8], float)
    new, metrics = ev.apply(state, fit, 0, None)
    assert metrics["fitness/nonfinite"] == 2 and new.nonfinite == 2
    assert np.all(np.isfinite(np.asarray(new.strategy.mean)))
    # Ranked worst: same update as if those members had the lowest finite fitness.
    ref, _ = ev.apply(state, np.array([1, 2, 1, 4, 5, 1, 7, 8], float), 0, None)
    np.testing.assert_array_equal(np.asarray(new.strategy.mean), np.asarray(ref.strategy.mean))


def test_nonfinite_fitness_end_to_end(runs, monkeypatch):
    """A task that returns NaN for some members: the run finishes, the mean stays finite, the count is logged."""
    import esrun
    from esrun.tasks import synthetic

    orig = synthetic.SyntheticTask.evaluate

    def flaky(self, params, key, obs_stats=None):
        res = orig(self, params, key, obs_stats)
        fit = res.fitness.copy()
        fit[::5] = np.nan
        return res._replace(fitness=fit)

    monkeypatch.setattr(synthetic.SyntheticTask, "evaluate", flaky)
    result = esrun.train(None, "task.type=synthetic", "task.objective=sphere", "task.dim=4", "strategy.population=20",
                         "budget.generations=5", f"logging.dir={runs}", "name=nan", "logging.progress=false")
    assert result.summary["nonfinite_fitness"] == 4 * 5
    assert np.all(np.isfinite(result.mean))


def test_corrupt_and_missing_checkpoint(runs):
    run_esrun("train", str(CONFIGS / "cartpole.yaml"), f"logging.dir={runs}", "name=ck", *SHORT,
              "budget.generations=2", check=True)
    (ckpt,) = (runs / "ck" / "checkpoints").glob("gen_*.ckpt.npz")
    blob = ckpt.read_bytes()
    ckpt.write_bytes(blob[: len(blob) // 2])
    proc = run_esrun("train", "--resume", str(runs / "ck"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is corrupt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    ckpt.unlink()
    proc = run_esrun("train", "--resume", str(runs / "ck"))
    assert proc.returncode == 2 and "no checkpoint in" in proc.stderr
    proc = run_esrun("eval", str(runs / "ck"))
    assert proc.returncode == 2 and "no checkpoint in" in proc.stderr


def test_budgets_stop_at_first_reached(runs):
    import esrun

    common = ["task.type=synthetic", "task.objective=sphere", "task.dim=3", "strategy.population=10",
              f"logging.dir={runs}", "logging.progress=false", "logging.tensorboard=false"]
    r = esrun.train(None, *common, "name=ev", "budget.generations=100", "budget.evaluations=35")
    assert r.summary["stop_reason"] == "evaluations (35)" and r.summary["evaluations"] == 40
    r = esrun.train(None, *common, "name=wall", "budget.generations=100000", "budget.wall_seconds=1.5")
    assert r.summary["stop_reason"] == "wall_seconds (1.5)" and r.summary["generations"] < 100000
    r = esrun.train(None, *common, "name=tgt", "budget.generations=500", "budget.target_return=-0.5")
    assert r.summary["stop_reason"] == "target_return (-0.5)" and r.summary["final_eval_return"] >= -0.5
    r = esrun.train(CONFIGS / "cartpole.yaml", f"logging.dir={runs}", "name=steps",
                    "logging.progress=false", "budget.target_return=null", "budget.env_steps=20000",
                    "strategy.population=64", "backend.chunk_size=64")
    assert r.summary["stop_reason"] == "env_steps (20000)" and r.summary["env_steps"] >= 20000


def test_eval_command_and_video(runs, tmp_path):
    run_esrun("train", str(CONFIGS / "cartpole.yaml"), f"logging.dir={runs}", "name=ev", *SHORT, check=True)
    video = tmp_path / "ep.mp4"
    proc = run_esrun("eval", str(runs / "ev"), "--episodes", "3", "--video", str(video), check=True)
    assert "return mean=" in proc.stdout and "over 3 episodes" in proc.stdout
    assert video.stat().st_size > 1000
    import imageio.v3 as iio

    frames = iio.imread(video)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) > 5
    proc = run_esrun("eval", str(runs / "ev"), "--episodes", "0")
    assert proc.returncode == 2 and "--episodes = 0" in proc.stderr


def test_pendulum_jax_policy_solves_gymnasium_pendulum(runs):
    """Train on the JAX-native Pendulum; the final policy reaches >= -250 on Gymnasium's Pendulum-v1."""
    import jax

    import esrun
    from esrun.tasks.gym import GymTask

    r = esrun.train(CONFIGS / "pendulum_jax.yaml", f"logging.dir={runs}", "logging.progress=false")
    assert r.summary["final_eval_return"] >= -250, r.summary
    cfg = esrun.load_config(CONFIGS / "pendulum.yaml")
    task = GymTask("Pendulum-v1", cfg.policy, max_episode_steps=200)
    returns = task.evaluate_policy(r.mean, jax.random.PRNGKey(7), 10)
    task.close()
    assert len(returns) == 10 and np.mean(returns) >= -250, returns


def test_mujoco_hopper_runs(runs):
    """The MuJoCo locomotion path (Hopper-v5 through the mujoco wheel) trains for a few generations."""
    run_esrun("train", str(CONFIGS / "hopper.yaml"), f"logging.dir={runs}", "budget.generations=2",
              "strategy.population=8", "backend.chunk_size=8", "task.max_episode_steps=50", "task.eval_every=1",
              "task.eval_episodes=2", "--quiet", check=True)
    s = read_summary(runs / "hopper")
    assert s["generations"] == 2 and s["env_steps"] > 0 and np.isfinite(s["final_eval_return"])
