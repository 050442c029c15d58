"""ES against policy-gradient baselines on CartPole-v1, on Ray with 2 workers (issue 5).

    .venv/bin/python bench/cartpole_pg.py [--config configs/compare/cartpole_pg.yaml] [--seeds 3]
                                          [--budget 30000] [--backend ray] [--workers 2]

Every method of the config (ES, REINFORCE, REINFORCE with a baseline, RLOO, GRPO, PPO) runs for every seed
through ``esrun.compare.rl.run_rl_method`` on the same policy network and starting parameters. Prints the
results table (markdown, as in docs/BENCHMARKS.md) and writes the learning curves (greedy return against
environment steps, mean over seeds with the min-max band) to docs/img/cartpole_pg.png.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, machine_header, table  # noqa: E402

SOLVED = 475.0  # CartPole-v1's reward threshold


def first_reaching(curve: list[tuple[int, dict]], level: float):
    for step, m in curve:
        if m.get("eval/return", -np.inf) >= level:
            return step
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs/compare/cartpole_pg.yaml"))
    ap.add_argument("--seeds", type=int, default=None, help="default: the config's")
    ap.add_argument("--budget", type=int, default=None, help="env steps per method and seed (default: config's)")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--plot", default=str(ROOT / "docs/img/cartpole_pg.png"))
    args = ap.parse_args()

    from esrun.compare import load_compare_config
    from esrun.compare.rl import run_rl_method

    overrides = [f"{k}={v}" for k, v in (("seeds", args.seeds), ("budget.env_steps", args.budget),
                                         ("backend.type", args.backend), ("backend.workers", args.workers))
                 if v is not None]
    cfg = load_compare_config(Path(args.config), overrides)
    machine_header("bench/cartpole_pg.py " + " ".join(sys.argv[1:]))
    budget, backend, workers = cfg.budget.env_steps, cfg.backend.type, cfg.backend.workers
    print(f"# {cfg.task.env_id}, policy {cfg.task.policy.model_dump()}, budget {budget} env steps, "
          f"seeds {cfg.seed_list()}, backend {backend} x {workers}", flush=True)

    runs: dict[str, list[dict]] = {}
    t_all = time.perf_counter()
    for e in cfg.estimators:
        options = dict(e.options)
        if e.learning_rate is not None:
            options.setdefault("learning_rate", e.learning_rate)
        for seed in cfg.seed_list():
            curve: list = []
            out = run_rl_method(e.name, options, cfg.task.env_id, cfg.task.policy, budget, seed, backend, workers,
                                lambda s, m, curve=curve: curve.append((int(s), dict(m))))
            out["curve"] = curve
            runs.setdefault(e.row, []).append(out)
            print(f"{e.row:>20s} seed {seed}: final {out['final_return']:6.1f}  env steps {out['env_steps']}  "
                  f"{out['wall_seconds']:6.1f} s  {out['bytes_per_iteration']:9.0f} B/iter", flush=True)

    rows = []
    for label, outs in runs.items():
        final = np.array([o["final_return"] for o in outs])
        reach = [first_reaching(o["curve"], SOLVED) for o in outs]
        hit = [r for r in reach if r is not None]
        rows.append({
            "method": label,
            "final": f"{final.mean():.1f} ± {final.std():.1f}",
            "min": float(final.min()),
            "solved": f"{len(hit)}/{len(outs)}",
            "steps_to_solve": f"{int(np.median(hit))}" if hit else "-",
            "env_steps": int(np.mean([o["env_steps"] for o in outs])),
            "wall": float(np.mean([o["wall_seconds"] for o in outs])),
            "bytes": float(np.mean([o["bytes_per_iteration"] for o in outs])),
            "updates": int(outs[0]["updates_per_iteration"]),
            "iters": float(np.mean([o["iterations"] for o in outs])),
            "params": int(outs[0]["num_params"]),
        })
    print()
    print(table(rows, [("method", "method", ""), ("final", "final greedy return (mean ± std)", ""),
                       ("min", "worst seed", ".1f"), ("solved", f"seeds reaching {SOLVED:g}", ""),
                       ("steps_to_solve", "env steps to first eval ≥ 475 (median)", ""),
                       ("env_steps", "env steps used", "d"), ("iters", "iterations", ".1f"),
                       ("updates", "all-reduces / iteration", "d"), ("bytes", "bytes / worker / iteration", ".0f"),
                       ("wall", "wall s / run", ".1f"), ("params", "num_params", "d")]))
    print(f"\n# total wall time {time.perf_counter() - t_all:.0f} s", flush=True)
    plot(runs, budget, Path(args.plot), cfg)
    emit({label: [{k: v for k, v in o.items() if isinstance(v, (int, float, str))} for o in outs]
          for label, outs in runs.items()})


def plot(runs: dict, budget: int, path: Path, cfg) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, max(o["env_steps"] for outs in runs.values() for o in outs), 300)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, outs in runs.items():
        ys = []
        for o in outs:
            pts = [(s, m["eval/return"]) for s, m in o["curve"] if "eval/return" in m]
            s, v = np.array(pts).T
            # the last evaluation holds until the next one (a step function), and after the run's end
            idx = np.searchsorted(s, grid, side="right") - 1
            ys.append(v[np.maximum(idx, 0)])
        ys = np.array(ys)
        line, = ax.plot(grid, ys.mean(0), label=label)
        ax.fill_between(grid, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15)
    ax.axhline(SOLVED, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("greedy return")
    ax.set_title(f"{cfg.task.env_id}: mean and min-max over {len(cfg.seed_list())} seeds, "
                 f"{cfg.backend.type} x {cfg.backend.workers}")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"# plot: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
