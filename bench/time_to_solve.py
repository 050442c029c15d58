"""Time to solve CartPole-v1 (mean return >= 475 over 10 evaluation episodes of the mean policy).

    .venv/bin/python bench/time_to_solve.py [--seeds 0,1,2] [--member-seeds 0] [--max-generations 100]

Three runs, each in a fresh process, wall time measured from the parent (start-up and compilation included):

    esrun          ``esrun train configs/cartpole.yaml budget.target_return=475 seed=S`` (the shipped config:
                   OpenAI-ES, population 256, MLP 4-16-2 tanh, sigma 0.1, Adam 0.05, centered ranks, chunks of
                   64 on the native vector env, evaluation of the mean every 2 generations)
    evosax/member  evosax Open_ES (same population, sigma, Adam, centered ranks, antithetic) with a hand-written
                   loop that runs one member at a time on ``gym.make("CartPole-v1")`` and the jitted MLP per step
    evosax/vector  the same Open_ES, all 256 members as one native vector CartPole (``gym.make_vec``, 256 slots),
                   one jitted vmapped MLP call per vector step, finished slots masked until the longest ends

The baselines use esrun's MLP (esrun.policies) and the same initial parameters rule, evaluate the mean every
2 generations on 10 episodes, and stop at 475 or ``--max-generations``. ``env steps`` counts training episode
steps (evaluation episodes excluded, as in esrun's summary.json); ``raw`` adds the masked slot steps.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import _common as C  # noqa: E402

TARGET = 475.0
POP, SIGMA, LR, EVAL_EVERY, EVAL_EPISODES = 256, 0.1, 0.05, 2, 10


def run_esrun(seed: int, max_generations: int, logdir: str) -> dict:
    cmd = [str(C.ROOT / ".venv" / "bin" / "esrun"), "train", "configs/cartpole.yaml", f"budget.target_return={TARGET}",
           f"budget.generations={max_generations}", f"seed={seed}", f"name=tts_{seed}", f"logging.dir={logdir}",
           "logging.progress=false"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    s = json.load(open(os.path.join(logdir, f"tts_{seed}", "summary.json")))
    return {"runner": "esrun train", "seed": seed, "wall": wall, "train_wall": s["wall_seconds"],
            "generations": s["generations"], "env_steps": s["env_steps"], "raw_steps": None,
            "eval_return": s["final_eval_return"], "solved": (s["final_eval_return"] or 0) >= TARGET,
            "command": " ".join(cmd[1:])}


# ---- the hand-written evosax baselines (run with --child) ------------------------------------------------

def _setup(seed: int):
    import jax
    import jax.numpy as jnp
    import optax
    from evosax.algorithms import Open_ES

    from esrun.config.schema import PolicyConfig
    from esrun.policies import ActionSpec, build_policy

    policy = build_policy(PolicyConfig(hidden=[16], activation="tanh"), 4, ActionSpec(kind="discrete", n=2))
    x0 = policy.init(jax.random.fold_in(jax.random.PRNGKey(seed), 3))
    es = Open_ES(population_size=POP, solution=x0, optimizer=optax.adam(LR),
                 std_schedule=optax.constant_schedule(SIGMA))
    params = es.default_params
    state = es.init(jax.random.PRNGKey(seed), x0, params)
    return jax, jnp, policy, es, params, state


def _member_episode(env, act, theta, seed) -> tuple[float, int]:
    import numpy as np

    obs, _ = env.reset(seed=seed)
    ret, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(int(np.asarray(act(theta, obs))))
        ret += r
        steps += 1
        done = term or trunc
    return ret, steps


def child_member(seed: int, max_generations: int) -> dict:
    import gymnasium as gym
    import numpy as np

    jax, jnp, policy, es, params, state = _setup(seed)
    act = jax.jit(policy.apply)
    env = gym.make("CartPole-v1")
    key = jax.random.PRNGKey(seed + 1000)
    steps_total, ret, gen = 0, None, 0
    for gen in range(1, max_generations + 1):
        key, k_ask, k_tell = jax.random.split(key, 3)
        pop, state = es.ask(k_ask, state, params)
        fit = np.zeros(POP)
        for i in range(POP):
            fit[i], n = _member_episode(env, act, pop[i], seed * 100_000 + gen * POP + i)
            steps_total += n
        state, _ = es.tell(k_tell, pop, jnp.asarray(-fit, jnp.float32), state, params)  # evosax minimizes
        if gen % EVAL_EVERY == 0:
            mean = state.mean
            ret = float(np.mean([_member_episode(env, act, mean, 10**9 + gen * 100 + e)[0]
                                 for e in range(EVAL_EPISODES)]))
            if ret >= TARGET:
                break
    return {"generations": gen, "env_steps": steps_total, "raw_steps": steps_total, "eval_return": ret}


def _vector_returns(env, act, pop, seed):
    """Returns and useful steps of one episode per slot; slots that finished are masked until the longest ends."""
    import numpy as np

    n = pop.shape[0]
    obs, _ = env.reset(seed=seed)
    ret = np.zeros(n)
    steps = np.zeros(n, np.int64)
    alive = np.ones(n, bool)
    raw = 0
    while alive.any():
        obs, r, term, trunc, _ = env.step(np.asarray(act(pop, obs)).astype(np.int64))
        raw += n
        ret += r * alive
        steps += alive
        alive &= ~(term | trunc)
    return ret, steps, raw


def child_vector(seed: int, max_generations: int) -> dict:
    import gymnasium as gym

    jax, jnp, policy, es, params, state = _setup(seed)
    act = jax.jit(jax.vmap(policy.apply))
    env = gym.make_vec("CartPole-v1", num_envs=POP, vectorization_mode="vector_entry_point")
    eval_env = gym.make_vec("CartPole-v1", num_envs=EVAL_EPISODES, vectorization_mode="vector_entry_point")
    key = jax.random.PRNGKey(seed + 1000)
    steps_total, raw_total, ret, gen = 0, 0, None, 0
    for gen in range(1, max_generations + 1):
        key, k_ask, k_tell = jax.random.split(key, 3)
        pop, state = es.ask(k_ask, state, params)
        fit, steps, raw = _vector_returns(env, act, pop, seed * 100_000 + gen)
        steps_total += int(steps.sum())
        raw_total += raw
        state, _ = es.tell(k_tell, pop, jnp.asarray(-fit, jnp.float32), state, params)
        if gen % EVAL_EVERY == 0:
            mean = jnp.broadcast_to(state.mean, (EVAL_EPISODES, state.mean.shape[0]))
            r, _, _ = _vector_returns(eval_env, act, mean, 10**9 + gen)
            ret = float(r.mean())
            if ret >= TARGET:
                break
    return {"generations": gen, "env_steps": steps_total, "raw_steps": raw_total, "eval_return": ret}


CHILDREN = {"member": child_member, "vector": child_vector}


def run_baseline(kind: str, seed: int, max_generations: int) -> dict:
    t0 = time.perf_counter()
    r = C.run_child("time_to_solve.py", ["--child", kind, "--seed", str(seed),
                                          "--max-generations", str(max_generations)], timeout=900)
    wall = time.perf_counter() - t0
    return {"runner": f"evosax Open_ES, {'one member at a time' if kind == 'member' else 'native vector env'}",
            "seed": seed, "wall": wall, "train_wall": None, **r,
            "solved": (r["eval_return"] or 0) >= TARGET}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="seeds of esrun and of the vector baseline")
    p.add_argument("--member-seeds", default="0", help="seeds of the one-member-at-a-time baseline (slow)")
    p.add_argument("--max-generations", type=int, default=100)
    p.add_argument("--child", choices=sorted(CHILDREN))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.child:
        # the same XLA threading as `esrun train` sets (esrun/cli.py), so the baselines' policy calls match
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
        C.emit(CHILDREN[a.child](a.seed, a.max_generations))
        return
    C.machine_header("bench/time_to_solve.py " + " ".join(sys.argv[1:]))
    seeds = [int(s) for s in a.seeds.split(",") if s]
    member_seeds = [int(s) for s in a.member_seeds.split(",") if s]
    logdir = tempfile.mkdtemp(prefix="esrun_tts_")
    rows = []
    try:
        for s in seeds:
            rows.append(run_esrun(s, a.max_generations, logdir))
            print("#", rows[-1], flush=True)
            rows.append(run_baseline("vector", s, a.max_generations))
            print("#", rows[-1], flush=True)
        for s in member_seeds:
            rows.append(run_baseline("member", s, a.max_generations))
            print("#", rows[-1], flush=True)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    for r in rows:
        r["sps"] = r["env_steps"] / r["wall"]
    print()
    print(C.table(rows, [("runner", "runner", ""), ("seed", "seed", ""), ("solved", "solved", ""),
                         ("generations", "generations", ""), ("eval_return", "eval return", ".1f"),
                         ("wall", "wall s (process)", ".1f"), ("train_wall", "esrun wall_seconds", ".1f"),
                         ("env_steps", "env steps", ","), ("raw_steps", "raw slot steps", ","),
                         ("sps", "env steps / wall s", ",.0f")]))
    print()
    for name in sorted({r["runner"] for r in rows}):
        rs = [r for r in rows if r["runner"] == name]
        solved = [r for r in rs if r["solved"]]
        if solved:
            import statistics

            median_wall = statistics.median(r['wall'] for r in solved)
            print(f"{name}: solved {len(solved)}/{len(rs)}; median wall {median_wall:.1f} s, "
                  f"median env steps {statistics.median(r['env_steps'] for r in solved):,.0f}")
        else:
            print(f"{name}: solved 0/{len(rs)}")
    print(f"# load average at end: {C.load_average()}")


if __name__ == "__main__":
    main()
