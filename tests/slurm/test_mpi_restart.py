"""An MPI rank killed under SLURM: the job does not hang, it is requeued (``esrun slurm submit --max-restarts``) and
resumes from its last checkpoint, ending with the undisturbed local run's ``params_sha256``."""
from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from esrun_helpers.processes import cont
from esrun_helpers.slurm import (
    CARTPOLE,
    FAST,
    esrun,
    freeze_at_first_checkpoint,
    job_output,
    parse_submit,
    release_requeued,
    summary,
    wait_job,
)

pytestmark = pytest.mark.timeout(900)


def _rank_process(job: str, rank: int, pids: list[int]) -> psutil.Process:
    """The `esrun train` process of MPI rank ``rank`` among the job's processes."""
    for pid in pids:
        try:
            p = psutil.Process(pid)
            cmd = " ".join(p.cmdline())
            env = p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if ("esrun train" in cmd or "esrun/cli" in cmd or "bin/esrun" in cmd) and env.get("SLURM_JOB_ID") == job \
                and env.get("PMI_RANK") == str(rank):
            return p
    raise AssertionError(f"rank {rank} of job {job} is not among its processes {pids}")


def test_killed_rank_requeues_the_job_from_its_checkpoint(slurm_cluster, local_hashes, tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), *FAST, "budget.generations=6", "name=rankkill", "--backend", "mpi",
              "--ntasks", "2", "--max-restarts", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job, (run_dir,) = parse_submit(r.stdout)
    # Frozen mid-run, so the kill lands before the run could end however fast this machine is.
    _, pids = freeze_at_first_checkpoint(slurm_cluster, job, run_dir, last_generation=6)
    rank1 = _rank_process(job, 1, pids)
    os.kill(rank1.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    cont(pids)
    requeued_at = release_requeued(slurm_cluster, job)
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
