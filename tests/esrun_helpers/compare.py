"""Helpers of the compare tests: the configs, reduced budgets, and the contract of a compare run directory."""
from __future__ import annotations

import csv
from pathlib import Path

import yaml

from esrun_helpers import ROOT

COMPARE_CONFIGS = ROOT / "configs" / "compare"

# Reduced budgets: the jobs are tiny, so compile time dominates; one fixed point, few points per curve.
REDUCED = ["seeds=2", "diagnostics.points=1", "diagnostics.repeats=32", "logging.points=4"]


def estimator_configs() -> list[Path]:
    """Every non-gym config under configs/compare/ (gym configs are run by tests/compare/test_rl*.py)."""
    return sorted(p for p in COMPARE_CONFIGS.glob("*.yaml") if yaml.safe_load(p.read_text())["task"]["type"] != "gym")


def read_csv(path: Path) -> list[dict]:
    with Path(path).open() as fh:
        return list(csv.DictReader(fh))


def scalar_events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the TensorBoard run in ``run_dir``, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def check_outputs(run_dir: Path, cfg) -> list[dict]:
    """The contract of a compare run directory; returns the aggregated rows of results.csv."""
    rows = read_csv(run_dir / "results.csv")
    labels = [e.row for e in cfg.estimators]
    assert [r["label"] for r in rows] == labels
    budget = cfg.budget.evaluations or cfg.budget.env_steps
    per_seed = read_csv(run_dir / "results_per_seed.csv")
    assert len(per_seed) == len(labels) * cfg.seeds
    cost = max(int(r["evals_per_estimate"]) for r in per_seed)
    spent = [int(float(r["evaluations"])) for r in per_seed]
    # equal budgets within one estimate's cost, never above the budget
    assert max(spent) - min(spent) < cost, spent
    assert all(budget - cost < s <= budget for s in spent), (budget, cost, spent)
    for r in per_seed:
        tb = run_dir / r["label"] / f"seed{r['seed']}"
        assert any(p.name.startswith("events.out.tfevents") for p in tb.iterdir()), tb
        events = scalar_events(tb)
        steps = [s for s, _ in events["objective/value"]]
        # the TensorBoard x axis is evaluations of f: from 0 to what this job spent
        assert steps[0] == 0 and steps[-1] == int(float(r["evaluations"])), (tb, steps)
        final = float(r["final_objective"])
        assert abs(events["objective/value"][-1][1] - final) < 1e-5 * (1 + abs(final))
    md = (run_dir / "results.md").read_text()
    assert all(f"| {label} |" in md for label in labels)
    for png in ("curves.png", "variance.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    return rows
