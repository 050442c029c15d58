"""Time to threshold on a MuJoCo task, side by side: esrun (CLI, start-up included) against a plain numpy ARS V2-t
loop and evosax's ARS / Open_ES in hand-written loops over a Gymnasium vector env — interleaved per seed, so every
method sees the same machine load.

    .venv/bin/python bench/locomotion_baselines.py --env Hopper-v5 --threshold 3120 --seeds 0 1 2 --cap 300

Every method evaluates its current solution the same way: every ``--eval-every`` iterations, the mean return of 10
episodes; it stops at the first evaluation >= threshold (time and env steps then recorded) or at ``--cap`` seconds.
Env steps count training episodes only (the evaluation episodes are not counted, for every method). CPU seconds
(all threads and worker processes) are printed beside wall seconds: on a shared machine they are the fairer figure.
The baselines use the same linear policy (M = 0, no bias) and state normalization (V2, statistics frozen during an
iteration and updated from all its states after it); ``--actions raw`` passes M x unclipped to the env as the ARS
paper does (MuJoCo clamps ctrl, Gymnasium v5's control cost sees the raw action), ``--actions clip`` clips it to
the bounds first; ``--obs-clip C`` clips the normalized state to [-C, C] (esrun's default 5; ARS: none). Match
the esrun config with ``--override`` (e.g. policy.squash=clip task.obs_clip=5).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

REPO = Path(__file__).resolve().parents[1]


class RunningStats:
    """Mean / std of every state seen (ARS V2), merged batch by batch."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def push(self, x: np.ndarray) -> None:
        x = x.reshape(-1, self.mean.size)
        n, mean = len(x), x.mean(0)
        delta, tot = mean - self.mean, self.n + len(x)
        self.m2 += ((x - mean) ** 2).sum(0) + delta**2 * self.n * n / tot
        self.mean += delta * n / tot
        self.n = tot

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n) + 1e-8 if self.n > 1 else np.ones_like(self.mean)


ACTIONS = "clip"  # "clip": a = clip(M x, low, high); "raw": a = M x (set from --actions)
OBS_CLIP = None  # clip the normalized state to [-OBS_CLIP, OBS_CLIP] (set from --obs-clip)
PROGRESS = False  # numpy_ars prints every evaluation (set from --progress)


def rollout(env, M, stats: RunningStats, seed=None, collect=None) -> tuple[float, int]:
    """One episode of the linear policy a = M x, x = (s - mu) / sigma (clipped per ACTIONS / OBS_CLIP)."""
    obs, _ = env.reset(seed=seed)
    total, steps, lo, hi = 0.0, 0, env.action_space.low, env.action_space.high
    mu, sd = stats.mean.copy(), stats.std.copy()
    while True:
        if collect is not None:
            collect.append(obs)
        x = (obs - mu) / sd
        if OBS_CLIP is not None:
            x = np.clip(x, -OBS_CLIP, OBS_CLIP)
        a = M @ x
        obs, r, term, trunc, _ = env.step(np.clip(a, lo, hi) if ACTIONS == "clip" else a.astype(np.float32))
        total, steps = total + r, steps + 1
        if term or trunc:
            return total, steps


def evaluate(env, M, stats, episodes=10) -> float:
    return float(np.mean([rollout(env, M, stats)[0] for _ in range(episodes)]))


def numpy_ars(env_id, seed, threshold, cap, directions, top, alpha, nu, eval_every, shift, max_steps=None, **_):
    """ARS V2-t (Mania et al. 2018, Algorithm 2) in numpy: one env, rollouts one after the other."""
    env, ev = gym.make(env_id), gym.make(env_id)
    env.reset(seed=seed), ev.reset(seed=seed + 10_000)
    rng = np.random.default_rng(seed)
    M = np.zeros((env.action_space.shape[0], env.observation_space.shape[0]))
    stats, steps, t0, c0, it = RunningStats(M.shape[1]), 0, time.perf_counter(), time.process_time(), 0
    best = -np.inf
    while time.perf_counter() - t0 < cap and (max_steps is None or steps < max_steps):
        eps = rng.standard_normal((directions, *M.shape))
        r = np.zeros((directions, 2))
        seen = []
        for k in range(directions):
            for j, sign in enumerate((1.0, -1.0)):
                total, n = rollout(env, M + sign * nu * eps[k], stats, collect=seen)
                r[k, j], steps = total - shift * n, steps + n  # ARS trains without the survival bonus
        stats.push(np.asarray(seen))
        keep = np.argsort(-r.max(1), kind="stable")[:top]
        sigma_r = r[keep].std()
        M = M + alpha / (top * sigma_r) * np.einsum("k,kij->ij", r[keep, 0] - r[keep, 1], eps[keep])
        it += 1
        if it % eval_every == 0:
            e = evaluate(ev, M, stats)
            best = max(best, e)
            if PROGRESS:
                print(json.dumps({"iteration": it, "env_steps": steps, "eval": round(e, 1),
                                  "cpu_seconds": round(time.process_time() - c0, 1)}), flush=True)
            if best >= threshold:
                return dict(reached=True, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                            env_steps=steps, iterations=it, best_eval=best)
    return dict(reached=False, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                env_steps=steps, iterations=it, best_eval=best)


def evosax_loop(env_id, seed, threshold, cap, directions, alpha, nu, eval_every, shift, algo="ARS", **_):
    """evosax's ARS (top half of the directions) or Open_ES over one Gymnasium vector env of 2N slots."""
    import jax
    import optax
    from evosax.algorithms import ARS, Open_ES

    env, ev = gym.make(env_id), gym.make(env_id)
    ev.reset(seed=seed + 10_000)
    pop = 2 * directions
    venv = gym.make_vec(env_id, num_envs=pop, vectorization_mode="sync")
    act_dim, obs_dim = env.action_space.shape[0], env.observation_space.shape[0]
    lo, hi = env.action_space.low, env.action_space.high
    x0 = np.zeros(act_dim * obs_dim, np.float32)
    if algo == "ARS":
        es = ARS(pop, x0, optimizer=optax.sgd(alpha), std_schedule=optax.constant_schedule(nu))
    else:
        es = Open_ES(pop, x0, optimizer=optax.adam(alpha), std_schedule=optax.constant_schedule(nu))
    key = jax.random.PRNGKey(seed)
    params = es.default_params
    state = es.init(key, x0, params)
    ask, tell = jax.jit(es.ask), jax.jit(es.tell)
    stats, steps, t0, c0, it, vseed = RunningStats(obs_dim), 0, time.perf_counter(), time.process_time(), 0, seed
    while time.perf_counter() - t0 < cap:
        key, k_ask, k_tell = jax.random.split(key, 3)
        pop_x, state = ask(k_ask, state, params)
        Ms = np.asarray(pop_x, np.float64).reshape(pop, act_dim, obs_dim)
        obs, _ = venv.reset(seed=vseed)
        vseed += pop
        ret, alive, seen = np.zeros(pop), np.ones(pop, bool), []
        mu, sd = stats.mean.copy(), stats.std.copy()
        while alive.any():
            seen.append(obs[alive])
            x = (obs - mu) / sd if OBS_CLIP is None else np.clip((obs - mu) / sd, -OBS_CLIP, OBS_CLIP)
            a = np.einsum("pij,pj->pi", Ms, x)
            a = np.clip(a, lo, hi) if ACTIONS == "clip" else a.astype(np.float32)
            obs, r, term, trunc, _ = venv.step(a)
            ret += (r - shift) * alive
            steps += int(alive.sum())
            alive &= ~(term | trunc)
        stats.push(np.concatenate(seen))
        state, _ = tell(k_tell, pop_x, -ret.astype(np.float32), state, params)  # evosax minimizes
        it += 1
        M = np.asarray(state.mean, np.float64).reshape(act_dim, obs_dim)
        if it % eval_every == 0 and evaluate(ev, M, stats) >= threshold:
            return dict(reached=True, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                        env_steps=steps, iterations=it)
    return dict(reached=False, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                env_steps=steps, iterations=it)


def _children_cpu() -> float:
    """CPU seconds of every finished child process (esrun and, reaped by it, its engine workers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def esrun_cli(config, seed, threshold, cap, overrides=(), max_steps=None, **_):
    """``esrun train CONFIG`` as a user runs it; seconds = the whole process (imports and start-up included)."""
    name = f"bench_{Path(config).stem}_{seed}_{os.getpid()}"
    cmd = [str(Path(sys.executable).parent / "esrun"), "train", config, f"seed={seed}", f"name={name}",
           *([f"budget.env_steps={max_steps}"] if max_steps else []),
           "logging.dir=/tmp/esrun_bench_runs", "logging.progress=false", "logging.tensorboard=false",
           f"budget.wall_seconds={cap}", f"budget.target_return={threshold}", *overrides]
    t0, c0 = time.perf_counter(), _children_cpu()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - c0
    s = json.loads((Path("/tmp/esrun_bench_runs") / name / "summary.json").read_text())
    return dict(reached=s["stop_reason"].startswith("target_return"), seconds=seconds, cpu_seconds=cpu,
                env_steps=s["env_steps"],
                iterations=s["generations"], final_eval=s["final_eval_return"])


METHODS = {"numpy_ars": numpy_ars, "evosax_ars": evosax_loop,
           "evosax_open_es": lambda **kw: evosax_loop(algo="Open_ES", **kw), "esrun": esrun_cli}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--config", default="configs/hopper.yaml")
    p.add_argument("--threshold", type=float, default=3120)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cap", type=float, default=300, help="seconds per method and seed")
    p.add_argument("--directions", type=int, default=8)
    p.add_argument("--top", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--nu", type=float, default=0.025)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--shift", type=float, default=1.0, help="survival bonus removed in training (as the config)")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--max-steps", type=int, default=None, help="also stop after this many training env steps "
                   "(numpy_ars, esrun)")
    p.add_argument("--override", nargs="*", default=[], help="extra esrun overrides")
    p.add_argument("--actions", choices=["raw", "clip"], default="raw", help="baselines: M x to the env as is "
                   "(ARS) or clipped to the action bounds")
    p.add_argument("--progress", action="store_true", help="numpy_ars: print every evaluation")
    p.add_argument("--obs-clip", type=float, default=None, help="baselines: clip the normalized state (ARS: none)")
    a = p.parse_args()
    global ACTIONS, OBS_CLIP, PROGRESS
    ACTIONS, OBS_CLIP, PROGRESS = a.actions, a.obs_clip, a.progress
    print(f"baselines: actions {ACTIONS}, obs clip {OBS_CLIP}; esrun: {a.config} {' '.join(a.override)}", flush=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    rows = []
    for seed in a.seeds:
        for m in a.methods:
            r = METHODS[m](env_id=a.env, config=a.config, seed=seed, threshold=a.threshold, cap=a.cap,
                           directions=a.directions, top=a.top, alpha=a.alpha, nu=a.nu, eval_every=a.eval_every,
                           shift=a.shift, overrides=a.override, max_steps=a.max_steps)
            r.update(method=m, seed=seed)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"\n{a.env} >= {a.threshold:g}, cap {a.cap:g} s; median over seeds {a.seeds}")
    print(f"{'method':16s} {'reached':>8s} {'median s':>9s} {'median CPU s':>13s} {'median steps':>13s}")
    for m in a.methods:
        rs = [r for r in rows if r["method"] == m]
        print(f"{m:16s} {sum(r['reached'] for r in rs):>5d}/{len(rs):<2d} {np.median([r['seconds'] for r in rs]):9.1f}"
              f" {np.median([r['cpu_seconds'] for r in rs]):13.1f} {np.median([r['env_steps'] for r in rs]):13,.0f}")


if __name__ == "__main__":
    main()
