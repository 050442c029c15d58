"""A short soak (bench/soak.py shortened): the JAX CartPole for 300 generations on the local backend and 60 on Ray
with 2 workers. After warm-up, resident memory grows by less than 5 % (coordinator and workers), no file descriptor
leaks, and the checkpoint directory stays bounded by logging.keep_checkpoints while checkpoints are written every
10 generations. The full soak's figures are in docs/BENCHMARKS.md."""
from __future__ import annotations

import importlib.util

import pytest

from esrun_helpers import ROOT

pytestmark = pytest.mark.timeout(900)

_spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)

POPULATION = 64  # a leak test, not a speed test: a small population keeps it short
RSS_GROWTH = 0.05
FD_MARGIN = 3  # a transient descriptor (a checkpoint being written, a Ray socket) may be open at one sample


def _check(f: dict, checkpoints_written: int) -> None:
    assert f["rss_growth"] < RSS_GROWTH, f
    if f["workers"] > 1:
        assert f["worker_rss_growth_max"] < RSS_GROWTH, f
    for warm, end in zip(f["fds_warm"], f["fds_end"]):
        assert end <= warm + FD_MARGIN, f
    # every checkpoint was written, at most keep_checkpoints (default 3) remain, each of the same size
    assert checkpoints_written > 3
    assert 1 <= f["ckpt_files_end"] <= 3, f
    assert f["ckpt_bytes_end"] <= 3 * 1.1 * f["ckpt_bytes_warm"] / max(f["ckpt_files_warm"], 1), f


@pytest.mark.parametrize("backend, generations", [("local", 300), ("ray", 60)])
def test_soak_memory_fds_and_disk_stay_bounded(backend, generations):
    f = soak.run_soak(backend, generations, population=POPULATION, timeout=800)
    _check(f, checkpoints_written=generations // 10)
