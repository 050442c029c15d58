"""Brax on this machine's JAX devices beside MuJoCo through Gymnasium, for the same robot (issue 10).

Prints env steps/s (random actions in [-1, 1]) for
  * Brax ``<robot>`` on ``--pipeline``: ``B`` envs vmapped, ``T`` steps in one jitted ``lax.scan``; the first call
    (trace + XLA compile + run) is reported apart from the steady rate (best of ``--repeats`` later calls);
  * Gymnasium ``<Robot>-v5`` (MuJoCo): one env stepped in Python, and a SyncVectorEnv / AsyncVectorEnv of
    ``--vector`` envs (Async: one process per env).
A Brax env step and a Gymnasium step are both one control step of the robot (Brax Hopper: 4 substeps of dt 0.002;
Gymnasium Hopper-v5: frame_skip 4 of 0.002 s), but the simulators differ (Brax pipelines are not MuJoCo's solver).

    .venv/bin/python bench/brax_throughput.py --robot hopper --pipeline generalized --batch 1,256

``steps_per_cpu_s`` divides by this process's CPU seconds (all its threads): on a shared, overloaded machine it is
the figure that does not depend on how much of a core the process was given.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
import warnings

import esrun  # noqa: F401  (esrun's XLA defaults, as in a run: before jax is imported)

# isort: split
import jax
import jax.numpy as jnp
import numpy as np

GYM_IDS = {"hopper": "Hopper-v5", "ant": "Ant-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5",
           "humanoid": "Humanoid-v5", "swimmer": "Swimmer-v5"}


def brax_rate(robot: str, pipeline: str, batch: int, steps: int, repeats: int) -> dict:
    from esrun.tasks.brax_env import brax_env

    env = brax_env(robot, pipeline)

    @jax.jit
    def rollout(key):
        keys = jax.random.split(key, batch + 1)
        state = jax.vmap(env.reset)(keys[1:])

        def body(c, k):
            s, ret = c
            a = jax.random.uniform(k, (batch, env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return (s, ret + s.reward), None

        (state, ret), _ = jax.lax.scan(body, (state, jnp.zeros(batch)), jax.random.split(keys[0], steps))
        return ret

    t0, c0 = time.perf_counter(), time.process_time()
    rollout(jax.random.key(0)).block_until_ready()
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    best = best_cpu = float("inf")
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rollout(jax.random.key(r + 1)).block_until_ready()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return {"kind": f"brax {robot} {pipeline}", "envs": batch, "first_call_s": round(first, 2),
            "first_call_cpu_s": round(first_cpu, 2), "steps_per_s": round(batch * steps / best),
            "steps_per_cpu_s": round(batch * steps / best_cpu)}


def gym_rate(robot: str, vector: int, steps: int, mode: str) -> dict:
    import gymnasium as gym

    env_id = GYM_IDS[robot]
    if mode == "single":
        env = gym.make(env_id)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            if term or trunc:
                env.reset()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        env.close()
        return {"kind": f"gymnasium {env_id} single", "envs": 1, "steps_per_s": round(steps / dt),
                "steps_per_cpu_s": round(steps / cpu)}
    fns = [lambda: gym.make(env_id) for _ in range(vector)]
    # forkserver: forking this process (JAX's threads are running) can deadlock
    env = (gym.vector.SyncVectorEnv(fns) if mode == "sync" else gym.vector.AsyncVectorEnv(fns, context="forkserver"))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = max(1, steps // vector)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        env.step(rng.uniform(-1, 1, env.action_space.shape))  # autoreset inside
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    row = {"kind": f"gymnasium {env_id} {mode} vector", "envs": vector, "steps_per_s": round(n * vector / dt)}
    if mode == "sync":  # (async: the stepping CPU is in the worker processes, not counted here)
        row["steps_per_cpu_s"] = round(n * vector / cpu)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robot", default="hopper", choices=sorted(GYM_IDS))
    ap.add_argument("--pipeline", default="generalized", choices=["generalized", "positional", "spring", "mjx"])
    ap.add_argument("--batch", default="1,256", help="comma-separated Brax batch sizes (one compile each)")
    ap.add_argument("--steps", type=int, default=200, help="Brax steps per call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gym-steps", type=int, default=5000)
    ap.add_argument("--vector", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-gym", action="store_true")
    args = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import brax.envs  # noqa: F401  (its import prints about the optional NVIDIA Warp)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  devices={jax.devices()}  "
          f"load average={os.getloadavg()}", flush=True)
    rows = []
    if not args.skip_gym:
        for mode in ("single", "sync", "async"):
            rows.append(gym_rate(args.robot, args.vector, args.gym_steps, mode))
            print(json.dumps(rows[-1]), flush=True)
    for b in (int(x) for x in args.batch.split(",")):
        rows.append(brax_rate(args.robot, args.pipeline, b, args.steps, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    print(f"# load average at the end={os.getloadavg()}")


if __name__ == "__main__":
    main()
