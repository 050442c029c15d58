"""Environment steps per second: JAX-native CartPole rollout vs Gymnasium's native vector CartPole.

    .venv/bin/python bench/jax_rollout.py [--populations 256 1024] [--reps 3]

Policy: MLP 4-16-2 (tanh), random initial parameters per member (fan-in scaled normal), 500-step horizon.

* JAX-native (esrun.tasks.jax_env.JaxEnvTask): one jitted call evaluates the whole population, one episode per
  member. Compile time (first call minus a warm call) is printed apart. "computed" steps/s counts every step the
  program executes (population x 500 for the scan; for the while_loop, population x iterations until every
  episode is done); "useful" counts only steps before each episode's end (what ChunkResult.steps reports).
* Gymnasium: ``gym.make_vec("CartPole-v1", num_envs=population, vectorization_mode="vector_entry_point")``
  (CartPoleVectorEnv, numpy), stepped 500 times with autoreset, actions from the same jitted vmapped policy
  (one call per step, device -> host transfer included). Every env step counts (N x 500).
* scan vs while_loop: measured twice, on the random population (some members balance for all 500 steps, so
  the while_loop cannot stop early) and on an all-zero population (argmax of zero logits pushes left every step:
  every episode ends within ~10 steps, the while_loop's best case).
"""
from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from envs import JAX_ENVS
from esrun.config.schema import PolicyConfig
from esrun.policies import build_policy
from esrun.tasks.jax_env import JaxEnvTask, policy_action_spec

ENV_ID, HORIZON = "esrun/CartPole-v1", 500


def _policy():
    env = JAX_ENVS[ENV_ID]
    return build_policy(PolicyConfig(type="mlp", hidden=[16], activation="tanh"), env.observation_dim,
                        policy_action_spec(env.action_spec))


def _population(policy, n):
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    return np.asarray(jax.vmap(policy.init)(keys), np.float32)


def _best_of(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bench_jax(policy, params, loop, reps):
    task = JaxEnvTask(ENV_ID, policy, episodes_per_member=1, max_episode_steps=HORIZON, loop=loop)
    run = lambda: jax.block_until_ready(task._run(jnp.asarray(params), jax.random.PRNGKey(1), 1))  # noqa: E731
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    seconds, (returns, steps) = _best_of(run, reps)
    useful = int(np.asarray(steps).sum())
    iterations = HORIZON if loop == "scan" else int(np.asarray(steps).max())
    computed = params.shape[0] * iterations
    return dict(compile_s=first - seconds, run_s=seconds, computed_sps=computed / seconds,
                useful_sps=useful / seconds, mean_return=float(np.asarray(returns).mean()), iterations=iterations)


def bench_gym(policy, params, reps):
    n = params.shape[0]
    act = jax.jit(jax.vmap(policy.apply))
    dev_params = jnp.asarray(params)
    env = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    jax.block_until_ready(act(dev_params, jnp.asarray(obs)))  # compile

    def run():
        o, _ = env.reset(seed=0)
        for _ in range(HORIZON):
            a = np.asarray(act(dev_params, o))
            o, _, _, _, _ = env.step(a.astype(np.int64))
        return None

    seconds, _ = _best_of(run, reps)
    env.close()
    return dict(run_s=seconds, sps=n * HORIZON / seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--populations", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind}); "
          f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}; gymnasium {gym.__version__}")
    policy = _policy()
    print(f"policy MLP 4-16-2 tanh, {policy.num_params} params; horizon {HORIZON}; best of {args.reps} runs")
    for n in args.populations:
        params = _population(policy, n)
        for loop in ("scan", "while"):
            r = bench_jax(policy, params, loop, args.reps)
            print(f"jax-native {loop:5s} pop={n:5d}: compile {r['compile_s']:.2f} s, run {r['run_s'] * 1e3:.1f} ms "
                  f"({r['iterations']} iterations), computed {r['computed_sps']:,.0f} steps/s, "
                  f"useful {r['useful_sps']:,.0f} steps/s, mean return {r['mean_return']:.1f}")
        zeros = np.zeros_like(params)
        for loop in ("scan", "while"):
            r = bench_jax(policy, zeros, loop, args.reps)
            print(f"  all-fail pop  {loop:5s} pop={n:5d}: run {r['run_s'] * 1e3:.1f} ms "
                  f"({r['iterations']} iterations), "
                  f"useful {r['useful_sps']:,.0f} steps/s")
        g = bench_gym(policy, params, args.reps)
        print(f"gymnasium vector  pop={n:5d}: run {g['run_s'] * 1e3:.1f} ms, {g['sps']:,.0f} steps/s")


if __name__ == "__main__":
    main()
