"""Useful env steps/s of a MuJoCo locomotion task, side by side in one run: bare ``mj_step`` (the ceiling), one
``gymnasium.make`` env, the Gymnasium engine (one SyncVectorEnv in this process) and ``task.engine: mujoco`` (bare
mj_step on every core), each with where the time goes (simulator, policy call, the rest: rewards / observations /
normalization / scheduling; and the share of each engine's slot steps that are useful: a slot also steps while it
resets or, at the end of a call, idles).

    .venv/bin/python bench/mujoco_throughput.py --env Hopper-v5 --slots 64 --jobs 256

"Useful" steps are steps of episodes in progress (idle slots at the tail of a chunk do not count). The policy is a
fixed random linear map with observation normalization on, as in a V2 ARS generation. Goal (issue 10): the mujoco
engine >= 80 % of cores x bare steps/s. The three are interleaved ``--repeats`` times and the best of each is kept.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time

import jax
import mujoco
import numpy as np
import psutil

import esrun  # noqa: F401  (XLA flags before JAX use)
from esrun.config.schema import PolicyConfig
from esrun.tasks.gym import GymTask
from esrun.tasks.mujoco_pool import EnvModel, MujocoTask, default_workers
from esrun.tasks.obs_norm import ObsStats


def bare_steps_per_second(env_id: str, seconds: float = 3.0) -> float:
    """One process: ctrl <- a random action, mj_step(nstep=frame_skip); a new episode when fallen or at the limit."""
    import mujoco
    from gymnasium.utils.seeding import np_random

    env = EnvModel(env_id, None)
    m = mujoco.MjModel.from_xml_path(env.xml_path)
    d = mujoco.MjData(m)
    rng = np_random(0)[0]
    ctrl = rng.uniform(-0.3, 0.3, (1000, env.nu))
    z_min = env.z_range[0] if env.kind.healthy else -np.inf
    z_at = 1 if env.kind.healthy == "planar" else 2  # Hopper / Walker2d: qpos[1] is the height; Ant / Humanoid: qpos[2]
    steps, t0, c0, ep = 0, time.perf_counter(), time.process_time(), env.max_steps
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            if ep >= env.max_steps:
                mujoco.mj_resetData(m, d)
                d.qpos[:], d.qvel[:] = env.reset_state(rng)
                mujoco.mj_forward(m, d)
                ep = 0
            d.ctrl[:] = ctrl[ep]
            mujoco.mj_step(m, d, nstep=env.frame_skip)
            steps, ep = steps + 1, ep + 1
            if d.qpos[z_at] < z_min:  # fallen: a new episode, as an env would
                ep = env.max_steps
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def gym_single_env_steps_per_second(env_id: str, seconds: float = 3.0) -> float:
    """One Gymnasium env (``gymnasium.make``), random actions, reset when done: the Python layer's cost over bare."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, (100,) + env.action_space.shape)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            steps += 1
            if term or trunc:
                env.reset()
    env.close()
    return steps / (time.perf_counter() - t0)


def timed(obj, name: str, acc: dict, key: str):
    """Wrap ``obj.name`` so that its time adds to ``acc[key]``; returns the call that puts the original back (each
    repeat wraps afresh, so a wrapper left in place would count its time twice)."""
    fn = getattr(obj, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[key] += time.perf_counter() - t

    setattr(obj, name, wrapper)
    return lambda: setattr(obj, name, fn)


def cpu_seconds(task) -> float:
    """CPU time of this process and of the engine's worker processes (user + system)."""
    t = time.process_time()
    pool = getattr(task, "_pool_", None)
    for p in getattr(pool, "_procs", []):
        c = psutil.Process(p.pid).cpu_times()
        t += c.user + c.system
    return t


def engine_run(task, params, jobs: int, width: int, stats: ObsStats) -> tuple[float, float, float, dict]:
    """(useful steps/s, useful steps per CPU-second, useful share of the slot steps, wall share of each part)"""
    acc = {"simulator": 0.0, "policy": 0.0}
    task.run_jobs(params, np.arange(jobs) % len(params), 1, stats, width, True)  # warm-up: compile, spawn
    in_workers = isinstance(task, MujocoTask) and task.workers > 1  # the episodes run in the workers: no breakdown here
    undo = []
    if not in_workers:
        if isinstance(task, MujocoTask):  # the in-process runner (made by the warm-up) holds its own act
            undo += [timed(task._local, "act", acc, "policy"), timed(mujoco, "mj_step", acc, "simulator")]
        else:
            undo += [timed(task, "_act", acc, "policy"), timed(task._env(width), "step", acc, "simulator")]
    raw0 = task.raw_steps  # both engines count every slot's steps, also idle and resetting ones
    t0, c0 = time.perf_counter(), cpu_seconds(task)
    _, steps, _ = task.run_jobs(params, np.arange(jobs) % len(params), 2, stats, width, True)
    total, cpu = time.perf_counter() - t0, cpu_seconds(task) - c0
    for put_back in undo:
        put_back()
    useful = steps.sum() / (task.raw_steps - raw0)
    if in_workers:
        return steps.sum() / total, steps.sum() / cpu, useful, {}
    acc["rest"] = total - acc["simulator"] - acc["policy"]
    return steps.sum() / total, steps.sum() / cpu, useful, {k: v / total for k, v in acc.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--jobs", type=int, default=256)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    cores = os.cpu_count()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    pc = PolicyConfig(type="linear", init_scale=0.3, squash="clip")
    gym_task = GymTask(a.env, pc, obs_norm=True)
    fast = MujocoTask(a.env, pc, obs_norm=True, workers=a.workers)
    params = np.stack([fast.initial_params(jax.random.PRNGKey(i)) for i in range(16)])
    stats = ObsStats.from_batch(np.random.default_rng(0).standard_normal((100, fast.obs_dim)))
    best = {"bare": (0.0, 0.0), "gymnasium": (0.0, 0.0, 0.0, {}), "mujoco": (0.0, 0.0, 0.0, {})}
    single = 0.0
    for _ in range(a.repeats):
        best["bare"] = max(best["bare"], bare_steps_per_second(a.env))
        single = max(single, gym_single_env_steps_per_second(a.env))
        for name, task in (("gymnasium", gym_task), ("mujoco", fast)):
            r = engine_run(task, params, a.jobs, a.slots, stats)
            best[name] = max(best[name], r, key=lambda x: x[0])
    fast.close()
    gym_task.close()
    bare, bare_cpu = best["bare"]
    ceiling = cores * bare
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{a.env}: {cores} cores, {a.slots} slots, {a.jobs} episodes, mujoco engine workers = {a.workers}")
    print(f"bare mj_step, 1 process        {bare:10,.0f} steps/s   (x {cores} cores = {ceiling:,.0f}); "
          f"{bare_cpu:,.0f} steps per CPU-second")
    print(f"gymnasium.make, 1 env          {single:10,.0f} steps/s   ({single / bare:.1%} of bare: the Python layer)")
    for name in ("gymnasium", "mujoco"):
        rate, per_cpu, useful, frac = best[name]
        parts = ", ".join(f"{k} {v:.0%}" for k, v in frac.items())
        print(f"engine {name:10s} (useful)     {rate:10,.0f} steps/s   {rate / ceiling:6.1%} of cores x bare; "
              f"{per_cpu:,.0f} steps per CPU-second = {per_cpu / bare_cpu:.1%} of bare; {useful:.0%} of slot steps "
              f"useful   [wall: {parts}]")


if __name__ == "__main__":
    main()
