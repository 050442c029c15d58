"""ES against policy-gradient baselines on a Gymnasium task, same policy network, same worker pool.

    run_rl_method(method, options, env_id, policy_cfg, budget_env_steps, seed, backend, workers, log) -> dict

``method`` is ``"es"`` (esrun's own training loop: OpenAI-ES, ``esrun.train`` with a config built from the
arguments) or a policy-gradient method of :data:`esrun.estimators.policy_gradient.METHODS` (REINFORCE, REINFORCE
with a baseline, RLOO, GRPO, PPO: ``esrun.runner.pg_train.train_pg``, data-parallel, gradients all-reduced across
the workers of an ``esrun.backends.pool`` replica pool of ``esrun.runner.pg_replica.PGReplica``).

Both start from the same theta_0 (the policy's ``init(fold_in(PRNGKey(seed), 3))``) and report the same final
figure: the mean return of the greedy (argmax) policy over ``final_eval_episodes`` episodes whose reset seeds
come from one fixed key, ``fold_in(PRNGKey(seed), 7)``. Curves go through ``log(env_steps, metrics)`` with
``eval/return`` (greedy policy, fixed seeds for PG; the runner's evaluation for ES) and ``train/return`` (mean
return of the episodes trained on: the sampled policy for PG, the population's mean fitness for ES).

The returned dict: final_return, env_steps, wall_seconds, bytes_per_iteration (mean bytes a worker sent plus
received per iteration / generation, measured from the serialized messages), num_params, iterations,
updates_per_iteration, and for PG ``replicas_identical`` (every worker's parameters hash equal to the driver's).
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

from esrun.errors import OptionError
from esrun.estimators.policy_gradient import METHODS, initial_key
from esrun.runner.pg_train import GreedyEvaluator, policy_dict, train_pg

ES_DEFAULTS = {
    "population": 32,
    "sigma": 0.1,
    "learning_rate": 0.05,
    "eval_every": 2,
    "eval_episodes": 10,
    "final_eval_episodes": 20,
    "episodes_per_member": 1,
    "max_episode_steps": None,
    "chunk_size": None,  # members per evaluation chunk (default: population / workers where it divides)
    "log_dir": None,  # where the ES run directory goes (default: a temporary directory, removed afterwards)
}


# -- evolution strategies (esrun's own loop) -------------------------------------------------------------------
def _es_config(options: dict, env_id, policy, budget_env_steps, seed, backend, workers, log_dir,
               tensorboard: bool) -> dict:
    pop, chunk = options["population"], options["chunk_size"]
    if chunk is None and workers > 1 and pop % workers == 0:
        chunk = pop // workers  # every worker gets a chunk
    return {
        "name": f"es_{env_id.replace('/', '_')}_s{seed}_{backend}{workers}",
        "seed": int(seed),
        "task": {"type": "gym", "env_id": env_id, "episodes_per_member": options["episodes_per_member"],
                 "max_episode_steps": options["max_episode_steps"], "eval_every": options["eval_every"],
                 "eval_episodes": options["eval_episodes"]},
        "policy": policy,
        "strategy": {"name": "openai_es", "population": options["population"], "sigma": options["sigma"],
                     "learning_rate": options["learning_rate"], "optimizer": "adam"},
        "backend": {"type": backend, "workers": workers, "chunk_size": chunk},
        "budget": {"env_steps": int(budget_env_steps)},
        "logging": {"dir": str(log_dir), "tensorboard": tensorboard, "progress": False, "checkpoint_every": 10**6},
    }


def _run_es(method, options, env_id, policy_cfg, budget_env_steps, seed, backend, workers, log) -> dict:
    """OpenAI-ES through ``esrun.train``; each generation's metrics stream through ``log`` against env steps
    (``perf/env_steps``) as the run goes (``train(..., on_metrics=...)``). ``esrun.train`` stops at the first
    generation that reaches the budget, as the PG loop does. The run directory holds TensorBoard files only when
    ``log_dir`` is given (nothing reads them back)."""
    import esrun
    from esrun.backends.pool import is_coordinator

    unknown = sorted(set(options) - set(ES_DEFAULTS))
    if unknown:
        raise OptionError(f"es: unknown option(s) {unknown}; allowed: {sorted(ES_DEFAULTS)}")
    o = {**ES_DEFAULTS, **options}
    policy = policy_dict(policy_cfg)
    evaluate = GreedyEvaluator(env_id, policy, seed, o["max_episode_steps"]) if is_coordinator(backend) else None
    steps: list[int] = []  # env steps after each generation
    history: list[tuple[int, float]] = []

    def on_metrics(m: dict) -> None:
        step = int(m["perf/env_steps"])
        out = {"comm/bytes_per_iteration": m.get("comm/bytes_per_generation", 0.0)}
        if "fitness/mean" in m:
            out["train/return"] = m["fitness/mean"]
        if "eval/return_mean" in m:
            out["eval/return"] = m["eval/return_mean"]
            history.append((step, m["eval/return_mean"]))
        steps.append(step)
        log(step, out)

    tmp = None
    try:
        if evaluate is not None:
            x0 = evaluate.task.initial_params(initial_key(seed))
            log(0, {"eval/return": evaluate(x0, o["eval_episodes"])})
        t0 = time.perf_counter()
        if o["log_dir"] is None:
            tmp = tempfile.TemporaryDirectory(prefix="esrun_compare_es_")
        log_dir = o["log_dir"] or tmp.name  # type: ignore[union-attr]  # tmp is made whenever log_dir is None
        cfg = _es_config(o, env_id, policy, budget_env_steps, seed, backend, workers, log_dir,
                         tensorboard=o["log_dir"] is not None)
        result = esrun.train(cfg, progress=False, on_metrics=on_metrics)
        wall = time.perf_counter() - t0
        summary = result.summary
        if evaluate is None or not summary:  # an MPI rank other than 0
            return {"method": "es", "final_return": None, "env_steps": 0, "wall_seconds": wall,
                    "bytes_per_iteration": 0.0, "num_params": 0}
        final = evaluate(result.mean, o["final_eval_episodes"])
    finally:
        if evaluate is not None:
            evaluate.close()
        if tmp is not None:
            tmp.cleanup()
    last = steps[-1] - (steps[-2] if len(steps) > 1 else 0) if steps else 0
    return {
        "method": "es",
        "final_return": final,
        "env_steps": int(summary["env_steps"]),
        "last_iteration_env_steps": last,
        "wall_seconds": wall,
        "bytes_per_iteration": float(summary["bytes_per_generation"]),
        "num_params": int(summary["num_params"]),
        "iterations": int(summary["generations"]),
        "updates_per_iteration": 1,
        "workers": summary["workers"],
        "backend": backend,
        "runner_final_eval_return": summary["final_eval_return"],
        "params_sha256": summary["params_sha256"],
        "eval_history": history,
        "options": {k: v for k, v in o.items() if k != "log_dir"},
    }


RUNNERS: dict[str, Callable[..., dict]] = {"es": _run_es, **{m: train_pg for m in METHODS}}
NUM_SAMPLES_MEANS = {"es": "population", **{m: "episodes_per_worker" for m in METHODS}}
"""What ``num_samples`` of a compare entry sets: ES's population, a PG worker's episodes per iteration."""


def run_rl_method(method: str, options: dict, env_id: str, policy_cfg, budget_env_steps: int, seed: int,
                  backend: str, workers: int, log: Callable[[int, dict], None]) -> dict:
    """Train ``method`` on ``env_id`` for ``budget_env_steps`` environment steps; see the module docstring."""
    if method not in RUNNERS:
        raise OptionError(f"unknown method {method!r}; known: {sorted(RUNNERS)}")
    options = dict(options or {})
    if "num_samples" in options:  # the compare harness's per-entry sample count
        key = NUM_SAMPLES_MEANS[method]
        if key in options:
            raise OptionError(f"{method}: set num_samples or {key}, not both")
        options[key] = options.pop("num_samples")
    return RUNNERS[method](method, options, env_id, policy_cfg, int(budget_env_steps), int(seed),
                           backend, int(workers), log)
