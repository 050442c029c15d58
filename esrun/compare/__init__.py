"""``esrun compare``: every estimator against ES on one task at an equal budget, on the local / ray / mpi backend.

    esrun compare configs/compare/bernoulli_toy.yaml [section.key=value ...]
    from esrun.compare import load_compare_config, run_compare

Modules: ``config`` (YAML + overrides into ``esrun.config.compare_schema``, through ``esrun.config.load``),
``methods`` (estimators as uniform init / estimate pairs, refused when they do not apply), ``run`` (one estimator's
jitted loop and diagnostics), ``rl`` (gym tasks: ES through ``esrun.train``, the policy-gradient baselines through
``esrun.runner.pg_train``), ``outputs`` (TensorBoard, results.csv / results.md, curves.png / variance.png),
``harness`` (``run_compare``; estimator jobs run on ``esrun.backends.pool.map_jobs``: local, ray or mpi), ``cli``.
The objectives with exact or reference gradients are ``esrun.tasks.estimator_problems``.

Gym tasks (``task.type: gym``): the harness calls ``rl.run_rl_method(method, options, env_id, policy_cfg,
budget_env_steps, seed, backend, workers, log)`` once per (entry, seed), in the driver (under MPI on every rank,
SPMD); ``method`` is one of ``harness.RL_METHODS``; ``log(env_steps, metrics)`` calls become the TensorBoard run
``runs/<name>/<label>/seed<k>`` (rank 0 only) and ``eval/return`` is plotted in curves.png; the returned dict's
``final_return`` / ``env_steps`` / ``wall_seconds`` and other scalars go to results_per_seed.csv.
"""
from esrun.compare.config import load_compare_config
from esrun.compare.harness import CompareResult, run_compare

__all__ = ["load_compare_config", "run_compare", "CompareResult"]
