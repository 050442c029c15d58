"""One ``esrun compare`` job on task ``vae_binary``: one estimator, one seed, a pure JAX loop at a budget of decoder
evaluations per image.

A step draws a minibatch ``x [B, 64]`` (with replacement, key ``fold_in(fold_in(PRNGKey(seed), 1), step)``) and
descends ``mean_j -ELBO(x_j)`` with

    decoder, prior   grad_theta mean_j f_{x_j}(b_j),  b_j ~ q(. | x_j)      pathwise, 1 decoder evaluation per image
    encoder          g_enc (the estimator under test, ``evals`` decoder evaluations per image)
                     + grad_phi mean_j -H(q(. | x_j))                       exact

so one step costs ``evals + 1`` decoder evaluations per image (the ``+1`` is the same for every estimator) and
``steps = budget.evaluations // (evals + 1)``: totals agree within one step. As in :mod:`esrun.compare.run` the loop
is a jitted ``lax.scan`` over the steps of a curve point, compiled once per estimator and reused by every seed.

Reported at every curve point: the train and test ELBO (``num = task.eval_samples`` latent draws per image with a
fixed key, the same for every estimator). At ``diagnostics.points`` checkpoints of the run's own training (the
start, which every estimator and seed share, then evenly spaced up to the end): ``diagnostics.repeats``
independent encoder-gradient estimates on a fixed batch of ``task.diag_batch`` training images, with

    variance = sum_k Var_r(g_rk)  over the P_enc encoder parameters      bias = || mean_r g_r - g_ref ||
    cosine   = mean_r cos(g_r, g_ref),   g_ref = DisARM with ``task.reference_pairs`` pairs per image (unbiased).
"""
from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from esrun import estimators as E
from esrun.digest import params_hash
from esrun.strategies.optimizer import make_optimizer
from esrun.tasks.vae_binary import VaeProblem, build_vae_problem, elbo, encode, entropy, neg_log_joint, param_counts
from esrun.tasks.vae_estimators import VaeEstimator, make_estimator

TRAIN_ELBO_KEY, TEST_ELBO_KEY, DIAG_KEY = 11, 12, 4242

_PREPARED: dict[str, tuple] = {}


def prepare(cfg) -> tuple[VaeProblem, list[VaeEstimator]]:
    """The problem and every estimator entry of a compare config, validated (UserError before any work)."""
    key = cfg.model_dump_json(include={"task", "estimators", "samples"})
    if key not in _PREPARED:
        problem = build_vae_problem(cfg.task)
        ests = [make_estimator(cfg.task.latents, e.name, e.num_samples or cfg.samples, e.options, e.row)
                for e in cfg.estimators]
        _PREPARED[key] = (problem, ests)
    return _PREPARED[key]


def _encoder_vjp(params, x):
    logits, vjp = jax.vjp(lambda enc: encode(enc, x), params["enc"])
    return logits, lambda g: vjp(g)[0]


def wire_bytes_per_step(problem: VaeProblem, est: VaeEstimator) -> int:
    """float32 bytes one data-parallel worker sends per step: the gradient (size P), or for ES the decoder's
    gradient plus the 2n losses of its pairs and an 8-byte key (the encoder noise is rebuilt from the key)."""
    counts = param_counts(problem.init)
    if est.name == "es":
        return 4 * counts["decoder"] + 4 * est.evals + 8
    return 4 * (counts["encoder"] + counts["decoder"])


class VaeProgram:
    """The compiled training block and diagnostics of one estimator entry (reused across seeds)."""

    def __init__(self, cfg, problem: VaeProblem, est: VaeEstimator, entry):
        self.cfg, self.problem, self.est = cfg, problem, est
        self.opt = make_optimizer(cfg.optimizer.name, entry.learning_rate or cfg.optimizer.learning_rate)
        self.evals = est.evals + 1
        self.steps = cfg.budget.evaluations // self.evals
        self.block = max(1, math.ceil(self.steps / cfg.logging.points))
        self.num_blocks = math.ceil(self.steps / self.block) if self.steps else 0
        m = cfg.diagnostics.points
        self.checkpoints = [0] if m == 1 else sorted({round(k * self.num_blocks / (m - 1)) for k in range(m)})
        self.nominal = {c: round(c / max(self.num_blocks, 1) * cfg.budget.evaluations) for c in self.checkpoints}
        self.train_x = jnp.asarray(problem.data.train)
        self.test_x = jnp.asarray(problem.data.test)
        n_train = len(problem.data.train)
        self.diag_x = self.train_x[np.linspace(0, n_train - 1, cfg.task.diag_batch).astype(int)]
        self._train: Any = None  # the compiled block / diagnostics programs, built on first use
        self._diag: Any = None
        self._elbos_jit = jax.jit(self._elbos)
        self.compile_seconds = self.compile_cpu_seconds = 0.0

    # -- training --------------------------------------------------------------------------------------------
    def loss_grad(self, key, params, x, est_state):
        """Gradient of ``mean_j -ELBO(x_j)`` (decoder pathwise, encoder by the estimator + exact entropy)."""
        k_dec, k_est = jax.random.split(key)
        logits, enc_vjp = _encoder_vjp(params, x)
        b = jax.random.bernoulli(k_dec, jax.nn.sigmoid(jax.lax.stop_gradient(logits))).astype(jnp.float32)
        f_mean, g_dec = jax.value_and_grad(
            lambda dec: jnp.mean(jax.vmap(neg_log_joint, (None, 0, 0))(dec, x, b)))(params["dec"])
        g_f, est_state = self.est.grad(k_est, params, x, logits, enc_vjp, est_state, f_mean)
        g_ent = enc_vjp(jax.grad(lambda l: -jnp.mean(entropy(l)))(logits))
        return {"enc": jax.tree_util.tree_map(jnp.add, g_f, g_ent), "dec": g_dec}, est_state

    def _block_fn(self, params, opt_state, est_state, run_key, block_index):
        batch, steps = self.problem.batch_size, self.steps

        def step(carry, i):
            params, opt_state, est_state = carry
            k_batch, k_grad = jax.random.split(jax.random.fold_in(run_key, i))
            x = self.train_x[jax.random.randint(k_batch, (batch,), 0, self.train_x.shape[0])]
            g, new_est = self.loss_grad(k_grad, params, x, est_state)
            upd, new_opt = self.opt.update(g, opt_state, params)
            new = (optax.apply_updates(params, upd), new_opt, new_est)
            active = i < steps
            return jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, carry), None

        idx = block_index * self.block + jnp.arange(self.block)
        (params, opt_state, est_state), _ = jax.lax.scan(step, (params, opt_state, est_state), idx)
        return params, opt_state, est_state, *self._elbos(params)

    def _elbos(self, params):
        k = self.problem.eval_samples
        return (elbo(params, self.train_x, jax.random.PRNGKey(TRAIN_ELBO_KEY), k),
                elbo(params, self.test_x, jax.random.PRNGKey(TEST_ELBO_KEY), k))

    def _compile(self, fn, args):
        t0, c0 = time.perf_counter(), time.process_time()
        out = jax.jit(fn).lower(*args).compile()
        self.compile_seconds += time.perf_counter() - t0
        self.compile_cpu_seconds += time.process_time() - c0
        return out

    def train(self, seed: int) -> dict[str, Any]:
        cpu0 = time.process_time()
        root = jax.random.PRNGKey(seed)
        run_key = jax.random.fold_in(root, 1)
        params = self.problem.init
        opt_state = self.opt.init(params)
        est_state = jax.jit(self.est.init)(jax.random.fold_in(root, 0))  # compiled like the rest of the job
        args = (params, opt_state, est_state, run_key, jnp.asarray(0, jnp.int32))
        if self._train is None:
            self._train = self._compile(self._block_fn, args)
            self._diag = self._compile(self._diag_fn, (params, est_state, root))
        diag_key = jax.random.fold_in(root, 7)
        e_train, e_test = (float(v) for v in self._elbos_jit(params))
        out: dict[str, Any] = {"elbo_train_init": e_train, "elbo_test_init": e_test}
        curve = [(0, {"objective/value": -e_train, "elbo/train": e_train, "elbo/test": e_test})]
        diags = []
        wall = 0.0
        for b in range(self.num_blocks + 1):
            if b in self.checkpoints:
                t0 = time.perf_counter()
                d = [float(v) for v in self._diag(params, est_state, jax.random.fold_in(diag_key, b))]
                wall += time.perf_counter() - t0
                diags.append(d)
                curve[-1][1].update({"diag/variance": d[0], "diag/cosine": d[3]})
                at = self.nominal[b]
                out.update({f"variance_at_{at}": d[0], f"elbo_train_at_{at}": e_train, f"elbo_test_at_{at}": e_test})
            if b == self.num_blocks:
                break
            t0 = time.perf_counter()
            params, opt_state, est_state, e_train, e_test = self._train(params, opt_state, est_state, run_key,
                                                                        jnp.asarray(b, jnp.int32))
            e_train, e_test = float(e_train), float(e_test)
            wall += time.perf_counter() - t0
            done = min(self.steps, (b + 1) * self.block)
            curve.append((done * self.evals, {"objective/value": -e_train, "elbo/train": e_train, "elbo/test": e_test}))
        var, bias, bias_se, cos = (float(np.mean(c)) for c in zip(*diags))
        out.update({
            "curve": curve, "final_objective": -e_train, "final_regret": None, "steps": self.steps,
            "evaluations": self.steps * self.evals, "wall_seconds": wall,
            "final_theta_sha": params_hash(ravel_pytree(params)[0]),
            "elbo_train": e_train, "elbo_test": e_test, "variance": var, "variance_x_evals": var * self.evals,
            "bias": bias, "bias_se": bias_se, "cosine": cos,
            "wire_bytes_per_step": wire_bytes_per_step(self.problem, self.est),
            "cpu_seconds": time.process_time() - cpu0})  # this process's CPU time, compilation included
        return out

    # -- diagnostics ---------------------------------------------------------------------------------------------
    def _diag_fn(self, params, est_state, key):
        """(variance, bias, bias standard error, cosine) of the encoder gradient of E_q f at ``params``."""
        x = self.diag_x
        logits, enc_vjp = _encoder_vjp(params, x)
        repeats, pairs = self.cfg.diagnostics.repeats, self.cfg.task.reference_pairs
        k_ref, k_rep = jax.random.split(key)

        def one(k):
            return ravel_pytree(self.est.grad(k, params, x, logits, enc_vjp, est_state, jnp.zeros(()))[0])[0]

        g = jax.lax.map(one, jax.random.split(k_rep, repeats), batch_size=min(repeats, 32))  # [R, P_enc]

        def ref_one(k, xj, lj):
            return E.disarm(k, lambda b: neg_log_joint(params["dec"], xj, b), E.Bernoulli(lj), pairs).grad.logits

        g_l = jax.vmap(ref_one)(jax.random.split(k_ref, x.shape[0]), x, logits)
        ref = ravel_pytree(enc_vjp(g_l / x.shape[0]))[0]
        var = jnp.sum(jnp.var(g, axis=0, ddof=1))
        bias = jnp.linalg.norm(g.mean(0) - ref)
        cos = jnp.mean(g @ ref / jnp.maximum(jnp.linalg.norm(g, axis=1) * jnp.linalg.norm(ref), 1e-30))
        return var, bias, jnp.sqrt(var / repeats), cos


def run_entries(cfg, entry_indices: list[int], seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """Every (entry, seed) job of ``entry_indices`` in this process, as :func:`esrun.compare.run.run_entries`."""
    problem, ests = prepare(cfg)
    out = []
    for i in entry_indices:
        entry = cfg.estimators[i]
        prog = VaeProgram(cfg, problem, ests[i], entry)
        for seed in seeds if seeds is not None else cfg.seed_list():
            res = prog.train(seed)
            res.update({"entry": i, "label": entry.row, "estimator": entry.name, "seed": seed,
                        "num_samples": ests[i].num_samples, "evals_per_estimate": prog.evals,
                        "compile_seconds": prog.compile_seconds, "compile_cpu_seconds": prog.compile_cpu_seconds})
            out.append(res)
    return out
