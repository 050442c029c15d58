"""``esrun slurm status``: state and elapsed time from SLURM, last logged generation from each run directory.

Jobs are found through the ``slurm_job.json`` that ``esrun slurm submit`` leaves in every run directory. SLURM is
asked with ``squeue`` (pending / running jobs) and then ``scontrol show job`` (jobs finished less than MinJobAge
ago); a job SLURM has forgotten is reported from its run directory alone (COMPLETED when summary.json exists).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from esrun.slurm.submit import RECORD_NAME


@dataclass(frozen=True)
class RunStatus:
    job_id: str
    state: str
    elapsed: str
    generation: int | None
    run_dir: Path


def find_records(runs_dir: Path) -> list[dict]:
    """Every slurm_job.json under ``runs_dir`` (one level deep), oldest submission first."""
    records = []
    for path in sorted(Path(runs_dir).glob(f"*/{RECORD_NAME}")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    records.sort(key=lambda r: (_job_sort_key(r["job_id"]), r["run_dir"]))
    return records


def _job_sort_key(job_id: str) -> tuple[int, int]:
    base, _, task = job_id.partition("_")
    return int(base) if base.isdigit() else 0, int(task) if task.isdigit() else -1


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    return r.stdout if r.returncode == 0 else None


def squeue_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``job id -> (state, elapsed)`` for pending / running jobs; array tasks as ``<job>_<task>``."""
    if not job_ids:
        return {}
    bases = sorted({j.split("_", 1)[0] for j in job_ids})
    out = _run(["squeue", "-h", "-r", "-j", ",".join(bases), "-o", "%i|%T|%M"])
    states = {}
    for line in (out or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def scontrol_state(job_id: str) -> tuple[str, str] | None:
    """``(JobState, RunTime)`` of a job SLURM still remembers, else None."""
    out = _run(["scontrol", "-o", "show", "job", job_id])
    if not out:
        return None
    fields = dict(tok.split("=", 1) for tok in out.splitlines()[0].split() if "=" in tok)
    if "JobState" not in fields:
        return None
    return fields["JobState"], fields.get("RunTime", "-")


def last_generation(run_dir: Path) -> int | None:
    """The last generation the run logged: summary.json, else the TensorBoard events, else the checkpoint."""
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            return int(json.loads(summary.read_text())["generations"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    step = _last_event_step(run_dir)
    if step is not None:
        return step
    return _checkpoint_generation(run_dir)


def _last_event_step(run_dir: Path) -> int | None:
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    if not files:
        return None
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        return None
    last = None
    for path in files:
        try:
            for event in EventFileLoader(str(path)).Load():
                # steps are generations, except for tags plotted against environment steps (vs_env_steps/...)
                by_generation = any(not v.tag.startswith("vs_env_steps/") for v in event.summary.value)
                if event.HasField("summary") and by_generation and (last is None or event.step > last):
                    last = int(event.step)
        except Exception:  # noqa: BLE001 - a file being written may end mid-record
            continue
    return last


def _checkpoint_generation(run_dir: Path) -> int | None:
    if not (run_dir / "checkpoints").is_dir():
        return None
    from esrun.runner import checkpoint

    return checkpoint.latest_generation(run_dir)  # metadata only; never fails on a half-written run


def collect(runs_dir: Path, job_id: str | None = None) -> list[RunStatus]:
    records = find_records(runs_dir)
    if job_id is not None:
        records = [r for r in records if r["job_id"] == job_id or r["job_id"].split("_", 1)[0] == job_id]
    live = squeue_states([r["job_id"] for r in records])
    rows = []
    for r in records:
        run_dir = Path(r["run_dir"])
        state_elapsed = live.get(r["job_id"])
        if state_elapsed is None:
            state_elapsed = scontrol_state(r["job_id"])
        if state_elapsed is None:
            state_elapsed = ("COMPLETED" if (run_dir / "summary.json").is_file() else "UNKNOWN", "-")
        rows.append(RunStatus(r["job_id"], state_elapsed[0], state_elapsed[1], last_generation(run_dir), run_dir))
    return rows


def format_table(rows: list[RunStatus]) -> str:
    header = ("JOBID", "STATE", "ELAPSED", "GENERATION", "RUN_DIR")
    body = [(r.job_id, r.state, r.elapsed, "-" if r.generation is None else str(r.generation), str(r.run_dir))
            for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *body]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1])
    return "\n".join(lines)
