"""What ``esrun compare`` leaves in ``runs/<name>/`` (written by the driver / MPI rank 0 only):

    config.yaml               the resolved config
    <label>/seed<k>/          one TensorBoard run per estimator and seed; the step is evaluations of f (gym:
                              environment steps), so TensorBoard overlays every run on one x axis
    results_per_seed.csv      one row per (estimator, seed)
    results.csv, results.md   one row per estimator: mean and std over seeds of the final objective, bias,
                              variance, cosine similarity, evaluations and wall seconds
    curves.png                objective (gym: return) against evaluations (gym: env steps), mean and min-max band
    variance.png              per-estimate variance at the diagnostics points, and variance x evaluations
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from esrun.logging.sinks import TensorBoardSink

SUMMARY_FIELDS = ("final_objective", "final_regret", "bias", "bias_se", "variance", "variance_x_evals", "cosine",
                  "evaluations", "wall_seconds")
PER_SEED_FIELDS = ("label", "estimator", "seed", "num_samples", "evals_per_estimate", "steps", *SUMMARY_FIELDS,
                   "compile_seconds", "final_theta_sha")


def write_tensorboard(run_dir: Path, results: list[dict]) -> None:
    for r in results:
        sink = TensorBoardSink(run_dir / r["label"] / f"seed{r['seed']}")
        for step, metrics in r["curve"]:
            sink.write(int(step), metrics)
        sink.close()


def aggregate(results: list[dict], labels: list[str]) -> list[dict[str, Any]]:
    """One row per label (in config order): mean and std over seeds of every SUMMARY_FIELDS entry present."""
    rows = []
    for label in labels:
        rs = [r for r in results if r["label"] == label]
        row: dict[str, Any] = {"label": label, "estimator": rs[0]["estimator"], "seeds": len(rs),
                               "num_samples": rs[0].get("num_samples"),
                               "evals_per_estimate": rs[0].get("evals_per_estimate")}
        for f in SUMMARY_FIELDS:
            vals = [r[f] for r in rs if r.get(f) is not None and math.isfinite(float(r[f]))]
            if vals:
                row[f"{f}_mean"] = float(np.mean(vals))
                row[f"{f}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.3g}" if 1e-3 <= a < 1e5 else f"{v:.2e}"


def _pm(row: dict, field: str) -> str:
    if f"{field}_mean" not in row:
        return "-"
    return f"{_fmt(row[f'{field}_mean'])} ± {_fmt(row[f'{field}_std'])}"


def results_markdown(rows: list[dict], header: str, x_name: str) -> str:
    cols = [("final objective", "final_objective"), ("regret", "final_regret"), ("bias", "bias"),
            ("variance", "variance"), ("variance × evals", "variance_x_evals"), ("cosine", "cosine"),
            (x_name, "evaluations"), ("wall s", "wall_seconds")]
    cols = [(n, f) for n, f in cols if any(f"{f}_mean" in r for r in rows)]
    lines = [header, "", "| estimator | n | evals/estimate | " + " | ".join(n for n, _ in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        n = "-" if r.get("num_samples") is None else str(r["num_samples"])
        e = "-" if r.get("evals_per_estimate") is None else str(r["evals_per_estimate"])
        lines.append(f"| {r['label']} | {n} | {e} | " + " | ".join(_pm(r, f) for _, f in cols) + " |")
    return "\n".join(lines) + "\n"


def write_tables(run_dir: Path, results: list[dict], labels: list[str], header: str, x_name: str) -> list[dict]:
    extra = sorted({k for r in results for k, v in r.items() if k not in PER_SEED_FIELDS and k not in ("curve", "entry")
                    and isinstance(v, (int, float, str))})
    _write_csv(run_dir / "results_per_seed.csv", results, [*PER_SEED_FIELDS, *extra])
    rows = aggregate(results, labels)
    fields = ["label", "estimator", "seeds", "num_samples", "evals_per_estimate"]
    for f in SUMMARY_FIELDS:
        fields += [f"{f}_mean", f"{f}_std"]
    _write_csv(run_dir / "results.csv", rows, fields)
    (run_dir / "results.md").write_text(results_markdown(rows, header, x_name))
    return rows


def _curve_arrays(rs: list[dict], tag: str):
    """A common x grid (the union of steps) and the per-seed values interpolated on it: [seeds, points]."""
    xs = sorted({s for r in rs for s, m in r["curve"] if tag in m})
    ys = []
    for r in rs:
        pts = [(s, m[tag]) for s, m in r["curve"] if tag in m]
        if pts:
            sx, sy = zip(*pts)
            ys.append(np.interp(xs, sx, sy))
    return np.asarray(xs, float), np.asarray(ys, float)


def plot_curves(path: Path, results: list[dict], labels: list[str], tag: str, x_name: str, y_name: str,
                title: str, log_y: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for label in labels:
        x, y = _curve_arrays([r for r in results if r["label"] == label], tag)
        if y.size == 0:
            continue
        line, = ax.plot(x, y.mean(0), label=label, lw=1.6)
        if len(y) > 1:
            ax.fill_between(x, y.min(0), y.max(0), color=line.get_color(), alpha=0.18, lw=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_variance(path: Path, rows: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "variance_mean" in r]
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    labels = [r["label"] for r in rows]
    for ax, field, name in ((axes[0], "variance", "per-estimate variance (trace)"),
                            (axes[1], "variance_x_evals", "variance × evaluations per estimate")):
        mean = np.array([r[f"{field}_mean"] for r in rows])
        std = np.array([r[f"{field}_std"] for r in rows])
        floor = max(mean[mean > 0].min() * 1e-2, 1e-30) if np.any(mean > 0) else 1e-30
        ax.barh(labels, np.maximum(mean, floor), xerr=std, color="tab:blue", alpha=0.75)
        ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    axes[1].set_yticklabels([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
