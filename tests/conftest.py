"""Fixtures shared by the whole suite (helpers live in the esrun_helpers package, tests/esrun_helpers/)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# One JAX persistent compilation cache for the session, in a fresh temporary directory: this process and every
# process the tests start (`esrun` commands, mpiexec ranks, Ray workers, SLURM jobs: they inherit the environment)
# compile a program once and load it afterwards, instead of each CLI run recompiling the same CartPole programs
# (about half the CPU of a short run). A cached executable is the compiled code itself, so it cannot change a
# result; the key covers the program, XLA_FLAGS (so the ISA pin of tests/runner/test_any_cpu.py compiles its own),
# the compile options and the jax version. A cache directory set by the caller is used as is and kept.
_OWN_JAX_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_JAX_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="esrun-tests-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Under pytest-xdist (`make test` runs two workers, scripts/setup.sh) each worker gets its own Ray temp dir: a
# `ray start` cluster (a SLURM job with backend ray) writes its address to <temp dir>/ray/ray_current_cluster, and a
# plain `ray.init()` in any process that shares the temp dir attaches to that cluster instead of starting its own.
# Subprocesses (esrun runs, SLURM jobs) inherit the variable, so every Ray a worker's tests start stays its own.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_OWN_RAY_TMPDIR = bool(_XDIST_WORKER) and "RAY_TMPDIR" not in os.environ
if _OWN_RAY_TMPDIR:
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix=f"esrun-ray-{_XDIST_WORKER}-")  # short: Ray's socket paths

# esrun sets its XLA flags (single-threaded Eigen for latency) when imported before JAX. Importing it here, before
# any test module imports JAX, gives the pytest process the same numerics as the `esrun` CLI subprocesses, so
# hashes compared across the two (a CLI run resumed in-process, say) are comparable.
import esrun  # noqa: E402,F401

from esrun_helpers import ray_local  # noqa: E402

pytest_plugins = ("esrun_helpers.xdist_groups",)  # how pytest-xdist workers share the suite

#: node id of the last collected test that uses ``ray_session``: the local Ray stops after it
_LAST_RAY_USER: list[str] = []


@pytest.fixture
def runs(tmp_path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def ray_session():
    """The session's one local Ray (esrun_helpers.ray_local): started by the first test that asks for it and shut
    down after the last one; an in-process ``train(backend.type=ray)`` uses it instead of starting its own."""
    return ray_local.start()


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config, items):
    users = [item.nodeid for item in items if "ray_session" in getattr(item, "fixturenames", ())]
    _LAST_RAY_USER[:] = users[-1:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if nextitem is None or [item.nodeid] == _LAST_RAY_USER:
        ray_local.stop()


def pytest_sessionfinish(session, exitstatus):
    ray_local.stop()
    if _OWN_JAX_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
    if _OWN_RAY_TMPDIR:
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
