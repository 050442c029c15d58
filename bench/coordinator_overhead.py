"""Coordinator overhead per generation (time not spent evaluating) and bytes per generation per worker.

    .venv/bin/python bench/coordinator_overhead.py --backend ray --workers 1 2
    .venv/bin/mpiexec -n 2 .venv/bin/python bench/coordinator_overhead.py --backend mpi

For population 256 and 1024 (chunks of 64) on a cheap synthetic objective (sphere, dim 1000), the generation is
driven exactly as the runner does (evaluate -> Replica.apply -> backend.tell) and timed part by part:

    t_gen        wall time of a whole generation
    t_eval       the evaluation on the critical path: the longest time one worker spent evaluating its chunks
                 (measured by the workers around Replica.evaluate_chunks, sent back with the fitness)
    overhead     t_gen - t_eval  (dispatch, serialization, transfer, waiting, the coordinator's own update)
                 all three are medians over the timed generations
    t_apply      the update every replica applies (part of the overhead; O(population x num_params) compute)
    bytes        comm/bytes_per_generation: bytes each worker sends + receives per generation (measured)

The printed figures feed the 1,000-worker projection in docs/backends.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from esrun.backends import get_backend  # noqa: E402
from esrun.config import load_config  # noqa: E402
from esrun.runner.replica import Replica  # noqa: E402


def measure(backend_type: str, workers: int, population: int, dim: int, generations: int) -> dict | None:
    cfg = load_config(None, [
        "task.type=synthetic", "task.objective=sphere", f"task.dim={dim}", f"strategy.population={population}",
        "backend.chunk_size=64", f"backend.type={backend_type}", f"backend.workers={workers}",
        "backend.hash_every=10", "budget.generations=1000", "logging.tensorboard=false",
    ])
    evaluator = Replica(cfg)
    backend = get_backend(backend_type)(cfg, evaluator)
    state = evaluator.init_state()
    state = backend.start(state) or state
    t_gen, t_apply, t_eval, overhead = [], [], [], []
    try:
        for g in range(generations + 2):  # two warm-up generations (jit compilation)
            t0 = time.perf_counter()
            results = backend.evaluate(state)
            fitness, steps, obs = evaluator.combine(results)
            t1 = time.perf_counter()
            state, _ = evaluator.apply(state, fitness, steps, obs)
            t2 = time.perf_counter()
            state = backend.tell(fitness, obs, state) or state
            t3 = time.perf_counter()
            if g >= 2:
                t_gen.append(t3 - t0)
                t_apply.append(t2 - t1)
                t_eval.append(backend.eval_seconds)
                overhead.append(t3 - t0 - backend.eval_seconds)
        comm = backend.comm_metrics()
    finally:
        backend.close()
    if not backend.is_coordinator:
        return None
    med = statistics.median
    return {"backend": backend_type, "workers": backend.workers, "population": population, "chunks":
            evaluator.num_chunks, "t_gen_ms": 1e3 * med(t_gen), "t_eval_ms": 1e3 * med(t_eval),
            "overhead_ms": 1e3 * med(overhead),
            "t_apply_ms": 1e3 * statistics.median(t_apply), "bytes_per_generation": comm["comm/bytes_per_generation"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="ray", choices=["ray", "mpi"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray actors (MPI: the number of ranks)")
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--generations", type=int, default=20)
    p.add_argument("--populations", type=int, nargs="+", default=[256, 1024])
    args = p.parse_args()
    if args.backend == "ray":  # one Ray session for every measurement (the backend then leaves it running)
        import ray

        ray.init(include_dashboard=False, logging_level="warning")
    workers = args.workers if args.backend == "ray" else [1]
    rows = [measure(args.backend, w, pop, args.dim, args.generations) for w in workers for pop in args.populations]
    if rows[0] is None:
        return
    print(f"{'backend':8s} {'workers':>7s} {'pop':>5s} {'chunks':>6s} {'t_gen ms':>9s} {'t_eval ms':>9s} "
          f"{'overhead ms':>11s} {'t_apply ms':>10s} {'bytes/gen/worker':>16s}")
    for r in rows:
        print(f"{r['backend']:8s} {r['workers']:7d} {r['population']:5d} {r['chunks']:6d} {r['t_gen_ms']:9.2f} "
              f"{r['t_eval_ms']:9.2f} {r['overhead_ms']:11.2f} {r['t_apply_ms']:10.2f} "
              f"{r['bytes_per_generation']:16.0f}")


if __name__ == "__main__":
    main()
