"""Package-scoped cache of compare runs, so a config run once serves several tests; the fast-compile switch is
undone when the package ends, so later test folders run with the numerics of the CLI."""
from __future__ import annotations

from pathlib import Path

import pytest

from esrun_helpers.fast_compile import fast_compile as fast_compile_mode


@pytest.fixture(scope="package")
def fast_compile():
    """XLA without most optimizations: halves the compile time that dominates these small runs (here and in the
    Ray / mpiexec processes the tests start, so that their floating-point results match the in-process ones)."""
    with fast_compile_mode(subprocesses=True):
        yield


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
