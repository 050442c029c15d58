"""Package-scoped cache of compare runs, so a config run once serves several tests; the fast-compile switch is
undone when the package ends, so later test folders run with the numerics of the CLI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

FAST_COMPILE_ENV = "JAX_DISABLE_MOST_OPTIMIZATIONS"


@pytest.fixture(scope="package")
def fast_compile():
    """XLA without most optimizations: halves the compile time that dominates these small runs (here and in the
    Ray / mpiexec processes the tests start, so that their floating-point results match the in-process ones)."""
    import jax

    old_env, old_cfg = os.environ.get(FAST_COMPILE_ENV), jax.config.read("jax_disable_most_optimizations")
    os.environ[FAST_COMPILE_ENV] = "1"
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old_cfg)
    if old_env is None:
        os.environ.pop(FAST_COMPILE_ENV, None)
    else:
        os.environ[FAST_COMPILE_ENV] = old_env


@pytest.fixture(scope="package")
def compare_runs(tmp_path_factory, fast_compile):
    """run(config_path, overrides) -> (cfg, CompareResult), memoized per session."""
    from esrun.compare import load_compare_config, run_compare

    cache: dict = {}
    base = tmp_path_factory.mktemp("compare_runs")

    def run(path: Path, overrides: list[str]):
        key = (str(path), tuple(overrides))
        if key not in cache:
            cfg = load_compare_config(path, [*overrides, f"logging.dir={base / str(len(cache))}"])
            cache[key] = (cfg, run_compare(cfg))
        return cache[key]

    return run
