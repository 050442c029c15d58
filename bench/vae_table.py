"""The docs/compare.md table of a vae_binary compare run: final train / test ELBO (mean ± std over seeds) and the
encoder-gradient variance at the shared start and at the end of training, from ``results_per_seed.csv``.

    .venv/bin/python bench/vae_table.py runs/vae_digits
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def main(run_dir: str) -> None:
    rows = list(csv.DictReader((Path(run_dir) / "results_per_seed.csv").open()))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    at = sorted({int(k[len("variance_at_"):]) for k in rows[0] if k.startswith("variance_at_")})
    print(f"| estimator | decoder calls / step | steps | train ELBO | test ELBO | variance at 0 | variance at {at[-1]} "
          f"| cosine | CPU s per seed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label in labels:
        rs = [r for r in rows if r["label"] == label]

        def pm(key: str, fmt: str = "{:.2f}", rs: list = rs) -> str:
            v = np.array([float(r[key]) for r in rs])
            return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1) if len(v) > 1 else 0.0)}"

        cpu = np.mean([float(r["cpu_seconds"]) for r in rs])
        print(f"| {label} | {rs[0]['evals_per_estimate']} | {rs[0]['steps']} | {pm('elbo_train')} | {pm('elbo_test')} "
              f"| {pm(f'variance_at_{at[0]}', '{:.3g}')} | {pm(f'variance_at_{at[-1]}', '{:.3g}')} "
              f"| {pm('cosine', '{:.3f}')} | {cpu:.1f} |")
    total_cpu = sum(float(r["cpu_seconds"]) for r in rows)
    print(f"\n{len(rows)} jobs, {total_cpu:.0f} CPU seconds in the jobs (compilation included)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/vae_digits")
