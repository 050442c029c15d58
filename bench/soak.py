"""Soak: a long run must not grow in memory, file descriptors or disk.

    .venv/bin/python bench/soak.py [--local-generations 2000] [--ray-generations 300]

Runs configs/cartpole_jax.yaml (the JAX CartPole; no target_return, so every generation runs) to a fixed budget, once
on the local backend and once on Ray with 2 workers, each in a fresh subprocess of this script (``--child``) that
calls ``esrun.runner.train`` with a probe wrapped around the backend's ``evaluate``. At the start of every
generation the probe records, for the coordinator and every Ray worker process (``/proc/PID``):

    RSS (VmRSS), open file descriptors (entries of /proc/PID/fd), bytes under the run directory and its checkpoints/

Warm-up is the generation ``max(10, generations // 10)``; the figures are the growth from there to the last
generation: ``rss_growth = RSS(end) / RSS(warm-up) - 1`` (coordinator; Ray workers: the largest worker's), the fd
count at warm-up and end, and the run directory's bytes. Checkpoints are written every 10 generations, so
``logging.keep_checkpoints`` bounds the checkpoint directory; TensorBoard events grow with the generations logged
(linear by design) and are reported apart.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cartpole_jax.yaml"


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def dir_bytes(path: Path) -> tuple[int, int]:
    """(bytes, files) of every regular file under ``path``."""
    total = files = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
                files += 1
        except FileNotFoundError:  # a temp checkpoint renamed meanwhile
            pass
    return total, files


def overrides_for(backend: str, generations: int, log_dir: Path, population: int, workers: int) -> list[str]:
    out = [f"budget.generations={generations}", "budget.target_return=null", f"strategy.population={population}",
           "logging.progress=false", "logging.checkpoint_every=10", f"logging.dir={log_dir}", f"name=soak-{backend}",
           f"backend.type={backend}"]
    if backend == "ray":
        out.append(f"backend.workers={workers}")
    return out


def child(args) -> None:
    """Run one soak in this process and print ``RESULT {json}``."""
    import esrun  # noqa: F401 - before JAX: esrun's XLA flags, as the CLI sets them
    from esrun.backends import BACKENDS, get_backend
    from esrun.config import load_config
    from esrun.runner import train

    log_dir = Path(args.log_dir)
    cfg = load_config(str(CONFIG), overrides_for(args.backend, args.generations, log_dir, args.population,
                                                 args.workers))
    run_dir = log_dir / cfg.name
    warmup = max(10, args.generations // 10)
    samples: dict[int, dict] = {}
    get_backend(args.backend)
    original = BACKENDS[args.backend]

    def sample(backend, generation: int) -> dict:
        pids = [os.getpid(), *getattr(backend, "pids", [])]
        total, files = dir_bytes(run_dir) if run_dir.exists() else (0, 0)
        ckpt = run_dir / "checkpoints"
        ckpt_bytes, ckpt_files = dir_bytes(ckpt) if ckpt.exists() else (0, 0)
        return {"generation": generation, "rss": [proc_rss_bytes(p) for p in pids], "fds": [proc_fds(p) for p in pids],
                "pids": pids, "run_dir_bytes": total, "run_dir_files": files, "ckpt_bytes": ckpt_bytes,
                "ckpt_files": ckpt_files}

    def factory(c, evaluator):
        backend = original(c, evaluator)
        evaluate = backend.evaluate

        def probed(state):
            g = state.generation
            if g in (1, warmup) or g == args.generations - 1:
                samples[g] = sample(backend, g)
            return evaluate(state)

        backend.evaluate = probed
        return backend

    BACKENDS[args.backend] = factory
    t0 = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - t0
    end = sample(None, args.generations)  # after the run: the run directory as it stays on disk
    first, warm, last = samples[1], samples[warmup], samples[args.generations - 1]
    print("RESULT " + json.dumps({
        "backend": args.backend, "generations": args.generations, "warmup_generation": warmup,
        "population": args.population, "workers": args.workers if args.backend == "ray" else 1,
        "seconds": seconds, "params_sha256": result.params_sha256,
        "first": first, "warm": warm, "last": last, "after": end,
    }), flush=True)


def run_soak(backend: str, generations: int, population: int = 256, workers: int = 2,
             timeout: float = 7200) -> dict:
    """One soak in a fresh interpreter; returns the figures (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix=f"esrun-soak-{backend}-") as tmp:
        cmd = [sys.executable, __file__, "--child", "--backend", backend, "--generations", str(generations),
               "--population", str(population), "--workers", str(workers), "--log-dir", tmp]
        env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        for line in p.stdout.splitlines():
            if line.startswith("RESULT "):
                return figures(json.loads(line[len("RESULT "):]))
        raise RuntimeError(f"soak {backend} failed (rc={p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")


def figures(r: dict) -> dict:
    """Growth figures from the samples: coordinator (index 0) and the largest Ray worker."""
    warm, last = r["warm"], r["last"]
    assert warm["pids"] == last["pids"], "a worker was replaced during the soak; its figures would not compare"
    growth = [b / a - 1.0 for a, b in zip(warm["rss"], last["rss"])]
    return {
        **{k: r[k] for k in ("backend", "generations", "warmup_generation", "population", "workers", "seconds",
                             "params_sha256")},
        "rss_warm_mib": warm["rss"][0] / 2**20, "rss_end_mib": last["rss"][0] / 2**20,
        "rss_growth": growth[0],
        "worker_rss_warm_mib": [x / 2**20 for x in warm["rss"][1:]],
        "worker_rss_end_mib": [x / 2**20 for x in last["rss"][1:]],
        "worker_rss_growth_max": max(growth[1:], default=None),
        "fds_first": r["first"]["fds"], "fds_warm": warm["fds"], "fds_end": last["fds"],
        "run_dir_bytes_warm": warm["run_dir_bytes"], "run_dir_bytes_end": r["after"]["run_dir_bytes"],
        "ckpt_files_warm": warm["ckpt_files"], "ckpt_files_end": r["after"]["ckpt_files"],
        "ckpt_bytes_warm": warm["ckpt_bytes"], "ckpt_bytes_end": r["after"]["ckpt_bytes"],
        "events_bytes_end": r["after"]["run_dir_bytes"] - r["after"]["ckpt_bytes"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-generations", type=int, default=2000)
    ap.add_argument("--ray-generations", type=int, default=300)
    ap.add_argument("--population", type=int, default=256)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--generations", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--log-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import load_average, machine_header

    machine_header("bench/soak.py " + " ".join(sys.argv[1:]))
    for backend, gens in (("local", args.local_generations), ("ray", args.ray_generations)):
        if gens <= 0:
            continue
        f = run_soak(backend, gens, args.population)
        print(f"\n## {backend}: {gens} generations, population {f['population']}, workers {f['workers']}, "
              f"{f['seconds']:.0f} s, warm-up at generation {f['warmup_generation']}")
        print(f"coordinator RSS: {f['rss_warm_mib']:.1f} MiB at warm-up -> {f['rss_end_mib']:.1f} MiB at the end "
              f"({100 * f['rss_growth']:+.2f} %)")
        if f["worker_rss_warm_mib"]:
            print("worker RSS (MiB): " + ", ".join(f"{a:.1f} -> {b:.1f}" for a, b in
                                                   zip(f["worker_rss_warm_mib"], f["worker_rss_end_mib"]))
                  + f" (max growth {100 * f['worker_rss_growth_max']:+.2f} %)")
        print(f"open fds (coordinator, workers): generation 1 {f['fds_first']}, warm-up {f['fds_warm']}, "
              f"end {f['fds_end']}")
        print(f"run dir: {f['run_dir_bytes_warm']} B at warm-up -> {f['run_dir_bytes_end']} B at the end; "
              f"checkpoints/: {f['ckpt_files_warm']} files {f['ckpt_bytes_warm']} B -> "
              f"{f['ckpt_files_end']} files {f['ckpt_bytes_end']} B; TensorBoard events {f['events_bytes_end']} B")
        print("RESULT " + json.dumps(f), flush=True)
    print(f"\n# load average at end: {load_average()}")


if __name__ == "__main__":
    main()
