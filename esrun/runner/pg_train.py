"""The data-parallel policy-gradient training loop, and the greedy evaluation that ES and the baselines report.

    train_pg(method, options, env_id, policy_cfg, budget_env_steps, seed, backend, workers, log) -> dict

Iterations of: every worker collects its episodes (``PGReplica.collect``), then for each of the method's
U = epochs x minibatches updates the workers' gradients are averaged and every replica applies the same Adam step
(``esrun.backends.pool`` replica pool: local, Ray or MPI). The loop stops at the first iteration whose episodes
bring the total to >= ``budget_env_steps`` (an iteration's episodes are never cut), so
``env_steps - last_iteration_env_steps < budget_env_steps <= env_steps``.

Curves go through ``log(env_steps, metrics)``: ``train/return`` (mean return of the sampled episodes),
``comm/bytes_per_iteration`` and, every ``eval_every`` iterations and at the end, ``eval/return``: the
:class:`GreedyEvaluator`'s mean return of the argmax policy on episodes whose reset seeds come from one fixed key,
``fold_in(PRNGKey(seed), 7)`` -- the same figure ``esrun compare`` reports for ES, so the two are comparable.

The returned dict: final_return, env_steps, last_iteration_env_steps, wall_seconds, bytes_per_iteration (mean bytes
a worker sent plus received per iteration, measured from the serialized messages), num_params, iterations,
updates_per_iteration, workers, backend, replicas_identical (every worker's parameters hash equal to the
driver's), params_sha256, eval_history, options. On MPI ranks other than 0, final_return is None.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np

from esrun.backends.pool import REPLICA_POOLS, make_replica_pool
from esrun.errors import OptionError
from esrun.estimators.policy_gradient import resolve_options, updates_per_iteration
from esrun.runner.pg_replica import PGReplica

EVAL_STREAM = 7
"""fold_in index of the greedy-evaluation key (root streams: 0-3 the ES run, docs/design.md; 5 PG episodes)."""


def policy_dict(policy_cfg) -> dict:
    """A PolicyConfig (or its dict) as a plain dict, as a replica spec carries it."""
    return policy_cfg if isinstance(policy_cfg, dict) else policy_cfg.model_dump(mode="json")


def eval_key(seed: int) -> jax.Array:
    """fold_in(PRNGKey(seed), 7): the reset seeds of every greedy evaluation of a run."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_STREAM)


class GreedyEvaluator:
    """Mean return of the argmax policy on the fixed evaluation seeds (the runner's own Gymnasium task)."""

    def __init__(self, env_id: str, policy: dict, seed: int, max_episode_steps: int | None = None):
        from esrun.config.schema import PolicyConfig
        from esrun.tasks.gym import GymTask

        self.task = GymTask(env_id, PolicyConfig(**policy), max_episode_steps=max_episode_steps)
        self.key = eval_key(seed)

    def __call__(self, params: np.ndarray, episodes: int) -> float:
        return float(np.mean(self.task.evaluate_policy(np.asarray(params, np.float32), self.key, episodes)))

    def close(self) -> None:
        self.task.close()


def train_pg(method: str, options: dict, env_id: str, policy_cfg, budget_env_steps: int, seed: int, backend: str,
             workers: int, log: Callable[[int, dict], None]) -> dict:
    """Train PG ``method`` (a key of ``policy_gradient.METHODS``) until the env-step budget (module docstring)."""
    t0 = time.perf_counter()
    o = resolve_options(method, dict(options))
    policy = policy_dict(policy_cfg)
    spec = {"method": method, "options": o, "env_id": env_id, "policy": policy, "seed": int(seed)}
    if backend not in REPLICA_POOLS:
        raise OptionError(f"backend must be one of {sorted(REPLICA_POOLS)}, got {backend!r}")
    pool = make_replica_pool(backend, PGReplica, spec, workers)
    evaluate = GreedyEvaluator(env_id, policy, seed, o["max_episode_steps"]) if pool.is_coordinator else None
    updates = updates_per_iteration(o)
    env_steps, iteration, last_steps, byte_total = 0, 0, 0, 0.0
    history = []
    try:
        if evaluate is not None:
            log(0, {"eval/return": evaluate(pool.driver.params, o["eval_episodes"])})
        while env_steps < budget_env_steps:
            stats = pool.gather("collect", iteration)
            last_steps = sum(s["steps"] for s in stats)
            env_steps += last_steps
            for u in range(updates):
                pool.broadcast("apply", pool.all_reduce_mean("grad", u))  # every replica, the same mean
            pool.meter.end()
            byte_total += pool.meter.metrics()["comm/bytes_per_generation"]
            iteration += 1
            returns = [r for s in stats for r in s["returns"]]
            metrics = {"train/return": float(np.mean(returns)),
                       "comm/bytes_per_iteration": pool.meter.metrics()["comm/bytes_per_generation"]}
            if evaluate is not None and (iteration % o["eval_every"] == 0 or env_steps >= budget_env_steps):
                metrics["eval/return"] = evaluate(pool.driver.params, o["eval_episodes"])
                history.append((env_steps, metrics["eval/return"]))
            if pool.is_coordinator:
                log(env_steps, metrics)
        hashes = pool.hashes()
        final = evaluate(pool.driver.params, o["final_eval_episodes"]) if evaluate is not None else None
        driver_hash = pool.driver.params_hash()
    finally:
        pool.close()
        if evaluate is not None:
            evaluate.close()
    return {
        "method": method,
        "final_return": final,
        "env_steps": int(env_steps),
        "last_iteration_env_steps": int(last_steps),
        "wall_seconds": time.perf_counter() - t0,
        "bytes_per_iteration": byte_total / max(iteration, 1),
        "num_params": int(pool.driver.num_params),
        "iterations": iteration,
        "updates_per_iteration": updates,
        "workers": pool.workers,
        "backend": backend,
        "replicas_identical": all(h == driver_hash for h in hashes),
        "params_sha256": driver_hash,
        "eval_history": history,
        "options": o,
    }
