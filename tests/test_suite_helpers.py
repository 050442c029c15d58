"""The suite's own machinery: the fast-compile switch (esrun_helpers.fast_compile) and how pytest-xdist workers
split the suite (esrun_helpers.xdist_groups). A regression in either shows up only as an order-dependent failure
somewhere else, so both are pinned here directly."""
from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from esrun_helpers import ROOT
from esrun_helpers.fast_compile import FAST_COMPILE_ENV, fast_compile
from esrun_helpers.xdist_groups import SLOWEST_FIRST, unit_of


@pytest.mark.parametrize("subprocesses", [False, True])
def test_fast_compile_recompiles_on_the_way_in_and_out_and_restores_the_state(subprocesses):
    # JAX's jit cache does not key on the switch: an executable must not cross it in either direction
    f = jax.jit(lambda x: jnp.sin(x) * 2.0)
    f(jnp.ones(3))
    before_env, before_cfg = os.environ.get(FAST_COMPILE_ENV), jax.config.read("jax_disable_most_optimizations")
    with fast_compile(subprocesses=subprocesses):
        assert f._cache_size() == 0
        assert jax.config.read("jax_disable_most_optimizations") is True
        assert os.environ.get(FAST_COMPILE_ENV) == ("1" if subprocesses else before_env)
        f(jnp.ones(3))
        assert f._cache_size() == 1
    assert f._cache_size() == 0
    assert jax.config.read("jax_disable_most_optimizations") == before_cfg
    assert os.environ.get(FAST_COMPILE_ENV) == before_env


def test_fast_compile_switch_reaches_ray_workers():
    # the Ray actors the compare tests start must compile as the coordinator does (the switch is JAX's variable)
    from esrun.backends.ray_connect import FORWARDED_ENV

    assert FAST_COMPILE_ENV in FORWARDED_ENV


def test_xdist_units_are_modules_and_one_for_all_slurm_tests():
    assert unit_of("tests/slurm/test_jobs.py::test_a") == unit_of("tests/slurm/test_bad_input.py::test_b") == "slurm"
    assert unit_of("tests/backends/test_ray_faults.py::test_x[1]") == "tests/backends/test_ray_faults.py"
    # the hand-kept slowest-first list names units that exist (a renamed module would silently drop out of it)
    for unit in SLOWEST_FIRST:
        assert unit == "slurm" or Path(ROOT, unit).is_file(), unit


def test_suite_collects_without_xdist():
    # the scheduler hook is optional: pytest without pytest-xdist (or with -p no:xdist) still runs the suite
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}  # a plain run, not a worker
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", __file__],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "INTERNALERROR" not in out.stdout + out.stderr, out.stdout[-2000:]
