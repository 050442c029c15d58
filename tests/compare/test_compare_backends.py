"""The same compare config on the ray backend (2 workers) and under mpiexec (2 ranks): the same outputs, and every
(estimator, seed) job ends at the same parameters as on the local backend (a job depends only on its config,
estimator and seed, not on the process that ran it)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from esrun.compare import load_compare_config

from esrun_helpers.compare import COMPARE_CONFIGS, REDUCED, ROOT, check_outputs, read_csv

pytestmark = pytest.mark.timeout(900)

CONFIG = COMPARE_CONFIGS / "topk.yaml"
OVERRIDES = REDUCED + ["budget.evaluations=240"]


def _hashes(run_dir):
    return {(r["label"], r["seed"]): (r["final_theta_sha"], r["evaluations"])
            for r in read_csv(run_dir / "results_per_seed.csv")}


def test_ray_backend_two_workers(compare_runs, ray_session, tmp_path):
    """On the suite's local Ray (``ray_session``; the compare run connects to it instead of starting its own)."""
    _, local = compare_runs(CONFIG, OVERRIDES)
    from esrun.compare import run_compare

    cfg = load_compare_config(CONFIG, [*OVERRIDES, "backend.type=ray", "backend.workers=2",
                                       f"logging.dir={tmp_path}"])
    result = run_compare(cfg)
    check_outputs(result.run_dir, cfg)
    assert _hashes(result.run_dir) == _hashes(local.run_dir)


def test_mpi_two_ranks(compare_runs, tmp_path):
    _, local = compare_runs(CONFIG, OVERRIDES)
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec, "-n", "2", sys.executable, "-m", "esrun", "compare", str(CONFIG), *OVERRIDES,
           "backend.type=mpi", f"logging.dir={tmp_path}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=800, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("| I-MLE |") == 1  # rank 0 alone prints the table
    cfg = load_compare_config(CONFIG, [*OVERRIDES, "backend.type=mpi", f"logging.dir={tmp_path}"])
    check_outputs(tmp_path / "topk", cfg)
    assert _hashes(tmp_path / "topk") == _hashes(local.run_dir)
