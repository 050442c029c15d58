"""``esrun compare``: every estimator against ES on one task at an equal budget, on the local / ray / mpi backend.

    esrun compare configs/compare/bernoulli_toy.yaml [section.key=value ...]
    from esrun.compare import load_compare_config, run_compare

Modules: ``schema`` (the validated config), ``config`` (YAML + overrides), ``tasks`` (objectives with exact or
reference gradients), ``methods`` (estimators as uniform init / estimate pairs, refused when they do not apply),
``run`` (one estimator's jitted loop and diagnostics), ``outputs`` (TensorBoard, results.csv / results.md,
curves.png / variance.png), ``harness`` (``run_compare``; its jobs run on ``esrun.backends.pool.map_jobs``: local,
ray or mpi), ``cli``.

CONTRACT for gym tasks (``task.type: gym``) — ``esrun/compare/rl.py`` (owned by the RL engineer) provides::

    run_rl_method(method: str, options: dict, env_id: str, policy_cfg, budget_env_steps: int, seed: int,
                  backend: str, workers: int, log: Callable[[int, dict], None]) -> dict

* ``method`` is one of ``harness.RL_METHODS``: es, reinforce, reinforce_baseline, rloo, grpo, ppo (anything else is
  refused before any work starts). ``options`` is the entry's ``options`` plus ``learning_rate`` / ``num_samples``
  when the entry sets them. ``policy_cfg`` is an ``esrun.config.schema.PolicyConfig`` (the ``task.policy`` section).
  ``backend`` is ``backend.type`` (local | ray | mpi), ``workers`` is ``backend.workers``.
* ``log(env_steps, {"eval/return": ...})`` is called as training goes; the harness writes each call to the
  TensorBoard run ``runs/<name>/<label>/seed<k>`` with the env-step count as the TB step, and plots
  ``eval/return`` in curves.png. Other tags pass through to TensorBoard.
* It returns at least ``{"final_return": float, "env_steps": int, "wall_seconds": float}``; other scalar entries
  (e.g. ``bytes_per_iteration``) go to results_per_seed.csv.
* The harness calls it once per (method, seed), sequentially, in the driver process. Under MPI every rank calls it
  with the same arguments (SPMD, so it can all-reduce gradients); only rank 0's ``log`` writes files.
"""
from esrun.compare.config import load_compare_config
from esrun.compare.harness import CompareResult, run_compare

__all__ = ["load_compare_config", "run_compare", "CompareResult"]
