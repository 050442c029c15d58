"""``run_compare(cfg)``: validate every estimator against the task, run the jobs on the backend, write the outputs."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from esrun.compare import outputs
from esrun.compare.config import dump
from esrun.errors import UserError
from esrun.estimators.policy_gradient import METHODS as PG_METHODS

RL_METHODS = ("es", *PG_METHODS)
"""The method names a gym task accepts (``esrun.compare.rl.run_rl_method``'s ``method``): ES and every
policy-gradient baseline of ``esrun.estimators.policy_gradient.METHODS``."""


@dataclass
class CompareResult:
    run_dir: Path
    rows: list[dict]
    results: list[dict]
    markdown: str


def _fresh_run_dir(cfg) -> Path:
    run_dir = Path(cfg.logging.dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    for e in cfg.estimators:  # a rerun replaces its TensorBoard runs instead of overlaying two histories
        if (run_dir / e.row).is_dir():
            shutil.rmtree(run_dir / e.row)
    (run_dir / "config.yaml").write_text(dump(cfg))
    return run_dir


def _is_root(cfg) -> bool:
    """False on MPI ranks other than 0; refuses (one line) an MPI process that mpiexec did not start."""
    from esrun.backends.pool import is_coordinator

    return is_coordinator(cfg.backend.type)


def run_entry(cfg_json: dict, index: int) -> list[dict]:
    """Every seed of estimator entry ``index``: one job of ``esrun.backends.pool.map_jobs`` (only the config, as
    JSON, goes to a worker; only curve points and scalars come back). Its results depend only on (config, entry,
    seed), not on the process that ran it."""
    from esrun.compare.run import run_entries
    from esrun.config.compare_schema import CompareConfig

    return run_entries(CompareConfig.model_validate(cfg_json), [index])


# -- synthetic and discrete tasks ----------------------------------------------------------------------------------


def _run_estimators(cfg) -> CompareResult | None:
    from esrun.backends.pool import map_jobs
    from esrun.compare.run import prepare

    task, methods = prepare(cfg)  # refuses an estimator that does not apply, before any work
    for e, m in zip(cfg.estimators, methods):
        if m.evals > cfg.budget.evaluations:
            raise UserError(f"budget.evaluations = {cfg.budget.evaluations}: less than one estimate of "
                            f"estimators[{e.row}] ({m.evals} calls of f)")
    if cfg.backend.type == "mpi":
        _is_root(cfg)  # refuses a process mpiexec did not start, before any work
    jobs = map_jobs(cfg.backend.type, partial(run_entry, cfg.model_dump(mode="json")), range(len(cfg.estimators)),
                    cfg.backend.workers, cfg.backend.address)
    if jobs is None:  # an MPI rank other than 0
        return None
    results = [r for entry in jobs for r in entry]  # (entry, seed) order
    run_dir = _fresh_run_dir(cfg)
    if cfg.logging.tensorboard:
        outputs.write_tensorboard(run_dir, results)
    labels = [e.row for e in cfg.estimators]
    opt = "" if task.optimum is None else f"; optimum {outputs._fmt(task.optimum)}"
    header = (f"**{cfg.name}**: task {task.name} ({task.dist_kind}), {cfg.budget.evaluations} evaluations of f per "
              f"estimator and seed, seeds {cfg.seed_list()}, backend {cfg.backend.type}{opt}. Final objective: "
              f"{'f(mean)' if task.dist_kind == 'gaussian' else 'E f under the final distribution'} (lower is "
              f"better); bias / variance / cosine at {cfg.diagnostics.points} fixed point(s), "
              f"{cfg.diagnostics.repeats} estimates each.")
    rows = outputs.write_tables(run_dir, results, labels, header, "evaluations")
    positive = all(v > 0 for r in results for _, m in r["curve"] for k, v in m.items() if k == "objective/regret")
    tag = "objective/regret" if task.optimum is not None else "objective/value"
    outputs.plot_curves(run_dir / "curves.png", results, labels, tag, "evaluations of f",
                        "regret (objective - optimum)" if tag == "objective/regret" else "objective",
                        f"{cfg.name}: {task.name}, mean and min-max over {cfg.seeds} seeds", log_y=positive)
    outputs.plot_variance(run_dir / "variance.png", rows,
                          f"{cfg.name}: {task.name}, at {cfg.diagnostics.points} fixed point(s)")
    return CompareResult(run_dir, rows, results, (run_dir / "results.md").read_text())


# -- gym tasks: esrun.compare.rl.run_rl_method -------------------------------------------------------------------


def _run_gym(cfg) -> CompareResult | None:
    for e in cfg.estimators:
        if e.name not in RL_METHODS:
            raise UserError(f"estimators[{e.row}].name = {e.name!r}: a gym task runs one of {', '.join(RL_METHODS)}")
    from esrun.compare import rl

    root = _is_root(cfg)
    run_dir = _fresh_run_dir(cfg) if root else None
    results = []
    for i, e in enumerate(cfg.estimators):
        options = dict(e.options)
        if e.learning_rate is not None:
            options.setdefault("learning_rate", e.learning_rate)
        if e.num_samples is not None:
            options.setdefault("num_samples", e.num_samples)
        for seed in cfg.seed_list():
            curve: list = []
            tb = root and cfg.logging.tensorboard
            sink = outputs.TensorBoardSink(run_dir / e.row / f"seed{seed}") if tb else None

            def log(step, metrics, curve=curve, sink=sink):
                curve.append((int(step), {k: float(v) for k, v in metrics.items()}))
                if sink is not None:
                    sink.write(int(step), metrics)

            t0 = time.perf_counter()
            out = rl.run_rl_method(e.name, options, cfg.task.env_id, cfg.task.policy, cfg.budget.env_steps, seed,
                                   cfg.backend.type, cfg.backend.workers, log)
            if sink is not None:
                sink.close()
            res: dict[str, Any] = {k: v for k, v in out.items() if isinstance(v, (int, float, str))}
            res.update({"entry": i, "label": e.row, "estimator": e.name, "seed": seed, "curve": curve,
                        "final_objective": out["final_return"], "evaluations": out["env_steps"],
                        "wall_seconds": out.get("wall_seconds", time.perf_counter() - t0)})
            results.append(res)
    if not root:
        return None
    assert run_dir is not None  # the coordinator made it
    labels = [e.row for e in cfg.estimators]
    header = (f"**{cfg.name}**: {cfg.task.env_id}, {cfg.budget.env_steps} environment steps per method and seed, "
              f"seeds {cfg.seed_list()}, backend {cfg.backend.type} ({cfg.backend.workers} workers). Final "
              f"objective: the final return (higher is better).")
    rows = outputs.write_tables(run_dir, results, labels, header, "env steps")
    outputs.plot_curves(run_dir / "curves.png", results, labels, "eval/return", "environment steps", "return",
                        f"{cfg.name}: {cfg.task.env_id}, mean and min-max over {cfg.seeds} seeds", log_y=False)
    return CompareResult(run_dir, rows, results, (run_dir / "results.md").read_text())


def run_compare(cfg) -> CompareResult | None:
    """Run a validated :class:`~esrun.config.compare_schema.CompareConfig`; None on MPI ranks other than 0."""
    if cfg.task.type == "gym":
        return _run_gym(cfg)
    return _run_estimators(cfg)
