"""The generation loop: evaluate through a backend, apply the update, log, checkpoint, stop on a budget.

    for each generation g:
        results  = backend.evaluate(state)                     # fitness of every chunk, in chunk order
        state'   = evaluator.apply(state, fitness, steps, obs)  # the same pure update on every replica
        backend.tell(...)                                       # replicas apply it too
        every eval_every: evaluate the mean policy              # coordinator; the stop decision is agreed
        log; checkpoint every N; stop at the first budget reached

SIGINT, SIGTERM and SIGUSR1 set a flag; the loop finishes the generation in flight, checkpoints and returns
with ``stop_reason = "signal"``. ``train(config, resume=run_dir)`` continues a checkpointed run exactly.

Live metrics: ``train(config, on_metrics=fn)`` calls ``fn(metrics)`` on the coordinator after every generation
(every one, whatever ``logging.log_every``), with a copy of the dict the sinks get plus ``"generation": g`` (the
idea of Brax's ``progress_fn``): a caller that wants a learning curve takes it from there instead of reading the
run's TensorBoard files back. The values are the float64 ones before TensorBoard's float32 rounding.
"""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esrun.backends import Backend, get_backend
from esrun.config import Config, dump_config
from esrun.digest import params_hash
from esrun.errors import UserError
from esrun.logging import ConsoleSink, MetricLogger, TensorBoardSink, write_summary
from esrun.logging.tensorboard import hparams_of
from esrun.runner import checkpoint
from esrun.runner.replica import Replica, RunState

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
FAILED = "environment failures"


class EnvironmentFailedError(UserError, RuntimeError):
    """Every member failed ``task.max_failed_generations`` generations in a row (one line: the env, the error)."""


def _failure_message(cfg: Config, evaluator: Replica) -> str:
    name = (getattr(cfg.task, "env_id", None) or getattr(cfg.task, "env_name", None)
            or getattr(cfg.task, "objective", "the task"))
    last = getattr(evaluator.task, "last_failure", None) or "non-finite fitness"
    return (f"every member failed in {cfg.task.max_failed_generations} generations in a row on {name}: {last} "
            f"(task.max_failed_generations; the state before is checkpointed, --resume continues it)")


@dataclass
class Result:
    run_dir: Path
    summary: dict[str, Any]
    mean: np.ndarray = field(repr=False)

    @property
    def params_sha256(self) -> str:
        return self.summary["params_sha256"]


class _StopFlag:
    """Installs handlers for the stop signals (main thread only) and restores the previous ones on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in STOP_SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test worker thread)
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def budget_reached(cfg: Config, state: RunState) -> str | None:
    """The first budget the run has reached, as 'name (limit)', or None."""
    b = cfg.budget
    if b.target_return is not None and state.eval_return is not None and state.eval_return >= b.target_return:
        return f"target_return ({b.target_return:g})"
    if b.generations is not None and state.generation >= b.generations:
        return f"generations ({b.generations})"
    if b.env_steps is not None and state.env_steps >= b.env_steps:
        return f"env_steps ({b.env_steps})"
    if b.evaluations is not None and state.evaluations >= b.evaluations:
        return f"evaluations ({b.evaluations})"
    if b.wall_seconds is not None and state.wall_seconds >= b.wall_seconds:
        return f"wall_seconds ({b.wall_seconds:g})"
    return None


def run_dir_for(cfg: Config) -> Path:
    return Path(cfg.logging.dir) / cfg.name


def _warn(msg: str) -> None:
    print(f"esrun: warning: {msg}", file=sys.stderr, flush=True)


def _checkpoint(run_dir: Path, state: RunState, config_yaml: str, cfg: Config, final: bool) -> None:
    """Save a checkpoint; a failed periodic one is a warning (the run goes on and retries at the next one), a
    failed final one stops with its one-line error (the previous checkpoints are intact either way)."""
    try:
        checkpoint.save(run_dir, state, config_yaml, keep=cfg.logging.keep_checkpoints)
    except checkpoint.CheckpointWriteError as exc:
        if final:
            raise
        _warn(f"{exc}; the run continues and tries again at the next checkpoint")


def _resume_state(cfg: Config, run_dir: Path, fresh: RunState, skipped: list[str]) -> RunState:
    """The state of the newest intact checkpoint; ``fresh`` (a new state of ``cfg``) gives the structure, shapes
    and dtypes the file must match. Checkpoints skipped on the way, and the one taken, are appended to
    ``skipped`` as messages."""
    if (run_dir / "config.yaml").is_file():
        from esrun.config.load import read_yaml, validate
        from esrun.config.resume import check_resume

        check_resume(validate(read_yaml(run_dir / "config.yaml")), cfg)  # the trajectory cannot change
    state, path = checkpoint.load(run_dir, fresh, warn=skipped.append)
    if skipped:
        skipped.append(f"resuming from {path.name} (generation {state.generation})")
    return state


def _log_video(log: MetricLogger, evaluator: Replica, state: RunState) -> bool:
    """One episode of the mean policy to TensorBoard (``eval/video``). False (after one warning) if the task
    cannot render; the caller then stops asking."""
    from esrun.runner.evaluate import VIDEO_MAX_FRAMES, VIDEO_STRIDE, render_frames

    try:
        frames = render_frames(evaluator.task, evaluator.mean(state), state.obs_stats, seed=state.generation)
    except UserError as exc:
        log.message(f"esrun: warning: logging.video_every: no video ({exc})")
        return False
    log.video("eval/video", frames[::VIDEO_STRIDE][:VIDEO_MAX_FRAMES], state.generation)
    return True


def train(cfg: Config, resume: Path | None = None, progress: bool | None = None,
          on_metrics: Callable[[dict], None] | None = None) -> Result:
    """Run (or continue) the training described by a validated config; returns the summary.

    ``on_metrics(metrics)``: called on the coordinator (MPI: rank 0 only) after each generation with that
    generation's metrics and ``"generation"``; see the module docstring."""
    t_start = time.perf_counter()
    evaluator = Replica(cfg)
    run_dir = Path(resume) if resume is not None else run_dir_for(cfg)
    config_yaml = dump_config(cfg)
    state = evaluator.init_state()
    skipped: list[str] = []
    if resume is not None:  # before any worker starts: a refused checkpoint leaves nothing running
        try:
            state = _resume_state(cfg, run_dir, state, skipped)
        except BaseException:
            evaluator.task.close()
            raise
    backend = get_backend(cfg.backend.type)(cfg, evaluator)
    coord = backend.is_coordinator
    for msg in skipped if coord else ():
        _warn(msg)
    if coord:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config_yaml)
    sinks: list = []
    if coord and cfg.logging.tensorboard:
        sinks.append(TensorBoardSink(run_dir, hparams=hparams_of(cfg), config_text=config_yaml))
    show = cfg.logging.progress if progress is None else progress
    if coord and show:
        sinks.append(ConsoleSink(cfg.budget.generations, state.generation, cfg.name))
    log = MetricLogger(sinks)
    session_start = time.perf_counter()
    wall_before = state.wall_seconds
    stop_reason = None
    eval_cfg_every = getattr(cfg.task, "eval_every", 1)
    eval_episodes = getattr(cfg.task, "eval_episodes", 1)
    last_eval = None
    evals_done, video_ok = 0, True  # evaluations of the mean policy this session (logging.video_every counts)
    failed_streak = 0  # generations in a row in which every member failed (NaN / inf fitness)
    try:
        state = backend.start(state) or state  # MPI: rank 0's state replaces a replica that disagrees
        with _StopFlag() as flag:
            while True:
                stop_reason = budget_reached(cfg, state)
                stop_reason = backend.agree(stop_reason)
                if stop_reason is not None:
                    break
                t0 = time.perf_counter()
                results = backend.evaluate(state)
                t_eval = time.perf_counter() - t0
                fitness, steps, obs_delta = evaluator.combine(results)
                state, metrics = evaluator.apply(state, fitness, steps, obs_delta)
                state = backend.tell(fitness, obs_delta, state) or state  # MPI: resync after a hash mismatch
                failed_streak = failed_streak + 1 if metrics["fitness/nonfinite"] == len(fitness) else 0
                if evaluator.task.has_eval and (state.generation % eval_cfg_every == 0):
                    returns = evaluator.evaluate_mean(state, eval_episodes) if coord else None
                    value = backend.agree(None if returns is None else float(np.mean(returns)))
                    state = state._replace(eval_return=value, eval_generation=state.generation)
                    if returns is not None:
                        last_eval = returns
                        metrics["eval/return_mean"] = float(np.mean(returns))
                        metrics["eval/return_std"] = float(np.std(returns))
                dt = time.perf_counter() - t0
                state = state._replace(wall_seconds=wall_before + time.perf_counter() - session_start)
                metrics.update({
                    "perf/seconds_per_generation": dt,
                    "perf/eval_fraction": t_eval / dt if dt > 0 else 0.0,
                    "perf/steps_per_second": steps / dt if dt > 0 else 0.0,
                    "perf/env_steps": float(state.env_steps),
                    "perf/evaluations": float(state.evaluations),
                    "fitness/nonfinite_total": float(state.nonfinite),
                })
                metrics.update(backend.comm_metrics())
                if coord and on_metrics is not None:
                    on_metrics({**metrics, "generation": state.generation})
                if coord and state.generation % cfg.logging.log_every == 0:
                    log.write(state.generation, metrics)
                    log.histogram("fitness/population", fitness, state.generation)
                if coord and "eval/return_mean" in metrics:
                    evals_done += 1
                    if video_ok and cfg.logging.video_every and evals_done % cfg.logging.video_every == 0:
                        video_ok = _log_video(log, evaluator, state)
                if coord and state.generation % cfg.logging.checkpoint_every == 0:
                    _checkpoint(run_dir, state, config_yaml, cfg, final=False)
                if failed_streak >= cfg.task.max_failed_generations:  # the same on every replica: no agree
                    stop_reason = FAILED
                    break
                if backend.agree(flag.signum) is not None:
                    stop_reason = "signal"
                    break
        state = state._replace(wall_seconds=wall_before + time.perf_counter() - session_start)
        summary = {}
        if coord:
            _checkpoint(run_dir, state, config_yaml, cfg, final=True)
            final_eval = None
            if evaluator.task.has_eval and stop_reason not in ("signal", FAILED):
                if state.eval_generation != state.generation or last_eval is None:
                    last_eval = evaluator.evaluate_mean(state, eval_episodes)
                    state = state._replace(eval_return=float(np.mean(last_eval)), eval_generation=state.generation)
                final_eval = last_eval
            summary = build_summary(cfg, evaluator, backend, state, final_eval, stop_reason,
                                    time.perf_counter() - t_start)
            write_summary(run_dir, summary)
            log.finish(summary)
            if stop_reason != FAILED:  # that one ends with its own one-line error below
                log.message(f"stopped: {stop_reason}; summary in {run_dir / 'summary.json'}")
        if stop_reason == FAILED:
            raise EnvironmentFailedError(_failure_message(cfg, evaluator))
    finally:
        log.close()
        backend.close()
        evaluator.task.close()
    return Result(run_dir, summary, evaluator.mean(state))


def build_summary(cfg: Config, evaluator: Replica, backend: Backend, state: RunState, final_eval: np.ndarray | None,
                  stop_reason: str, session_seconds: float) -> dict[str, Any]:
    comm = backend.comm_metrics()
    return {
        "name": cfg.name,
        "task": (getattr(cfg.task, "env_id", None) or getattr(cfg.task, "env_name", None)
                 or getattr(cfg.task, "objective", None)),
        "strategy": cfg.strategy.name,
        "num_params": evaluator.num_params,
        "population": cfg.strategy.population,
        "generations": state.generation,
        "env_steps": state.env_steps,
        "evaluations": state.evaluations,
        "wall_seconds": state.wall_seconds,
        "session_seconds": session_seconds,
        "best_fitness": state.best_fitness,
        "final_eval_return": None if final_eval is None else float(np.mean(final_eval)),
        "final_eval_std": None if final_eval is None else float(np.std(final_eval)),
        "final_eval_episodes": None if final_eval is None else int(len(final_eval)),
        "nonfinite_fitness": state.nonfinite,
        "stop_reason": stop_reason,
        "backend": cfg.backend.type,
        "workers": backend.workers,
        "bytes_per_generation": comm.get("comm/bytes_per_generation", 0.0),
        "params_sha256": params_hash(evaluator.mean(state)),
    }
