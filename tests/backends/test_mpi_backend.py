"""Real mpiexec (the mpich wheel's): bytes per generation independent of the number of parameters, rank 0 alone
writes the run, and ``backend.type=mpi`` without mpiexec is refused with one line saying how to launch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from esrun_helpers import read_summary
from esrun_helpers.backends import MPIEXEC, run_cli, start_cli, synthetic_overrides

pytestmark = pytest.mark.timeout(300)


def test_bytes_per_generation_do_not_grow_with_parameters(tmp_path):
    config = tmp_path / "synthetic.yaml"  # the overrides set everything; the CLI still wants a CONFIG file
    config.write_text("name: bytes\n")
    procs = {dim: start_cli(["train", str(config), *synthetic_overrides(dim), f"logging.dir={tmp_path / str(dim)}",
                             "backend.type=mpi", "--quiet"], mpi_ranks=2) for dim in (1_000, 1_000_000)}
    for p in procs.values():
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    small = read_summary(tmp_path / "1000" / "bytes")
    large = read_summary(tmp_path / "1000000" / "bytes")
    assert (small["num_params"], large["num_params"]) == (1_000, 1_000_000)
    assert small["workers"] == large["workers"] == 2
    a, b = small["bytes_per_generation"], large["bytes_per_generation"]
    assert a > 0 and abs(b - a) <= 0.1 * a, (a, b)
    assert b < 1_000_000 * 4 / 50


def test_mpi_without_mpiexec_says_how_to_launch(tmp_path):
    p = run_cli(["train", "configs/cartpole.yaml", f"logging.dir={tmp_path}", "backend.type=mpi"], timeout=120)
    assert p.returncode == 2
    errors = [line for line in p.stderr.splitlines() if line.startswith("esrun: error:")]
    assert len(errors) == 1, p.stderr[-2000:]
    assert "mpiexec -n" in errors[0] and "backend.type=mpi" in errors[0]
    assert not (tmp_path / "cartpole").exists()  # nothing was started or written


def test_drifted_rank_is_found_by_its_hash_and_adopts_rank_0_state():
    p = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(Path(__file__).with_name("mpi_drift_script.py"))],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = sorted(line for line in p.stdout.splitlines() if line.startswith("rank="))
    assert lines == ["rank=0 replaced=False agrees=True syncs=1", "rank=1 replaced=True agrees=True syncs=1"], p.stdout
    assert "replica hash of ranks [1] differs from rank 0" in p.stderr
