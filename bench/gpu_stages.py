"""Stages of bench/gpu_suite.sh that need Python: one chunk evaluation of an esrun task, timed.

    python bench/gpu_stages.py devices
    python bench/gpu_stages.py chunk CONFIG [override ...]   # compile (first call) and steady env steps/s

``chunk`` builds the task of CONFIG exactly as a run does (esrun.tasks.build_task), perturbs the initial
parameters of ``backend.chunk_size`` members (sigma = strategy.sigma) and calls ``task.evaluate`` three times:
the first call includes tracing and XLA compilation; the steady rate is the best of the next two. For a Brax task
the chunk is one XLA program sharded over all local devices; for a Gymnasium task the policy runs on JAX's
default device (the GPU when there is one) and the simulator on the CPU.
"""
from __future__ import annotations

import json
import sys
import time

import esrun  # noqa: F401  (esrun's XLA defaults)


def devices() -> None:
    import jax

    print(json.dumps({"jax": jax.__version__, "backend": jax.default_backend(),
                      "devices": [str(d) for d in jax.devices()], "local_devices": jax.local_device_count()}))


def chunk(config: str, *overrides: str) -> None:
    import jax
    import numpy as np

    from esrun.tasks import build_task

    cfg = esrun.load_config(config, *overrides)
    t0 = time.perf_counter()
    task = build_task(cfg)
    build_s = time.perf_counter() - t0
    c = cfg.chunk_size()
    x0 = task.initial_params(jax.random.PRNGKey(cfg.seed))
    rng = np.random.default_rng(0)
    params = (x0[None] + cfg.strategy.sigma * rng.standard_normal((c, x0.size))).astype(np.float32)
    times, steps, fitness = [], [], None
    for r in range(3):
        t0 = time.perf_counter()
        res = task.evaluate(params, jax.random.PRNGKey(r))
        times.append(time.perf_counter() - t0)
        steps.append(int(res.steps.sum()))
        fitness = res.fitness
    task.close()
    best = min(range(1, 3), key=lambda i: times[i])
    print(json.dumps({
        "task": cfg.task.type, "env": getattr(cfg.task, "env_name", None) or getattr(cfg.task, "env_id", None),
        "members": c, "device": jax.default_backend(), "n_devices": jax.local_device_count(),
        "build_s": round(build_s, 2), "first_call_s": round(times[0], 2), "steady_call_s": round(times[best], 3),
        "env_steps_per_call": steps[best], "steady_steps_per_s": round(steps[best] / times[best]),
        "mean_fitness": round(float(np.mean(fitness)), 2)}), flush=True)


if __name__ == "__main__":
    {"devices": devices, "chunk": chunk}[sys.argv[1]](*sys.argv[2:])
