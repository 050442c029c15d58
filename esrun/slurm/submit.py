"""Submitting a rendered job script with ``sbatch``, all or nothing.

Order of work, so that a rejected request leaves nothing behind:
1. ``sbatch`` must be on the PATH; the config with its overrides must validate (the run's own loader).
2. The script is rendered and checked by SLURM itself with ``sbatch --test-only`` (unknown partition, more nodes,
   memory or GPUs than the cluster has are refused here, with SLURM's message).
3. Only then are the run directories created (SLURM writes the job's output there, so they must exist), the script
   is kept in each of them as ``job.sbatch``, and ``sbatch --parsable`` submits it. If that still fails, the
   directories created in step 3 are removed again.
4. ``slurm_job.json`` in each run directory records the job id for ``esrun slurm status``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from esrun.slurm.render import JobSpec, render_script

SCRIPT_NAME = "job.sbatch"
RECORD_NAME = "slurm_job.json"
_RESERVED = ("name", "logging.dir", "seed")


class SubmitError(RuntimeError):
    """The job was not submitted; the message is one line (SLURM's own words where SLURM refused)."""


def find_sbatch() -> str:
    exe = shutil.which("sbatch")
    if exe is None:
        raise SubmitError("sbatch not found on the PATH: run on a SLURM login node (or load the slurm module)")
    return exe


def slurm_message(stderr: str, stdout: str = "") -> str:
    """SLURM's error lines joined into one line (``sbatch: error:`` prefixes dropped)."""
    lines = []
    for raw in (stderr + "\n" + stdout).splitlines():
        line = raw.strip()
        for prefix in ("sbatch: error:", "sbatch: fatal:", "error:", "sbatch:"):
            if line.startswith(prefix):
                line = line[len(prefix):].strip()
                break
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines) or "sbatch failed without a message"


def resolve_run(config: str, overrides: list[str]) -> tuple[str, str]:
    """``(name, logging.dir)`` of the run that ``esrun train CONFIG overrides`` would start, validating the config.

    Raises SubmitError with the config loader's one-line message when the config or an override is invalid.
    """
    from esrun.errors import ConfigError
    from esrun.runner.names import load_config

    try:
        cfg = load_config(config, overrides)
    except ConfigError as exc:
        raise SubmitError(str(exc)) from None
    return cfg.name, cfg.logging.dir


def split_overrides(overrides: list[str], array: str | None) -> tuple[list[str], list[str]]:
    """Overrides for the job (without name / logging.dir, which the script sets) and all of them for validation."""
    job = []
    for text in overrides:
        key = text.split("=", 1)[0]
        if key == "seed" and array is not None:
            raise SubmitError(f"override '{text}': --array sets the seed of each task; drop the seed override")
        if key in _RESERVED[:2]:
            continue
        job.append(text)
    return job, list(overrides)


def build_spec(config: str, overrides: list[str], *, venv: str, workdir: str | None = None, **options) -> JobSpec:
    """A JobSpec for ``esrun train CONFIG overrides`` with the run's name and absolute logging dir resolved."""
    workdir = str(Path(workdir or os.getcwd()).absolute())
    job_overrides, all_overrides = split_overrides(overrides, options.get("array"))
    name, log_dir = resolve_run(config, all_overrides)
    log_dir_abs = Path(log_dir) if Path(log_dir).is_absolute() else Path(workdir) / log_dir
    config_abs = Path(config) if Path(config).is_absolute() else Path(workdir) / config
    return JobSpec(
        config=str(config_abs), name=name, log_dir=str(log_dir_abs), workdir=workdir, venv=venv,
        overrides=tuple(job_overrides), **options,
    )


def sbatch_command(sbatch: str, script: Path) -> list[str]:
    return [sbatch, "--parsable", str(script)]


def _run(argv: list[str], cwd: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise SubmitError(f"{' '.join(argv[:2])} did not answer within 120 s (is slurmctld up?)") from None


def check_with_slurm(sbatch: str, script_text: str, workdir: str) -> None:
    """``sbatch --test-only``: SLURM validates the request without queueing a job."""
    with tempfile.NamedTemporaryFile("w", suffix=".sbatch", delete=False) as f:
        f.write(script_text)
        path = f.name
    try:
        r = _run([sbatch, "--test-only", path], workdir)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise SubmitError(f"SLURM refused the job: {slurm_message(r.stderr, r.stdout)}")


def submit(spec: JobSpec) -> tuple[str, list[Path]]:
    """Submit ``spec``; returns ``(job_id, run_dirs)``. Raises SubmitError with nothing left behind."""
    sbatch = find_sbatch()
    script_text = render_script(spec)
    run_dirs = spec.run_dirs()
    for run_dir in run_dirs:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise SubmitError(f"run directory {run_dir} already exists and is not empty: choose another name=...")
    check_with_slurm(sbatch, script_text, spec.workdir)

    created: list[Path] = []
    try:
        for run_dir in run_dirs:
            if not run_dir.exists():
                run_dir.mkdir(parents=True)
                created.append(run_dir)
            (run_dir / SCRIPT_NAME).write_text(script_text)
        script = run_dirs[0] / SCRIPT_NAME
        r = _run(sbatch_command(sbatch, script), spec.workdir)
        if r.returncode != 0:
            raise SubmitError(f"SLURM refused the job: {slurm_message(r.stderr, r.stdout)}")
        job_id = r.stdout.strip().split(";", 1)[0]
        if not job_id.isdigit():
            raise SubmitError(f"sbatch printed no job id: {r.stdout.strip()!r}")
    except BaseException:
        for run_dir in created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise

    seeds = [None] if spec.array is None else [int(d.name.rsplit("-seed", 1)[1]) for d in run_dirs]
    for run_dir, seed in zip(run_dirs, seeds):
        record = {
            "job_id": job_id if seed is None else f"{job_id}_{seed}",
            "array_job_id": None if seed is None else job_id,
            "array_task_id": seed,
            "run_dir": str(run_dir),
            "script": str(run_dir / SCRIPT_NAME),
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "spec": asdict(spec),
        }
        (run_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return job_id, run_dirs
