"""Per-estimate variance of every estimator on its oracle problems, measured against exact values.

Reads ``CASES`` (a list of dicts) from ``bench/variance_cases_continuous.py`` and, if present,
``bench/variance_cases_discrete.py``. A case is::

    {"estimator": str,            # row label
     "target": str,               # distribution / function
     "run": key -> Estimate,      # ONE estimate (its num_evals is the cost per estimate)
     "exact_variance": tuple | None,  # exact variance of one estimate, per gradient leaf, summed over coordinates
     "note": str}                 # e.g. "trace", "~ per-sample/n"

For each case the script draws ``--reps`` independent estimates (``jax.vmap`` over keys, one jit) and prints
the evaluations per estimate, the measured variance per leaf (sum of coordinate variances) with its standard
error, and the exact variance.

    .venv/bin/python bench/estimator_variance.py [--reps 20000]
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
CASE_FILES = ("variance_cases_continuous.py", "variance_cases_discrete.py")


def load_cases() -> list[dict]:
    cases = []
    for name in CASE_FILES:
        path = HERE / name
        if not path.exists():
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases.extend(module.CASES)
    return cases


def measure(case: dict, reps: int, seed: int = 0):
    """(num_evals, [variance per leaf], [standard error per leaf]) over ``reps`` independent estimates."""
    seen = []

    def one(key):
        est = case["run"](key)
        seen.append(est.num_evals)
        return est.grad

    grads = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(seed), reps))
    var, se = [], []
    for leaf in jax.tree_util.tree_leaves(grads):
        g = np.asarray(leaf, np.float64).reshape(reps, -1)
        q = np.sum((g - g.mean(0)) ** 2, axis=1) * reps / (reps - 1)  # unbiased per-rep contributions
        var.append(q.mean())
        se.append(q.std(ddof=1) / np.sqrt(reps))
    return int(seen[0]), var, se


def _fmt(values) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args()
    header = (f"{'estimator':<26} {'distribution / function':<36} {'evals':>5}  {'measured var (+- se)':<34} "
              f"{'exact':<22} note")
    print(header)
    print("-" * len(header))
    for case in load_cases():
        evals, var, se = measure(case, args.reps)
        measured = ", ".join(f"{v:.4g} +- {s:.2g}" for v, s in zip(var, se))
        exact = _fmt(case["exact_variance"]) if case.get("exact_variance") is not None else "-"
        print(f"{case['estimator']:<26} {case['target']:<36} {evals:>5}  {measured:<34} {exact:<22} "
              f"{case.get('note', '')}")


if __name__ == "__main__":
    main()
