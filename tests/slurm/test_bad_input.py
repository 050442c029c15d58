"""Requests that must be refused: one line (SLURM's own words where SLURM refuses), exit code 2, nothing submitted
and no run directory left behind."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from esrun_helpers.slurm import CARTPOLE, esrun


def _queued(cluster, name: str) -> str:
    return cluster.run("squeue", "-h", "-n", f"esrun-{name}", "-o", "%i", check=False).stdout.strip()


def _assert_refused(r, tmp_path: Path, name: str, *fragments: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert "submitted job" not in r.stdout
    assert not (tmp_path / "runs" / name).exists()


def test_cluster_runs_a_trivial_job(slurm_cluster, tmp_path):
    out = tmp_path / "hello.out"
    r = slurm_cluster.run("sbatch", "--parsable", f"--output={out}", "--wrap", "echo hello from $SLURM_JOB_ID")
    job = r.stdout.strip()
    from esrun_helpers.slurm import wait_job

    wait_job(slurm_cluster, job, timeout=60)
    assert out.read_text().strip() == f"hello from {job}"


def test_no_sbatch_on_path(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # the venv only: no sbatch
    r = esrun("slurm", "submit", str(CARTPOLE), "name=nosb", cwd=tmp_path, env=env)
    _assert_refused(r, tmp_path, "nosb", "sbatch not found on the PATH")


def test_unknown_partition(slurm_cluster, tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), "name=nopart", "--partition", "nosuchpartition", cwd=tmp_path)
    _assert_refused(r, tmp_path, "nopart", "SLURM refused the job", "Invalid partition name specified")
    assert _queued(slurm_cluster, "nopart") == ""


@pytest.mark.parametrize(
    "options, message",
    [
        (["--nodes", "4", "--backend", "mpi"], "Requested node configuration is not available"),
        (["--mem", "100T"], "Requested node configuration is not available"),
        (["--gpus-per-node", "1"], "Invalid generic resource (gres) specification"),
        (["--backend", "mpi", "--ntasks", "64"], "Requested node configuration is not available"),
    ],
)
def test_impossible_resource_request(slurm_cluster, tmp_path, options, message):
    r = esrun("slurm", "submit", str(CARTPOLE), "name=huge", *options, cwd=tmp_path)
    _assert_refused(r, tmp_path, "huge", "SLURM refused the job", message)
    assert _queued(slurm_cluster, "huge") == ""


def test_invalid_config_override_is_refused_before_slurm(slurm_cluster, tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), "name=badcfg", "strategy.populaton=8", cwd=tmp_path)
    _assert_refused(r, tmp_path, "badcfg", "strategy.populaton")
    assert _queued(slurm_cluster, "badcfg") == ""


def test_seed_override_with_array_is_refused(slurm_cluster, tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), "name=arr", "seed=3", "--array", "0-2", cwd=tmp_path)
    _assert_refused(r, tmp_path, "arr", "--array sets the seed")


def test_existing_run_directory_is_not_overwritten(slurm_cluster, tmp_path):
    run_dir = tmp_path / "runs" / "taken"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text("{}")
    r = esrun("slurm", "submit", str(CARTPOLE), "name=taken", cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (run_dir / "summary.json").read_text() == "{}"
    assert _queued(slurm_cluster, "taken") == ""


def test_unknown_backend_is_one_line(tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), "--backend", "spark", cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "spark" in r.stderr
