"""Session-scoped cache of compare runs, so a config run once serves several tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def compare_runs(tmp_path_factory):
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
