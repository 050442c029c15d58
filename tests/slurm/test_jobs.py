"""End to end on the real test cluster: `esrun slurm submit` runs finish with the undisturbed local run's hash.

Every job here is a short CartPole run (esrun_helpers.slurm.FAST). A run's params_sha256 is the SHA-256 of its final
mean, so equality with the local run proves the job ran the same computation whatever the backend, and that a job
stopped mid-run and requeued resumed from its checkpoint instead of starting over or drifting.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from esrun_helpers.processes import cont
from esrun_helpers.slurm import (
    CARTPOLE,
    FAST,
    esrun,
    freeze_at_first_checkpoint,
    job_fields,
    job_output,
    parse_submit,
    release_requeued,
    summary,
    wait_job,
)


def _submit(tmp_path: Path, *args: str) -> tuple[str, list[Path]]:
    r = esrun("slurm", "submit", str(CARTPOLE), *FAST, *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job, run_dirs = parse_submit(r.stdout)
    for run_dir in run_dirs:
        assert (run_dir / "job.sbatch").is_file(), "the rendered script is kept in the run directory"
        assert json.loads((run_dir / "slurm_job.json").read_text())["job_id"].split("_")[0] == job
    return job, run_dirs


def _finish(cluster, job: str, run_dirs: list[Path], timeout: float = 600) -> list[dict]:
    states = wait_job(cluster, job, timeout=timeout)
    assert set(states) <= {"COMPLETED"}, (states, [job_output(d) for d in run_dirs], cluster.logs())
    return [summary(d) for d in run_dirs]


def test_local_backend_job_matches_local_run(slurm_cluster, local_hashes, tmp_path):
    job, run_dirs = _submit(tmp_path, "name=viaslurm", "--backend", "local")
    (s,) = _finish(slurm_cluster, job, run_dirs)
    assert s["generations"] == 3 and s["backend"] == "local"
    assert s["params_sha256"] == local_hashes()

    r = esrun("slurm", "status", job, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert rows[0].split() == ["JOBID", "STATE", "ELAPSED", "GENERATION", "RUN_DIR"]
    jobid, state, _elapsed, generation, run_dir = rows[1].split()
    assert (jobid, state, generation, run_dir) == (job, "COMPLETED", "3", str(run_dirs[0]))


@pytest.mark.parametrize("launcher", ["mpiexec", "srun"])
def test_mpi_backend_job_matches_local_run(slurm_cluster, local_hashes, tmp_path, launcher):
    job, run_dirs = _submit(tmp_path, "name=viampi", "--backend", "mpi", "--ntasks", "2", "--mpi-launcher", launcher)
    (s,) = _finish(slurm_cluster, job, run_dirs)
    launch = "srun --mpi=pmi2 --ntasks=2" if launcher == "srun" else "mpiexec -n 2"
    assert f"esrun-slurm: {launch} " in job_output(run_dirs[0])
    assert s["backend"] == "mpi" and s["workers"] == 2, job_output(run_dirs[0])
    assert s["params_sha256"] == local_hashes(), job_output(run_dirs[0])


def test_ray_backend_job_matches_local_run(slurm_cluster, local_hashes, tmp_path):
    job, run_dirs = _submit(tmp_path, "name=viaray", "--backend", "ray", "--nodes", "1", "--cpus-per-task", "2")
    (s,) = _finish(slurm_cluster, job, run_dirs)
    assert s["backend"] == "ray", job_output(run_dirs[0])
    assert s["params_sha256"] == local_hashes(), job_output(run_dirs[0])
    assert "ray head on localhost" in job_output(run_dirs[0])


def test_array_over_three_seeds(slurm_cluster, local_hashes, tmp_path):
    job, run_dirs = _submit(tmp_path, "name=sweep", "--array", "0-2")
    assert [d.name for d in run_dirs] == ["sweep-seed0", "sweep-seed1", "sweep-seed2"]
    summaries = _finish(slurm_cluster, job, run_dirs, timeout=900)
    hashes = [s["params_sha256"] for s in summaries]
    assert len(set(hashes)) == 3, hashes
    assert hashes[0] == local_hashes()  # seed 0 is the default seed of the local run
    for run_dir, seed in zip(run_dirs, range(3)):
        assert f"seed: {seed}" in (run_dir / "config.yaml").read_text()

    r = esrun("slurm", "status", job, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == [f"{job}_{s}" for s in range(3)]


def test_job_requeued_mid_run_resumes_with_the_undisturbed_hash(slurm_cluster, local_hashes, tmp_path):
    job, run_dirs = _submit(tmp_path, "name=requeued", "budget.generations=6")
    run_dir = run_dirs[0]
    frozen_at, _pids = freeze_at_first_checkpoint(slurm_cluster, job, run_dir, last_generation=6)
    r = esrun("slurm", "status", "--runs-dir", str(run_dir.parent), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    jobid, state, _elapsed, generation, _ = r.stdout.splitlines()[1].split()
    assert (jobid, state, int(generation)) == (job, "RUNNING", frozen_at), r.stdout
    # Requeued mid-run: SLURM continues the frozen processes with its SIGTERM, and the run checkpoints and stops at
    # the end of the generation it is in.
    r = slurm_cluster.run("scontrol", "requeue", job, check=False)
    assert r.returncode == 0, r.stderr
    release_requeued(slurm_cluster, job)
    (s,) = _finish(slurm_cluster, job, run_dirs)
    out = job_output(run_dir)
    assert int(job_fields(slurm_cluster, job)[0]["Restarts"]) == 1, out
    assert f"esrun-slurm: job {job} (restart 1) resumes {run_dir}" in out, out
    assert s["generations"] == 6 and s["stop_reason"].startswith("generations"), out
    assert s["params_sha256"] == local_hashes("budget.generations=6"), out


def test_time_limit_signal_checkpoints_requeues_and_resumes(slurm_cluster, local_hashes, tmp_path):
    """The --signal=B:USR1 path: the batch shell forwards USR1, the run checkpoints, the job requeues itself."""
    job, run_dirs = _submit(tmp_path, "name=preempted", "budget.generations=6")
    run_dir = run_dirs[0]
    _, pids = freeze_at_first_checkpoint(slurm_cluster, job, run_dir, last_generation=6)
    # What --signal=B:USR1@T sends; it waits in the stopped batch shell, which forwards it to the run once both
    # continue, generations before the run could end.
    r = slurm_cluster.run("scancel", "--batch", "--signal=USR1", job, check=False)
    assert r.returncode == 0, r.stderr
    cont(pids)
    release_requeued(slurm_cluster, job)
    (s,) = _finish(slurm_cluster, job, run_dirs)
    out = job_output(run_dir)
    assert "esrun-slurm: SIGUSR1: asking the run to checkpoint" in out, out
    assert f"scontrol requeue {job}" in out, out
    assert "esrun-slurm: requeued; this life of the job ends here" in out, out
    assert f"esrun-slurm: job {job} (restart 1) resumes {run_dir}" in out, out
    assert s["generations"] == 6 and s["stop_reason"].startswith("generations"), out
    assert s["params_sha256"] == local_hashes("budget.generations=6"), out
