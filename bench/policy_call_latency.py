"""Latency of the mujoco engine's per-env-step policy call with JAX's CPU async dispatch on and off.

    .venv/bin/python bench/policy_call_latency.py [--slots 8] [--calls 3000] [--rounds 3]

Each worker of ``task.engine: mujoco`` calls ``make_act``'s jitted, vmapped policy once per env step over its
slots (esrun/tasks/mujoco_episodes.py); the worker process turns ``jax_cpu_enable_async_dispatch`` off
(esrun/tasks/mujoco_worker.py). This prints the wall time per call (Hopper-v5's linear ARS policy, 11 -> 3,
normalization in numpy, the action copied back to numpy, as in the engine) in two fresh processes, one per
setting, alternated ``--rounds`` times; the best of each is kept.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import esrun  # noqa: F401  (XLA flags before JAX use)
import jax
jax.config.update("jax_cpu_enable_async_dispatch", sys.argv[1] == "on")
import jax.numpy as jnp
from esrun.config.schema import PolicyConfig
from esrun.policies import ActionSpec, build_policy
from esrun.tasks.mujoco_env import EnvModel
from esrun.tasks.mujoco_episodes import make_act

slots, calls = int(sys.argv[2]), int(sys.argv[3])
env = EnvModel("Hopper-v5", None)
policy = build_policy(PolicyConfig(type="linear", init_scale=0.0, squash="none", bias=False), env.obs_dim,
                      ActionSpec.from_gym_space(env.action_space))
act = make_act(policy, True, None)
rng = np.random.default_rng(0)
params = jnp.asarray(rng.standard_normal((2 * slots, policy.num_params)).astype(np.float32))
members = np.arange(slots, dtype=np.int32)
obs = rng.standard_normal((slots, env.obs_dim))
mean, std = np.zeros(env.obs_dim, np.float32), np.ones(env.obs_dim, np.float32)
act(params, members, obs, mean, std)  # compile
t = time.perf_counter()
for _ in range(calls):
    act(params, members, obs, mean, std)
print(json.dumps((time.perf_counter() - t) / calls * 1e6))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    best = {"on": float("inf"), "off": float("inf")}
    for _ in range(a.rounds):
        for mode in best:
            out = subprocess.run([sys.executable, "-c", CHILD, mode, str(a.slots), str(a.calls)], check=True,
                                 capture_output=True, text=True).stdout
            best[mode] = min(best[mode], json.loads(out.strip().splitlines()[-1]))
    print(f"policy call, {a.slots} slots, best of {a.rounds}: async dispatch on {best['on']:.1f} us, "
          f"off (the engine's workers) {best['off']:.1f} us, ratio off / on {best['off'] / best['on']:.2f}")


if __name__ == "__main__":
    main()
