"""`esrun runs [DIR]` on real runs: the table, the CSV, every status, and a one-line error for a missing DIR."""
from __future__ import annotations

import csv
import io
import json
import os
import time

import pytest

import esrun
from esrun.errors import UserError
from esrun.logging.runs import RECENT_SECONDS, list_runs, read_run

from esrun_helpers import run_esrun

TINY = ["task.type=synthetic", "task.objective=sphere", "task.dim=3", "strategy.population=8",
        "logging.progress=false", "logging.checkpoint_every=1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = esrun.train(None, *TINY, "budget.generations=2", f"logging.dir={root}", "name=alpha")
    b = esrun.train(None, *TINY, "budget.generations=3", "strategy.name=evosax/SimpleGA", f"logging.dir={root}",
                    "name=beta", "logging.tensorboard=false")
    return root, a.summary, b.summary


def _age(run_dir, seconds: float) -> None:
    """Make every file of a run look ``seconds`` old."""
    then = time.time() - seconds
    for p in [run_dir, *run_dir.rglob("*")]:
        os.utime(p, (then, then))


def test_cli_table_and_csv(two_runs):
    root, a, b = two_runs
    table = run_esrun("runs", str(root), check=True).stdout.splitlines()
    assert table[0].split() == ["name", "task", "strategy", "status", "gens", "best", "final_eval", "wall_s", "hash"]
    assert table[1].split()[:5] == ["alpha", "sphere", "openai_es", "finished", "2"]
    assert table[2].split()[:5] == ["beta", "sphere", "evosax/SimpleGA", "finished", "3"]
    assert table[1].split()[-1] == a["params_sha256"][:12]
    rows = list(csv.DictReader(io.StringIO(run_esrun("runs", str(root), "--csv", check=True).stdout)))
    assert [r["name"] for r in rows] == ["alpha", "beta"]
    assert rows[1]["params_sha256"] == b["params_sha256"]
    assert float(rows[0]["best_fitness"]) == a["best_fitness"]
    assert float(rows[1]["final_eval_return"]) == b["final_eval_return"]
    assert float(rows[0]["wall_seconds"]) == pytest.approx(a["wall_seconds"])


def test_missing_dir_is_one_line(tmp_path):
    proc = run_esrun("runs", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "nowhere" in proc.stderr
    with pytest.raises(UserError):
        list_runs(tmp_path / "nowhere")


def test_status_from_summary_and_checkpoints(two_runs, tmp_path):
    import shutil

    root, _, _ = two_runs
    run = tmp_path / "copy"
    shutil.copytree(root / "alpha", run)
    ckpts = sorted(p for p in (run / "checkpoints").glob("*") if not p.name.startswith("."))
    assert ckpts, "the run wrote checkpoints"
    _age(run, 60)
    assert read_run(run).status == "finished"
    os.utime(ckpts[-1])  # a checkpoint newer than the summary: a resumed session is writing
    assert read_run(run).status == "running"
    _age(run, RECENT_SECONDS + 60)
    os.utime(run / "summary.json", (time.time() - RECENT_SECONDS - 120,) * 2)
    os.utime(ckpts[-1], (time.time() - RECENT_SECONDS - 60,) * 2)
    assert read_run(run).status == "interrupted"  # ... and then went silent
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "stop_reason": "signal"}))
    for p in ckpts:
        os.utime(p, (time.time() - RECENT_SECONDS - 60,) * 2)
    assert read_run(run).status == "interrupted"  # stopped by a signal: resumable
    (run / "summary.json").unlink()
    row = read_run(run)
    assert (row.status, row.strategy, row.task) == ("interrupted", "openai_es", "sphere")
    assert row.generations == 2  # from the newest checkpoint's name
    os.utime(ckpts[-1])
    assert read_run(run).status == "running"
