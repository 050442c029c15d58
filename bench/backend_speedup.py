"""Speedup of 2 workers over 1 on an environment-bound task, for the Ray and MPI backends.

    .venv/bin/python bench/backend_speedup.py [--generations 6] [--population 128]

Each configuration is a real ``esrun train`` process (``mpiexec -n N esrun train ... backend.type=mpi`` for MPI)
on configs/cartpole.yaml: Gymnasium CartPole-v1 stepped in the worker processes, episodes truncated at 200
steps, chunks of 16 members, no evaluation of the mean inside the timed generations. The figure per run is the
median of ``perf/seconds_per_generation`` read back from its TensorBoard events, over the generations after the
first (which compiles). The runs also check that every backend ends with the same params_sha256.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(backend: str, workers: int, args, root: Path) -> dict:
    logdir = root / f"{backend}{workers}"
    overrides = [
        f"budget.generations={args.generations}", "budget.target_return=null",
        f"strategy.population={args.population}", "backend.chunk_size=16", "task.max_episode_steps=200",
        "task.eval_every=100000", "task.eval_episodes=1", "logging.progress=false", f"logging.dir={logdir}",
        f"backend.type={backend}", f"backend.workers={workers}",
    ]
    cmd = [str(BIN / "esrun"), "train", "configs/cartpole.yaml", *overrides, "--quiet"]
    if backend == "mpi":
        cmd = [str(BIN / "mpiexec"), "-n", str(workers), *cmd]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = logdir / "cartpole"
    per_gen = [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars("perf/seconds_per_generation")]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"backend": backend, "workers": workers, "sec_per_gen": statistics.median(per_gen[1:]),
            "process_wall": wall, "sha": summary["params_sha256"], "bytes": summary["bytes_per_generation"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--population", type=int, default=128)
    p.add_argument("--backends", nargs="+", default=["ray", "mpi"])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(b, w, args, Path(tmp)) for b in args.backends for w in (1, 2)]
    print(f"{'backend':8s} {'workers':>7s} {'s/gen':>8s} {'speedup':>8s} {'bytes/gen/worker':>16s}  params_sha256")
    base = {}
    for r in rows:
        base.setdefault(r["backend"], r["sec_per_gen"])
        speedup = base[r['backend']] / r['sec_per_gen']
        print(f"{r['backend']:8s} {r['workers']:7d} {r['sec_per_gen']:8.3f} {speedup:7.2f}x"
              f" {r['bytes']:16.0f}  {r['sha'][:16]}")
    if len({r["sha"] for r in rows}) != 1:
        print("WARNING: params_sha256 differs between runs")


if __name__ == "__main__":
    main()
