"""Run the full ``esrun compare`` configs and regenerate the figures of docs/compare.md.

    .venv/bin/python bench/compare_full.py [--only NAME ...] [--dir runs/compare_full]

Runs every estimator config under configs/compare/ (gym configs excluded: their harness is another benchmark) plus
the Bernoulli toy at t = 0.499, prints each results.md, and copies curves.png / variance.png to
docs/img/compare_<name>_{curves,variance}.png. Local backend; a run's figures depend only on its config.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "compare"
IMG = ROOT / "docs" / "img"

RUNS = [  # (name, config, overrides)
    ("bernoulli_toy", "bernoulli_toy.yaml", []),
    ("bernoulli_toy_499", "bernoulli_toy.yaml", ["task.target=0.499", "name=bernoulli_toy_499"]),
    ("binary", "binary.yaml", []),
    ("categorical", "categorical.yaml", []),
    ("topk", "topk.yaml", []),
    ("quadratic", "quadratic.yaml", []),
    ("rastrigin", "rastrigin.yaml", []),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="run names to run (default: all)")
    ap.add_argument("--dir", default=str(ROOT / "runs" / "compare_full"))
    args = ap.parse_args()
    from esrun.compare import load_compare_config, run_compare

    print(f"# esrun compare, full configs — {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {sys.version.split()[0]}")
    IMG.mkdir(parents=True, exist_ok=True)
    for name, config, overrides in RUNS:
        if args.only and name not in args.only:
            continue
        path = CONFIGS / config
        if yaml.safe_load(path.read_text())["task"]["type"] == "gym":
            continue
        t0 = time.perf_counter()
        cfg = load_compare_config(path, [*overrides, f"logging.dir={args.dir}"])
        result = run_compare(cfg)
        elapsed = time.perf_counter() - t0
        cmd = " ".join(["esrun compare", f"configs/compare/{config}", *overrides])
        print(f"\n## {name}\n\n`{cmd}` ({elapsed:.0f} s including compilation)\n\n{result.markdown}")
        for kind in ("curves", "variance"):
            src = result.run_dir / f"{kind}.png"
            if src.exists():
                shutil.copyfile(src, IMG / f"compare_{name}_{kind}.png")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
