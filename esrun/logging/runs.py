"""`esrun runs [DIR]`: the runs under a directory as a table (or CSV), read from their files alone.

A run is a directory holding ``config.yaml`` (DIR itself, or a child of DIR). Its row comes from
``summary.json`` (written when a session ends), else from ``config.yaml`` and the checkpoint names. Checkpoints
are found by globbing ``checkpoints/*`` (any name; hidden temporary files are ignored), so the table does not
depend on the checkpoint format.

Status (``activity`` = the newest modification time of the run's files: events, checkpoints, summary):

    running      no summary, or a checkpoint newer than the summary (a resumed session), and activity within
                 the last ``RECENT_SECONDS`` (10 minutes)
    interrupted  the same without recent activity (killed, crashed, machine gone), or a summary whose stop
                 reason is ``signal`` (stopped by SIGINT / SIGTERM / SIGUSR1; resumable with --resume)
    failed       a summary whose stop reason is ``environment failures``
    finished     a summary, no newer checkpoint, any other stop reason (a budget or the target return)

Nothing here imports JAX: listing is instant.
"""
from __future__ import annotations

import csv
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from esrun.errors import UserError

RECENT_SECONDS = 600.0
_GENERATION = re.compile(r"(\d+)")


@dataclass(frozen=True)
class RunRow:
    name: str
    task: str
    strategy: str
    status: str
    generations: int | None
    best_fitness: float | None
    final_eval_return: float | None
    wall_seconds: float | None
    params_sha256: str


def _checkpoints(run_dir: Path) -> list[Path]:
    d = run_dir / "checkpoints"
    return sorted(p for p in d.glob("*") if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []


def _mtime(paths) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _config_fields(run_dir: Path) -> tuple[str, str]:
    """(task, strategy) from config.yaml, for runs without a summary."""
    import yaml

    try:
        raw = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "?", "?"
    task = raw.get("task") or {}
    name = task.get("env_id") or task.get("env_name") or task.get("objective") or task.get("type") or "?"
    return str(name), str((raw.get("strategy") or {}).get("name", "?"))


def run_status(run_dir: Path, summary: dict | None, now: float | None = None) -> str:
    """running / interrupted / failed / finished; see the module docstring."""
    now = time.time() if now is None else now
    ckpts = _checkpoints(run_dir)
    summary_path = run_dir / "summary.json"
    activity = _mtime([*ckpts, summary_path, *run_dir.glob("events.out.tfevents.*"), run_dir / "config.yaml"])
    in_session = summary is None or _mtime(ckpts) > summary_path.stat().st_mtime
    if in_session:
        return "running" if now - activity < RECENT_SECONDS else "interrupted"
    assert summary is not None  # not in session: a summary was read
    reason = str(summary.get("stop_reason") or "")
    if reason == "signal":
        return "interrupted"
    if reason == "environment failures":
        return "failed"
    return "finished"


def read_run(run_dir: Path, now: float | None = None) -> RunRow:
    summary = _read_json(run_dir / "summary.json")
    status = run_status(run_dir, summary, now)
    if summary is not None and status != "running":
        return RunRow(run_dir.name, str(summary.get("task")), str(summary.get("strategy")), status,
                      summary.get("generations"), summary.get("best_fitness"), summary.get("final_eval_return"),
                      summary.get("wall_seconds"), str(summary.get("params_sha256") or ""))
    task, strategy = _config_fields(run_dir)
    gens = [int(m.group(1)) for p in _checkpoints(run_dir) if (m := _GENERATION.search(p.name))]
    return RunRow(run_dir.name, task, strategy, status, max(gens) if gens else None, None, None, None, "")


def find_runs(root: Path) -> list[Path]:
    """``root`` itself if it is a run, else its children that are runs, by name."""
    if (root / "config.yaml").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file())


def list_runs(root: Path) -> list[RunRow]:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"runs: '{root}' is not a directory (train writes runs under logging.dir, default 'runs')")
    now = time.time()
    return [read_run(p, now) for p in find_runs(root)]


def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "float":
        return f"{value:.4g}"
    if kind == "seconds":
        return f"{value:.1f}"
    return str(value)


COLUMNS = [("name", "str"), ("task", "str"), ("strategy", "str"), ("status", "str"), ("generations", "str"),
           ("best_fitness", "float"), ("final_eval_return", "float"), ("wall_seconds", "seconds"),
           ("params_sha256", "hash")]
HEADERS = {"generations": "gens", "best_fitness": "best", "final_eval_return": "final_eval",
           "wall_seconds": "wall_s", "params_sha256": "hash"}


def write_table(rows: list[RunRow], out: TextIO = sys.stdout) -> None:
    """Aligned columns for a terminal; the hash is shortened to 12 characters."""
    cells = [[HEADERS.get(c, c) for c, _ in COLUMNS]]
    for r in rows:
        d = asdict(r)
        cells.append([(d[c][:12] or "-") if kind == "hash" else _fmt(d[c], kind) for c, kind in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


def write_csv(rows: list[RunRow], out: TextIO = sys.stdout) -> None:
    """Every field in full (the whole hash, raw numbers; empty for unknown)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow([c for c, _ in COLUMNS])
    for r in rows:
        d = asdict(r)
        w.writerow(["" if d[c] is None else d[c] for c, _ in COLUMNS])


def main(root: str, as_csv: bool = False) -> int:
    rows = list_runs(Path(root))
    if not rows and not as_csv:
        print(f"no runs under '{root}'", file=sys.stderr)
        return 0
    (write_csv if as_csv else write_table)(rows)
    return 0
