"""Evaluation throughput: esrun's Gymnasium population evaluator beside the minimal loop and the bare environment.

    .venv/bin/python bench/eval_throughput.py [--seconds 1.0] [--rounds 5] [--skip-hopper] [--skip-jax]

For each environment (CartPole-v1: native vector env, MLP 4-16-2; Hopper-v5: SyncVectorEnv, MLP 11-32-32-3) and
each (episodes_per_member E, vector_width W) setting, a generation-0 population (x0 + 0.1 eps, chunks of C = 64
members) is evaluated with ``GymTask.evaluate`` chunk after chunk, and three variants are timed, interleaved
round by round on the same chunks (the fastest round of each is reported):

    esrun     GymTask.evaluate(params [C, P], key)       : slot queue, masks, returns, step counts
    minimal   the same vector env and the same jitted policy (task._act), reset with the same seed, stepped
              exactly as many vector steps as esrun took for that chunk, and nothing else (the limit)
    env       the same vector env stepped as many times with a constant action (no policy)

Figures: raw slot steps / s (``task.raw_steps``: every slot of every vector step), useful steps / s (the sum of
``ChunkResult.steps``), useful / raw, esrun / minimal (same raw steps, so the ratio of times), and the policy's
share of a minimal-loop step (the jitted policy call alone, timed on its own, over the minimal step time).
The JAX-native CartPole (esrun.tasks.jax_env, another engineer's module) is timed when it is importable.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# the XLA threading `esrun train` runs with (esrun/cli.py): one policy call costs ~3x less with it on this machine
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
sys.path.insert(0, os.path.dirname(__file__))
import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from esrun.config.schema import PolicyConfig  # noqa: E402
from esrun.tasks.gym import GymTask, seed_from_key  # noqa: E402

CHUNK = 64
SIGMA = 0.1


def population(task, key, chunks: int) -> list:
    """``chunks`` arrays [C, P]: x0 + SIGMA * eps (a generation-0 population)."""
    x0 = jnp.asarray(task.initial_params(jax.random.fold_in(key, 0)))
    out = []
    for c in range(chunks):
        eps = jax.random.normal(jax.random.fold_in(key, c + 1), (CHUNK, task.num_params))
        out.append(np.asarray(x0[None] + SIGMA * eps, np.float32))
    return out


def run_esrun(task, chunks, seeds):
    """Evaluate every chunk; returns (seconds, useful steps, raw steps, vector steps per chunk)."""
    useful, raw0, vsteps = 0, task.raw_steps, []
    t0 = time.perf_counter()
    for params, seed in zip(chunks, seeds):
        before = task.raw_steps
        res = task.evaluate(params, jax.random.PRNGKey(seed))
        useful += int(res.steps.sum())
        vsteps.append(task.raw_steps - before)
    return time.perf_counter() - t0, useful, task.raw_steps - raw0, vsteps


def _width(task, vector_width):
    return min(vector_width or CHUNK * task.episodes, CHUNK * task.episodes)


def run_minimal(task, chunks, seeds, vsteps, width):
    """The limit: same env, same jitted policy, same number of vector steps, nothing else."""
    env = task._env(width)
    mean = jnp.zeros(task.obs_dim, jnp.float32)
    std = jnp.ones(task.obs_dim, jnp.float32)
    members = np.repeat(np.arange(CHUNK), task.episodes)[:width]
    discrete = task.spec.kind == "discrete"
    t0 = time.perf_counter()
    for params, seed, raw in zip(chunks, seeds, vsteps):
        p = jnp.asarray(params)
        obs, _ = env.reset(seed=seed_from_key(jax.random.PRNGKey(seed)))
        for _ in range(raw // width):
            action = np.asarray(task._act(p, members, obs, mean, std))
            obs, *_ = env.step(action.astype(np.int64) if discrete else action)
    return time.perf_counter() - t0


def run_env(task, seeds, vsteps, width):
    env = task._env(width)
    action = np.zeros(width, np.int64) if task.spec.kind == "discrete" else np.zeros((width, task.spec.dim), np.float32)
    t0 = time.perf_counter()
    for seed, raw in zip(seeds, vsteps):
        env.reset(seed=seed)
        for _ in range(raw // width):
            env.step(action)
    return time.perf_counter() - t0


def policy_call_seconds(task, params, width, calls=300):
    """Seconds of one jitted policy call on ``width`` slots, result brought back to NumPy (as the loops do)."""
    env = task._env(width)
    obs, _ = env.reset(seed=0)
    p = jnp.asarray(params)
    members = np.repeat(np.arange(CHUNK), task.episodes)[:width]
    mean, std = jnp.zeros(task.obs_dim, jnp.float32), jnp.ones(task.obs_dim, jnp.float32)
    np.asarray(task._act(p, members, obs, mean, std))
    t0 = time.perf_counter()
    for _ in range(calls):
        np.asarray(task._act(p, members, obs, mean, std))
    return (time.perf_counter() - t0) / calls


def bench_setting(env_id, hidden, episodes, vector_width, seconds, rounds, max_episode_steps=None):
    task = GymTask(env_id, PolicyConfig(hidden=hidden), episodes_per_member=episodes,
                   max_episode_steps=max_episode_steps, vector_width=vector_width)
    width = _width(task, vector_width)
    key = jax.random.PRNGKey(42)
    # warm up (compiles the policy for this width) and size the chunk set to about `seconds` of esrun time
    warm = population(task, key, 1)
    run_esrun(task, warm, [0])
    dt, *_ = run_esrun(task, warm, [1])
    n_chunks = int(max(2, min(64, seconds / max(dt, 1e-3))))
    chunks = population(task, key, n_chunks)
    seeds = list(range(100, 100 + n_chunks))
    # per chunk, the three variants back to back, `rounds` times; the fastest round of each chunk counts
    # (the machine is shared: interleaving at chunk granularity keeps load drift out of the ratios)
    best = {v: np.full(n_chunks, np.inf) for v in ("esrun", "minimal", "env")}
    useful = raw = 0
    for r in range(rounds):
        for i in range(n_chunks):
            t_e, u, rw, vs = run_esrun(task, chunks[i:i + 1], seeds[i:i + 1])
            if r == 0:
                useful, raw = useful + u, raw + rw
            best["esrun"][i] = min(best["esrun"][i], t_e)
            best["minimal"][i] = min(best["minimal"][i], run_minimal(task, chunks[i:i + 1], seeds[i:i + 1], vs, width))
            best["env"][i] = min(best["env"][i], run_env(task, seeds[i:i + 1], vs, width))
    best = {k: float(v.sum()) for k, v in best.items()}
    t_pol = min(policy_call_seconds(task, chunks[0], width, calls=50) for _ in range(5))
    vector_steps = raw / width
    task.close()
    return {
        "env_id": env_id, "E": episodes, "W": width, "chunks": n_chunks, "members": n_chunks * CHUNK,
        "useful": useful, "raw": raw, "useful_per_raw": useful / raw,
        "esrun_raw_sps": raw / best["esrun"], "esrun_useful_sps": useful / best["esrun"],
        "minimal_sps": raw / best["minimal"], "env_sps": raw / best["env"],
        "esrun_vs_minimal": best["minimal"] / best["esrun"],
        "esrun_useful_vs_minimal": (useful / best["esrun"]) / (raw / best["minimal"]),
        "policy_us": t_pol * 1e6, "minimal_step_us": best["minimal"] / vector_steps * 1e6,
        "policy_share": t_pol / (best["minimal"] / vector_steps),
        "esrun_step_us": best["esrun"] / vector_steps * 1e6,
    }


COLUMNS = [("env_id", "env", ""), ("E", "episodes/member", ""), ("W", "vector width", ""),
           ("members", "members", ""), ("useful_per_raw", "useful/raw", ".2f"),
           ("esrun_useful_sps", "esrun useful steps/s", ",.0f"), ("esrun_raw_sps", "esrun raw steps/s", ",.0f"),
           ("minimal_sps", "minimal loop steps/s", ",.0f"), ("env_sps", "env alone steps/s", ",.0f"),
           ("esrun_vs_minimal", "esrun/minimal (raw)", ".2f"),
           ("esrun_useful_vs_minimal", "esrun useful/minimal", ".2f"),
           ("esrun_step_us", "esrun us/vector step", ".0f"), ("minimal_step_us", "minimal us/vector step", ".0f"),
           ("policy_us", "policy us/call", ".0f"), ("policy_share", "policy share of minimal step", ".2f")]


def jax_native(seconds):
    """Steps/s of the JAX-native CartPole task (esrun.tasks.jax_env) on chunks of 64, or None if absent."""
    try:
        from esrun.config.schema import JaxEnvTaskConfig
        from esrun.tasks.jax_env import make_jax_env_task
    except ImportError as exc:
        print(f"# JAX-native task not importable ({exc}); skipped")
        return None
    task = make_jax_env_task(JaxEnvTaskConfig(env_id="esrun/CartPole-v1"), PolicyConfig(hidden=[16]))
    key = jax.random.PRNGKey(42)
    chunks = population(task, key, 4)
    task.evaluate(chunks[0], jax.random.PRNGKey(0))  # compile
    useful, n, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        res = task.evaluate(chunks[n % len(chunks)], jax.random.PRNGKey(n))
        useful += int(res.steps.sum())
        n += 1
    dt = time.perf_counter() - t0
    return {"chunks": n, "useful_sps": useful / dt, "loop": task.loop, "horizon": task.horizon}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0, help="esrun seconds per round and setting (approx.)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip-hopper", action="store_true")
    p.add_argument("--skip-jax", action="store_true")
    p.add_argument("--only", default="", help="comma-separated ENV:E:W settings to run (W 0 = all jobs), e.g. "
                   "CartPole-v1:1:16,CartPole-v1:4:32")
    a = p.parse_args()
    C.machine_header("bench/eval_throughput.py " + " ".join(sys.argv[1:]))
    print(f"# XLA_FLAGS={os.environ.get('XLA_FLAGS')!r} (as esrun train sets them)")
    print(f"# chunks of {CHUNK} members, generation-0 population (x0 + {SIGMA} eps); "
          f"best of {a.rounds} interleaved rounds", flush=True)
    settings = [("CartPole-v1", [16], e, w) for e, w in ((1, None), (1, 32), (1, 16), (4, None), (4, 64), (4, 32))]
    if not a.skip_hopper:
        settings += [("Hopper-v5", [32, 32], e, w) for e, w in ((1, None), (1, 32))]
    if a.only:
        hidden = {"CartPole-v1": [16], "Hopper-v5": [32, 32]}
        settings = []
        for item in a.only.split(","):
            env_id, e, w = item.split(":")
            settings.append((env_id, hidden.get(env_id, [32, 32]), int(e), int(w) or None))
    rows = []
    for env_id, hidden, e, w in settings:
        r = bench_setting(env_id, hidden, e, w, a.seconds, a.rounds)
        print("#", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
        rows.append(r)
    print()
    print(C.table(rows, COLUMNS))
    if not a.skip_jax:
        j = jax_native(a.seconds)
        if j is not None:
            print(f"\nJAX-native esrun/CartPole-v1 (JaxEnvTask, loop={j['loop']}, chunks of {CHUNK}, {j['chunks']} "
                  f"chunks, horizon {j['horizon']}): {j['useful_sps']:,.0f} useful steps/s")
    print(f"# load average at end: {C.load_average()}")


if __name__ == "__main__":
    main()
