"""One job of ``esrun compare``: one estimator, one seed, a pure JAX loop at a budget of evaluations of f.

    steps  = budget.evaluations // evals_per_estimate        (so totals agree within one estimate's cost)
    theta_{s+1} = optimizer(theta_s, g_s),   g_s = estimate(fold_in(key, s), f_s, theta_s)

The loop runs as a jitted ``lax.scan`` over blocks of steps (one block per point of the learning curve; steps past
the budget in the last block are masked out), compiled ahead of time once per estimator and process and reused by
every seed, so ``wall_seconds`` is the optimization alone and ``compile_seconds`` is reported beside it.

Diagnostics (:func:`diagnose`) at the task's fixed points, where the exact gradient is known (or estimated once
with ``diagnostics.reference_samples`` draws): ``repeats`` independent estimates ``g_r`` give

    bias     = || mean_r g_r - grad J ||           (with its standard error sqrt(variance / repeats))
    variance = sum_j Var_r(g_rj)                    (trace of the covariance of one estimate)
    cosine   = mean_r cos(g_r, grad J)

averaged over the points. Estimator state (RELAX's control variate, AIMLE's lambda) is the initial one there.
"""
from __future__ import annotations

import importlib
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esrun.compare.methods import Method, make_method
from esrun.digest import params_hash
from esrun.strategies.optimizer import make_optimizer
from esrun.tasks.estimator_problems import EstimatorProblem, build_problem

DIAG_POINTS_KEY = 4242
REFERENCE_KEY = 999


_PREPARED: dict[str, tuple] = {}

OWN_PROGRAMS = {"vae_binary": "esrun.tasks.vae_program"}
"""task.type -> module with its own ``prepare(cfg)`` and ``run_entries(cfg, entries, seeds)`` (a job that is not
descent on one search distribution's parameters), in place of the two below."""


def _own_program(cfg):
    name = OWN_PROGRAMS.get(cfg.task.type)
    return None if name is None else importlib.import_module(name)


def prepare(cfg) -> tuple[EstimatorProblem, list[Method]]:
    """The task and every estimator entry, validated: raises UserError (one line) before any work starts.

    Cached per config in this process (the driver validates, then runs the same entries locally).
    """
    if (own := _own_program(cfg)) is not None:
        return own.prepare(cfg)
    key = cfg.model_dump_json(include={"task", "estimators", "samples"})
    if key not in _PREPARED:
        task = build_problem(cfg.task)
        methods = [make_method(task, e.name, e.num_samples or cfg.samples, e.options, e.row) for e in cfg.estimators]
        _PREPARED[key] = (task, methods)
    return _PREPARED[key]


def _cosine(a, b):
    a, b = a.ravel(), b.ravel()
    return jnp.dot(a, b) / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), 1e-30)


class Program:
    """The compiled training block and diagnostics of one estimator entry on one task (reused across seeds)."""

    def __init__(self, cfg, task: EstimatorProblem, method: Method, entry):
        self.cfg, self.task, self.method = cfg, task, method
        self.opt = make_optimizer(cfg.optimizer.name, entry.learning_rate or cfg.optimizer.learning_rate)
        self.steps = cfg.budget.evaluations // method.evals
        self.block = max(1, math.ceil(self.steps / cfg.logging.points))
        self.num_blocks = math.ceil(self.steps / self.block) if self.steps else 0
        self._train: Any = None  # the compiled programs, built on first use
        self._diag: Any = None
        self.compile_seconds = 0.0

    # -- training ------------------------------------------------------------------------------------------
    def _block_fn(self, theta, opt_state, mstate, run_key, block_index):
        task, method, steps = self.task, self.method, self.steps
        exact = task.exact_grad

        def step(carry, i):
            theta, opt_state, mstate = carry
            k = jax.random.fold_in(run_key, i)
            g, _, new_m = method.estimate(jax.random.fold_in(k, 0), task.make_f(jax.random.fold_in(k, 1)), theta,
                                          mstate)
            upd, new_opt = self.opt.update(g, opt_state, theta)
            new_theta = optax.apply_updates(theta, upd)
            active = i < steps
            keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, old)
            cos = _cosine(g, exact(theta)) if exact is not None else jnp.nan
            return (keep(new_theta, theta), keep(new_opt, opt_state), keep(new_m, mstate)), (cos, active)

        idx = block_index * self.block + jnp.arange(self.block)
        (theta, opt_state, mstate), (cos, active) = jax.lax.scan(step, (theta, opt_state, mstate), idx)
        cos_mean = jnp.sum(jnp.where(active, cos, 0.0)) / jnp.maximum(jnp.sum(active), 1)
        return theta, opt_state, mstate, task.objective(theta), cos_mean

    def _compiled_train(self, args):
        if self._train is None:
            t0 = time.perf_counter()
            self._train = jax.jit(self._block_fn).lower(*args).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._train

    def train(self, seed: int) -> dict[str, Any]:
        task, method = self.task, self.method
        key = jax.random.PRNGKey(seed)
        k_state, k_run = jax.random.split(key)
        theta = task.init_params
        opt_state = self.opt.init(theta)
        mstate = method.init(k_state)
        obj0 = float(task.objective(theta))
        curve = [(0, self._metrics(obj0, None))]
        args = (theta, opt_state, mstate, k_run, jnp.asarray(0, jnp.int32))
        train = self._compiled_train(args)
        t0 = time.perf_counter()
        obj = obj0
        for b in range(self.num_blocks):
            theta, opt_state, mstate, obj, cos = train(theta, opt_state, mstate, k_run, jnp.asarray(b, jnp.int32))
            obj, cos = float(obj), float(cos)
            done = min(self.steps, (b + 1) * self.block)
            curve.append((done * method.evals, self._metrics(obj, cos)))
        wall = time.perf_counter() - t0
        regret = None if task.optimum is None else obj - task.optimum
        return {"curve": curve, "final_objective": obj, "final_regret": regret, "steps": self.steps,
                "evaluations": self.steps * method.evals, "wall_seconds": wall,
                "final_theta_sha": params_hash(theta)}

    def _metrics(self, obj: float, cos) -> dict[str, float]:
        m = {"objective/value": obj}
        if self.task.optimum is not None:
            m["objective/regret"] = obj - self.task.optimum
        if cos is not None and math.isfinite(cos):
            m["diag/cosine_train"] = cos
        return m

    # -- diagnostics ---------------------------------------------------------------------------------------
    def _diag_fn(self, point, key):
        task, method = self.task, self.method
        state0 = method.init(jax.random.PRNGKey(0))

        def one(k):
            return method.estimate(jax.random.fold_in(k, 0), task.make_f(jax.random.fold_in(k, 1)), point, state0)[0]

        return jax.vmap(one)(jax.random.split(key, self.cfg.diagnostics.repeats))

    def diagnose(self, seed: int, references: list) -> dict[str, float]:
        points = self.task.diag_points(jax.random.PRNGKey(DIAG_POINTS_KEY), self.cfg.diagnostics.points)
        if self._diag is None:
            t0 = time.perf_counter()
            self._diag = jax.jit(self._diag_fn).lower(points[0], jax.random.PRNGKey(0)).compile()
            self.compile_seconds += time.perf_counter() - t0
        rows = []
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
        for j, (p, true) in enumerate(zip(points, references)):
            g = np.asarray(self._diag(p, jax.random.fold_in(key, j)), np.float64)
            g = g.reshape(self.cfg.diagnostics.repeats, -1)
            true = np.asarray(true, np.float64).ravel()
            var = float(np.sum(np.var(g, axis=0, ddof=1)))
            norms = np.linalg.norm(g, axis=1) * max(np.linalg.norm(true), 1e-30)
            cos = np.where(norms > 0, g @ true / np.where(norms > 0, norms, 1.0), 0.0)
            rows.append((float(np.linalg.norm(g.mean(0) - true)), math.sqrt(var / len(g)), var, float(cos.mean())))
        bias, bias_se, variance, cosine = (float(np.mean(c)) for c in zip(*rows))
        return {"bias": bias, "bias_se": bias_se, "variance": variance, "cosine": cosine,
                "variance_x_evals": variance * self.method.evals}


def references(cfg, task: EstimatorProblem) -> list[np.ndarray]:
    """grad J at each fixed point: exact where the task has it, else one large-sample estimate (fixed key)."""
    points = task.diag_points(jax.random.PRNGKey(DIAG_POINTS_KEY), cfg.diagnostics.points)
    out = []
    for j, p in enumerate(points):
        if task.exact_grad is not None:
            out.append(np.asarray(task.exact_grad(p)))
        else:
            out.append(np.asarray(task.reference_grad(p, jax.random.fold_in(jax.random.PRNGKey(REFERENCE_KEY), j),
                                                      cfg.diagnostics.reference_samples)))
    return out


def run_entries(cfg, entry_indices: list[int], seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """Every (entry, seed) job of ``entry_indices`` in this process: the unit of work a backend distributes."""
    if (own := _own_program(cfg)) is not None:
        return own.run_entries(cfg, entry_indices, seeds)
    task, methods = prepare(cfg)
    refs = references(cfg, task)
    out = []
    for i in entry_indices:
        entry = cfg.estimators[i]
        prog = Program(cfg, task, methods[i], entry)
        for seed in seeds if seeds is not None else cfg.seed_list():
            res = prog.train(seed)
            res.update(prog.diagnose(seed, refs))
            res.update({"entry": i, "label": entry.row, "estimator": entry.name, "seed": seed,
                        "num_samples": methods[i].num_samples, "evals_per_estimate": methods[i].evals,
                        "compile_seconds": prog.compile_seconds})
            out.append(res)
    return out
