"""``esrun compare CONFIG [section.key=value ...]``: estimators side by side at an equal budget.

Prints the results table and where the run went; a user mistake (unknown key, an estimator that does not apply
to the task) raises UserError, which ``esrun.cli`` prints as one line and exits 2.
"""
from __future__ import annotations

import argparse

from esrun.errors import UserError


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="esrun compare", description="Gradient estimators and ES side by side at an "
                                "equal budget of evaluations (gym tasks: environment steps).")
    p.add_argument("config", help="YAML config, e.g. configs/compare/bernoulli_toy.yaml")
    p.add_argument("overrides", nargs="*", help="section.key=value (estimators.<i>.key indexes the list)")
    args = p.parse_args(argv)
    if "=" in args.config:
        raise UserError(f"expected a CONFIG file before overrides, got '{args.config}'")
    from esrun.compare.config import load_compare_config
    from esrun.compare.harness import run_compare

    result = run_compare(load_compare_config(args.config, args.overrides))
    if result is not None:
        print(result.markdown)
        print(f"{result.run_dir}: results.csv results.md curves.png"
              + (" variance.png" if (result.run_dir / "variance.png").exists() else "")
              + f"; tensorboard --logdir {result.run_dir}")
    return 0
