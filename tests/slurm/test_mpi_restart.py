"""An MPI rank killed under SLURM: the job does not hang, it is requeued (``esrun slurm submit --max-restarts``) and
resumes from its last checkpoint, ending with the undisturbed local run's ``params_sha256``."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from esrun_helpers.slurm import (
    CARTPOLE,
    FAST,
    REQUEUE_DELAY_S,
    esrun,
    job_fields,
    job_output,
    parse_submit,
    summary,
    wait_job,
)

pytestmark = pytest.mark.timeout(900)


def _rank_process(cluster, job: str, rank: int, run_dir: Path, timeout: float = 600) -> psutil.Process:
    """The `esrun train` process of MPI rank ``rank`` of the job, once the run has written a checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ckpts = run_dir / "checkpoints"
        if ckpts.is_dir() and any(not p.name.startswith(".") for p in ckpts.iterdir()):  # a checkpoint is written
            for p in psutil.process_iter(["cmdline"]):
                try:
                    cmd = " ".join(p.info["cmdline"] or [])
                    if "esrun train" not in cmd and "esrun/cli" not in cmd and "bin/esrun" not in cmd:
                        continue
                    env = p.environ()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if env.get("SLURM_JOB_ID") == job and env.get("PMI_RANK") == str(rank):
                    return p
        states = [j.get("JobState") for j in job_fields(cluster, job)]
        if states and states[0] not in ("PENDING", "RUNNING", "CONFIGURING"):
            raise AssertionError(f"job {job} is {states} before rank {rank} was found:\n{job_output(run_dir)}")
        time.sleep(0.2)
    raise AssertionError(f"rank {rank} of job {job} not found with a checkpoint within {timeout} s:\n"
                         f"{job_output(run_dir)}")


def _release_when_requeued(cluster, job: str, timeout: float = 300) -> float:
    """Once the job is requeued and PENDING, let it start REQUEUE_DELAY_S later instead of SLURM's two-minute hold.
    Returns the time at which SLURM showed the requeue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = job_fields(cluster, job)
        if fields and int(fields[0]["Restarts"]) >= 1:
            seen = time.monotonic()
            while fields and fields[0]["JobState"] not in ("PENDING", "RUNNING", "COMPLETED"):
                time.sleep(0.5)
                fields = job_fields(cluster, job)
            if fields and fields[0]["JobState"] == "PENDING":
                r = cluster.run("scontrol", "update", f"JobId={job}", f"StartTime=now+{REQUEUE_DELAY_S}", check=False)
                assert r.returncode == 0, r.stderr
            return seen
        time.sleep(0.5)
    raise AssertionError(f"job {job} was not requeued within {timeout} s")


def test_killed_rank_requeues_the_job_from_its_checkpoint(slurm_cluster, local_hashes, tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), *FAST, "budget.generations=6", "name=rankkill", "--backend", "mpi",
              "--ntasks", "2", "--max-restarts", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job, (run_dir,) = parse_submit(r.stdout)
    rank1 = _rank_process(slurm_cluster, job, 1, run_dir)
    killed_at = time.monotonic()
    os.kill(rank1.pid, signal.SIGKILL)
    requeued_at = _release_when_requeued(slurm_cluster, job)
    states = wait_job(slurm_cluster, job, timeout=600)
    out = job_output(run_dir)
    assert states == ["COMPLETED"], (states, out, slurm_cluster.logs())
    # no hang: the job ended and requeued itself (the seconds are printed, not asserted: the machine is shared)
    print(f"rank killed -> job requeued in {requeued_at - killed_at:.1f} s")
    assert "esrun-slurm: run failed with" in out and "restart 1 of 1 from the last checkpoint" in out, out
    assert f"esrun-slurm: job {job} (restart 1) resumes {run_dir}" in out, out
    assert (run_dir / "slurm_failures").read_text().strip() == "1"
    s = summary(run_dir)
    assert s["generations"] == 6 and s["backend"] == "mpi" and s["workers"] == 2, out
    assert s["params_sha256"] == local_hashes("budget.generations=6"), out
