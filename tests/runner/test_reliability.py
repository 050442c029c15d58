"""Local faults (docs/reliability.md): crafted and corrupt checkpoints, the last K kept, resume overrides, a full
disk while checkpointing, environments that raise or emit NaN. In-process through ``esrun.cli.main`` (the code
path of the ``esrun`` command, minus the interpreter start) on the synthetic sphere and a small Gymnasium env."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import esrun
from esrun.cli import main as esrun_main
from esrun.runner import checkpoint

SPHERE = ["task.type=synthetic", "task.objective=sphere", "task.dim=6", "strategy.population=8",
          "logging.progress=false", "logging.tensorboard=false", "logging.checkpoint_every=2"]


def _train(runs: Path, name: str, *overrides: str):
    return esrun.train(None, *SPHERE, f"logging.dir={runs}", f"name={name}", *overrides)


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = esrun_main(list(argv))
    return rc, capsys.readouterr().err.strip().splitlines()


def _config_file(tmp_path: Path, *overrides: str) -> str:
    """A YAML config file holding exactly ``esrun.load_config(None, *overrides)``."""
    from esrun.config import dump_config

    path = tmp_path / "config.yaml"
    path.write_text(dump_config(esrun.load_config(None, *overrides)))
    return str(path)


def _fresh_state(run_dir: Path):
    from esrun.config.load import read_yaml, validate
    from esrun.runner.replica import Replica

    return Replica(validate(read_yaml(run_dir / "config.yaml"))).init_state()


class _Payload:
    """Unpickling this creates ``marker``: proof that a file ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _rewrite(path: Path, edit) -> None:
    """Rewrite a checkpoint's members: ``edit(meta, arrays)`` changes them in place (arrays: name -> bytes)."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(np.lib.format.read_array(io.BytesIO(members.pop("meta.npy"))).tobytes())
    edit(meta, members)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    members["meta.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for n, blob in members.items():
            zf.writestr(n, blob)


def _npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _pickle_in_npz(path, marker):
    def edit(meta, members):
        members["leaf_00002.npy"] = _npy(np.array([_Payload(marker)], dtype=object), allow_pickle=True)
        meta["leaves"][2].update(shape=[1], dtype="|O")
    _rewrite(path, edit)


def _raw_pickle(path, marker):
    path.write_bytes(pickle.dumps(_Payload(marker)))


def _truncated(path, marker):
    path.write_bytes(path.read_bytes()[:-200])


def _wrong_shape(path, marker):
    def edit(meta, members):
        arr = np.zeros(7, np.float32)  # the mean of a 7-d run in a 6-d run's directory
        members["leaf_00002.npy"] = _npy(arr)
        meta["leaves"][2].update(shape=[7], sha256=hashlib.sha256(arr.tobytes()).hexdigest())
    _rewrite(path, edit)


def _wrong_version(path, marker):
    _rewrite(path, lambda meta, members: meta.update(format_version=99))


def _old_format(path, marker):
    payload = pickle.dumps(_Payload(marker))
    path.unlink()
    (path.parent / "latest.ckpt").write_bytes(
        checkpoint.OLD_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


CRAFTED = {  # kind -> (make the run's only checkpoint so, a fragment of the refusal)
    "pickle_in_npz": (_pickle_in_npz, "is |O[1], this config's state needs <f4[6]"),
    "raw_pickle": (_raw_pickle, "not an esrun checkpoint"),
    "truncated": (_truncated, "is corrupt (truncated or altered)"),
    "wrong_shape": (_wrong_shape, "is <f4[7], this config's state needs <f4[6]"),
    "wrong_version": (_wrong_version, "format version 99 is not supported"),
    "old_format": (_old_format, "old format (ESRUN-CKPT 1, a pickle)"),
}


@pytest.fixture(scope="module")
def one_checkpoint_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    _train(runs, "base", "budget.generations=2")
    assert [p.name for p in checkpoint.list_checkpoints(runs / "base")] == ["gen_000002.ckpt.npz"]
    return runs / "base"


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_crafted_checkpoint_is_refused_and_runs_nothing(one_checkpoint_run, tmp_path, capsys, kind):
    run_dir = tmp_path / kind
    shutil.copytree(one_checkpoint_run, run_dir)
    marker = tmp_path / "pwned"
    make, fragment = CRAFTED[kind]
    make(run_dir / "checkpoints" / "gen_000002.ckpt.npz", marker)
    for argv in (["eval", str(run_dir)], ["train", "--resume", str(run_dir), "--quiet"]):
        rc, err = _cli(capsys, *argv)
        assert rc == 2 and len(err) == 1 and err[0].startswith("esrun: error: "), (argv, err)
        assert fragment in err[0], err
        assert not marker.exists(), "the checkpoint ran code"
    assert json.loads((run_dir / "summary.json").read_text())["generations"] == 2  # nothing was trained


def test_corrupt_latest_falls_back_keeps_k_and_matches_undisturbed(runs, capsys):
    want = _train(runs, "undisturbed", "budget.generations=6", "logging.keep_checkpoints=2")
    assert [p.name for p in checkpoint.list_checkpoints(runs / "undisturbed")] == [
        "gen_000006.ckpt.npz", "gen_000004.ckpt.npz"]
    _train(runs, "cut", "budget.generations=4")
    latest = runs / "cut" / "checkpoints" / "gen_000004.ckpt.npz"
    blob = bytearray(latest.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    latest.write_bytes(bytes(blob))
    rc, err = _cli(capsys, "train", "--resume", str(runs / "cut"), "budget.generations=6", "--quiet")
    assert rc == 0, err
    assert any("skipped" in line and "gen_000004.ckpt.npz" in line for line in err), err
    assert any("resuming from gen_000002.ckpt.npz" in line for line in err), err
    done = json.loads((runs / "cut" / "summary.json").read_text())
    assert done["generations"] == 6 and done["params_sha256"] == want.params_sha256
    assert [p.name for p in checkpoint.list_checkpoints(runs / "cut")] == [
        "gen_000006.ckpt.npz", "gen_000004.ckpt.npz", "gen_000002.ckpt.npz"]


def test_resume_refuses_trajectory_overrides(one_checkpoint_run, tmp_path, capsys):
    from esrun.config.resume import check_resume

    run_dir = tmp_path / "r"
    shutil.copytree(one_checkpoint_run, run_dir)
    for override, key in [("strategy.sigma=0.3", "strategy.sigma"), ("seed=7", "seed"),
                          ("strategy.population=10", "strategy.population"), ("task.dim=7", "task.dim"),
                          ("backend.chunk_size=4", "backend.chunk_size"), ("policy.hidden=[3]", "policy.hidden"),
                          ("task.objective=rastrigin", "task.objective"), ("logging.dir=elsewhere", "logging.dir")]:
        rc, err = _cli(capsys, "train", "--resume", str(run_dir), override, "--quiet")
        assert rc == 2 and len(err) == 1 and f"--resume: {key} cannot change" in err[0], (override, err)
    saved = esrun.load_config(run_dir / "config.yaml")
    for neutral in ["budget.generations=9", "budget.wall_seconds=5", "logging.checkpoint_every=1",
                    "logging.keep_checkpoints=1", "logging.tensorboard=true", "backend.type=ray",
                    "backend.workers=3", "backend.address=auto", "task.max_failed_generations=1"]:
        check_resume(saved, esrun.load_config(saved, neutral))


# -- a full disk -------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """``mount(kib)`` mounts a tmpfs of that size (root only) and returns its path; unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()

    def mount(kib: int) -> Path:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(mnt)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"mounting a tmpfs needs root: {r.stderr.strip()}")
        return mnt

    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_while_checkpointing(runs, tiny_disk, tmp_path, capsys):
    """Checkpoints of ~245 KB (dim 20000, Adam) on a tmpfs where two fit and the third does not. The run warns and
    goes on, its final checkpoint fails with one line, the two written stay intact, and after space is freed
    --resume ends with the undisturbed hash."""
    big = ["task.dim=20000", "budget.generations=5", "logging.checkpoint_every=1"]
    want = _train(runs, "undisturbed", *big)
    size_kib = max(p.stat().st_size for p in checkpoint.list_checkpoints(runs / "undisturbed")) / 1024
    disk = tiny_disk(int(2.5 * size_kib) + 8)  # config.yaml (one page) + two checkpoints, not three
    rc, err = _cli(capsys, "train", _config_file(tmp_path, *SPHERE, *big), f"logging.dir={disk}", "name=full",
                   "--quiet")
    run_dir = disk / "full"
    assert rc == 2, err
    assert err[-1].startswith("esrun: error: cannot write checkpoint") and "No space left on device" in err[-1], err
    assert "gen_000005" in err[-1]
    # generations 3, 4 and 5 warn (the run goes on); the final checkpoint retries generation 5 and fails
    assert sum("warning" in line and "the run continues" in line for line in err) == 3, err
    kept = checkpoint.list_checkpoints(run_dir)
    assert [p.name for p in kept] == ["gen_000002.ckpt.npz", "gen_000001.ckpt.npz"]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    fresh = _fresh_state(run_dir)
    assert [checkpoint.read(p, fresh).generation for p in kept] == [2, 1]
    subprocess.run(["mount", "-o", f"remount,size={int(8 * size_kib)}k", str(disk)], check=True)  # space freed
    rc, err = _cli(capsys, "train", "--resume", str(run_dir), "--quiet")
    assert rc == 0, err
    done = json.loads((run_dir / "summary.json").read_text())
    assert done["generations"] == 5 and done["params_sha256"] == want.params_sha256


# -- environments that fail ----------------------------------------------------------------------------------------
class FlakyCartPole(gym.Env):
    """CartPole whose episode, with probability ``fail_rate`` (drawn from the reset seed), raises or returns NaN
    observations at step 3; a failed instance stays broken (its next reset raises), so only a rebuilt one works."""

    created = 0
    failed = 0

    def __init__(self, fail_rate: float = 0.3, modes: tuple = ("raise", "nan")):
        from gymnasium.envs.classic_control import CartPoleEnv

        self.inner = CartPoleEnv()
        self.observation_space, self.action_space = self.inner.observation_space, self.inner.action_space
        self.fail_rate, self.modes, self.broken = fail_rate, modes, False
        type(self).created += 1

    def reset(self, *, seed=None, options=None):
        if self.broken:
            raise RuntimeError("reset of a broken environment")
        super().reset(seed=seed)
        obs, info = self.inner.reset(seed=int(self.np_random.integers(2**31)))
        self.t, self.doomed = 0, self.np_random.random() < self.fail_rate
        self.mode = self.modes[int(self.np_random.integers(len(self.modes)))]
        return obs, info

    def step(self, action):
        self.t += 1
        obs, reward, term, trunc, info = self.inner.step(action)
        if self.doomed and self.t == 3:
            self.broken = True
            type(self).failed += 1
            if self.mode == "raise":
                raise RuntimeError("simulated physics blow-up")
            obs = np.full_like(obs, np.nan)
        return obs, reward, term, trunc, info


for _id, _kw in {"EsrunTest/FlakyCartPole-v0": {"fail_rate": 0.3},
                 "EsrunTest/BrokenCartPole-v0": {"fail_rate": 1.0, "modes": ("raise",)}}.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=FlakyCartPole, kwargs=_kw, max_episode_steps=40)

GYM = ["task.type=gym", "strategy.population=16", "backend.chunk_size=16", "policy.hidden=[4]",
       "task.eval_every=3", "task.eval_episodes=2", "logging.progress=false", "logging.tensorboard=false"]


def test_env_failures_fail_members_and_slots_are_rebuilt(runs):
    created, failed = FlakyCartPole.created, FlakyCartPole.failed
    r = esrun.train(None, *GYM, "task.env_id=EsrunTest/FlakyCartPole-v0", "budget.generations=3",
                    f"logging.dir={runs}", "name=flaky")
    s = r.summary
    n_failed = FlakyCartPole.failed - failed
    assert s["generations"] == 3 and s["stop_reason"] == "generations (3)"
    assert 0 < s["nonfinite_fitness"] < 3 * 16, s  # some members failed, not all
    assert s["nonfinite_fitness"] <= n_failed  # (failed eval episodes are not members)
    assert FlakyCartPole.created - created > 16 + n_failed - 1  # every failed slot was replaced by a new env
    assert np.all(np.isfinite(r.mean))


def test_every_member_failing_stops_the_run_with_one_line(runs, tmp_path, capsys):
    cfg = _config_file(tmp_path, *GYM, "task.env_id=EsrunTest/BrokenCartPole-v0", "task.max_failed_generations=2",
                       "budget.generations=10")
    rc, err = _cli(capsys, "train", cfg, f"logging.dir={runs}", "name=broken", "--quiet")
    assert rc == 2, err
    assert len(err) == 1 and "every member failed in 2 generations in a row on EsrunTest/BrokenCartPole-v0" in err[0]
    assert "RuntimeError: simulated physics blow-up" in err[0]
    run_dir = runs / "broken"
    fresh = _fresh_state(run_dir)
    state, _ = checkpoint.load(run_dir, fresh)
    assert state.generation == 2 and state.nonfinite == 32
    np.testing.assert_array_equal(np.asarray(state.strategy.mean), np.asarray(fresh.strategy.mean))  # no update


def test_jax_env_nan_observation_fails_the_episode():
    """A JAX-native env whose observation turns NaN at step 3 in some episodes: those returns are NaN, the others
    count every reward; both time loops agree."""
    import jax
    import jax.numpy as jnp

    from esrun.tasks.jax_env import rollout

    class NanEnv:
        def reset(self, key, params):
            doomed = jax.random.bernoulli(key, 0.5)
            return (jnp.int32(0), doomed), jnp.zeros(2)

        def step(self, state, action, params):
            t, doomed = state[0] + 1, state[1]
            obs = jnp.where(doomed & (t >= 3), jnp.nan, jnp.zeros(2))
            return (t, doomed), obs, jnp.float32(1.0), jnp.bool_(False), t >= 10

    keys = jax.vmap(lambda i: jax.vmap(lambda e: jax.random.fold_in(jax.random.PRNGKey(i), e))(jnp.arange(4)))(
        jnp.arange(3))
    out = {loop: rollout(NanEnv(), None, lambda p, o: 0.0, 10, loop, jnp.zeros((3, 1)), keys)
           for loop in ("scan", "while")}
    ret, steps = (np.asarray(x) for x in out["scan"])
    np.testing.assert_array_equal(ret, np.asarray(out["while"][0]))
    nan = np.isnan(ret)
    assert nan.any() and (~nan).any()
    assert np.all(ret[~nan] == 10) and np.all(steps[nan] == 3)


def test_native_vector_env_failures(monkeypatch):
    """Gymnasium's own vector CartPole (no per-slot guard): a step that raises fails the chunk's unfinished members
    and the vector env is rebuilt (the next chunk equals one before the failure); a NaN observation in one slot
    fails that member only."""
    import jax

    from esrun.tasks.gym import GymTask

    task = GymTask("CartPole-v1", esrun.load_config(None, "policy.hidden=[4]").policy)
    params = np.zeros((4, task.num_params), np.float32)
    key = jax.random.PRNGKey(0)
    ok = task.evaluate(params, key).fitness
    cls = type(task._envs[4])
    orig, calls = cls.step, {"n": 0}

    def crash(self, action):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("vector env crashed")
        return orig(self, action)

    monkeypatch.setattr(cls, "step", crash)
    assert np.all(np.isnan(task.evaluate(params, key).fitness))
    assert task.last_failure == "RuntimeError: vector env crashed" and 4 not in task._envs
    monkeypatch.undo()
    np.testing.assert_array_equal(task.evaluate(params, key).fitness, ok)

    def nan_slot_0(self, action):
        obs, *rest = orig(self, action)
        obs = np.array(obs)
        obs[0] = np.nan
        return (obs, *rest)

    monkeypatch.setattr(cls, "step", nan_slot_0)
    fit = task.evaluate(params, key).fitness
    task.close()
    assert np.isnan(fit[0]) and np.array_equal(fit[1:], ok[1:]), (fit, ok)
