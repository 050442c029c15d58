"""task.type=brax end to end through the CLI (configs/brax_tiny.yaml: Brax's inverted pendulum on the spring
pipeline, 8 members in chunks of 4, 50-step episodes, 3 generations): finite fitness, and the same params_sha256
with 1 and 2 host JAX devices (members sharded) and on local / Ray x2 / MPI x2.

Brax programs take tens of seconds to compile on a CPU, so every run of the module shares one JAX persistent
compilation cache in a fresh temporary directory: the local run compiles, the Ray workers and MPI ranks (same
programs, one device each) load the executables. A cached executable is the compiled code itself, so it cannot
change a result; the cache is keyed by the program, the XLA flags and the jax version, and it is new per session.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

import esrun

from esrun_helpers import ROOT as REPO
from esrun_helpers import read_summary

pytest.importorskip("brax", reason="task.type=brax needs brax (Python >= 3.11): pip install -e '.[all]'")

CONFIG = str(REPO / "configs" / "brax_tiny.yaml")
ESRUN = os.path.join(os.path.dirname(sys.executable), "esrun")
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
TIMEOUT = 1500  # a guard against a hang; a loaded 2-core machine needs minutes to compile
TWO_DEVICES = f"--xla_force_host_platform_device_count=2 {esrun.XLA_DEFAULTS}"


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "XLA_FLAGS": esrun.XLA_DEFAULTS,
            "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _start(env: dict, run_dir, *overrides: str, ranks: int | None = None) -> subprocess.Popen:
    cmd = ([MPIEXEC, "-n", str(ranks)] if ranks else []) + [
        ESRUN, "train", CONFIG, f"logging.dir={run_dir}", "backend.chunk_size=4", *overrides]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, run_dir) -> dict:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{err[-3000:]}"
    return read_summary(run_dir / "brax_tiny")


@pytest.fixture(scope="module")
def runs(cache_env, tmp_path_factory):
    """Summaries of the same run: local with 1 and with 2 host devices, Ray with 2 workers, MPI with 2 ranks."""
    base = tmp_path_factory.mktemp("brax_runs")
    out = {"local": _finish(_start(cache_env, base / "local"), base / "local")}  # fills the compilation cache
    two = {**cache_env, "XLA_FLAGS": TWO_DEVICES}
    procs = {  # together (Ray alone afterwards: its node start times out when the machine is busy compiling)
        "local_2_devices": _start(two, base / "local_2_devices"),
        "mpi": _start(cache_env, base / "mpi", "backend=mpi", ranks=2),
    }
    try:
        out.update({name: _finish(p, base / name) for name, p in procs.items()})
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    out["ray"] = _finish(_start(cache_env, base / "ray", "backend=ray", "backend.workers=2"), base / "ray")
    return out


def test_brax_run_has_finite_fitness(runs):
    s = runs["local"]
    assert s["generations"] == 3 and s["task"] == "inverted_pendulum"
    assert s["nonfinite_fitness"] == 0 and math.isfinite(s["best_fitness"]) and math.isfinite(s["final_eval_return"])
    # inverted pendulum earns 1 per step alive; 8 members x 3 generations of 50-step episodes + 2 evaluations
    assert 0 < s["best_fitness"] <= 50 and 24 <= s["env_steps"] <= 3 * 8 * 50
    assert len(s["params_sha256"]) == 64


@pytest.mark.parametrize("other", ["local_2_devices", "mpi", "ray"])
def test_brax_hash_equal_across_devices_and_backends(runs, other):
    assert runs[other]["params_sha256"] == runs["local"]["params_sha256"]
    assert runs[other]["env_steps"] == runs["local"]["env_steps"]



def test_policy_input_clip_follows_task_obs_clip():
    """task.obs_clip reaches the Brax rollout: clip((o - mu) / sd) at the configured bound (default 5), unclipped
    for null (ARS), raw observations without obs_norm."""
    import jax.numpy as jnp
    import numpy as np

    from esrun.config import load_config
    from esrun.tasks.brax_env import _input

    obs, mu, sd = jnp.array([-30.0, 0.5, 30.0]), jnp.zeros(3), jnp.ones(3)
    np.testing.assert_array_equal(_input(obs, mu, sd, True, 5.0), [-5.0, 0.5, 5.0])
    np.testing.assert_array_equal(_input(obs, mu, sd, True, None), [-30.0, 0.5, 30.0])
    np.testing.assert_array_equal(_input(obs, mu, 2 * sd, True, 2.0), [-2.0, 0.25, 2.0])
    np.testing.assert_array_equal(_input(obs, mu, sd, False, 5.0), obs)
    assert load_config(CONFIG, []).task.obs_clip == 5.0
    assert load_config(CONFIG, ["task.obs_clip=null"]).task.obs_clip is None
