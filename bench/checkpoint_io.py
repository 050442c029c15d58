"""Checkpoint write / validated read time and size (issue 12's data-only format) against the former pickle, side by
side in one process, for a state of N parameters (OpenAI-ES with Adam: mean, m, v of N float32 each).

    python bench/checkpoint_io.py [--dim 1000000] [--repeats 5]

Prints the median seconds of ``checkpoint.save`` (temp file, fsync, rename, directory fsync, prune) and of
``checkpoint.load`` (header checks, SHA-256 of every array, rebuild against a fresh state), the file size, and the
same for ``pickle.dumps`` + SHA-256 + fsync / ``pickle.loads`` of the same state (what esrun <= 0.1 did).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import esrun
from esrun.runner import checkpoint
from esrun.runner.replica import Replica


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cfg = esrun.load_config(None, "task.type=synthetic", f"task.dim={args.dim}", "strategy.population=8",
                            "budget.generations=1")
    ev = Replica(cfg)
    fresh = ev.init_state()
    state, _ = ev.apply(fresh, np.arange(8.0), 0, None)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        save = _median_seconds(lambda: checkpoint.save(run, state, "config: {}", keep=1), args.repeats)
        load = _median_seconds(lambda: checkpoint.load(run, fresh), args.repeats)
        size = checkpoint.list_checkpoints(run)[0].stat().st_size

        def old_save():
            import jax

            payload = pickle.dumps({"state": jax.tree_util.tree_map(np.asarray, state), "config": ""},
                                   protocol=pickle.HIGHEST_PROTOCOL)
            with open(run / "old.ckpt", "wb") as fh:
                fh.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
                fh.flush()
                os.fsync(fh.fileno())

        old_s = _median_seconds(old_save, args.repeats)

        def old_load():
            digest, _, payload = (run / "old.ckpt").read_bytes().partition(b"\n")
            assert hashlib.sha256(payload).hexdigest().encode() == digest
            pickle.loads(payload)

        old_l = _median_seconds(old_load, args.repeats)
        old_size = (run / "old.ckpt").stat().st_size
    print(f"dim={args.dim} ({3 * args.dim * 4 / 1e6:.1f} MB of arrays), median of {args.repeats}")
    print(f"npz + JSON (now):  save {save:.3f} s  load+validate {load:.3f} s  size {size / 1e6:.2f} MB")
    print(f"pickle (<= 0.1):   save {old_s:.3f} s  load          {old_l:.3f} s  size {old_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
