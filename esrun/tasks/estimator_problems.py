"""Test problems for gradient estimators, each with its exact (or reference) gradient: what ``esrun compare`` runs.

An :class:`EstimatorProblem` is the parameter ``theta`` of a search distribution and a loss ``J(theta) = E_x f(x)`` that
gradient descent minimizes:

    synthetic       x ~ N(mean, sigma^2 I), theta = mean [D]       J = E f(x);  final objective f(mean)
    bernoulli_toy   b ~ Bernoulli(sigmoid(theta)), theta [1]       f(b) = (b - t)^2, J = t^2 + p (1 - 2t)
    binary          b ~ Bernoulli(sigmoid(theta)), theta [D]       f(b) = b^T Q b + c^T b;      J by enumeration
    categorical     z ~ Categorical(softmax(theta)), theta [V, K]  f(z) = sum <c_i, z_i> + z_i^T W z_{i+1}
    topk            z = topk(theta + Gumbel), theta [n]            f(z) = -<w, z> / k; optimum -sum top_k(w) / k

``dist_kind`` says which estimators apply (``esrun.compare.methods`` checks it before any work starts);
``differentiable`` whether f (or its relaxation to (0, 1) / the simplex) has a useful gradient.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from esrun import estimators as E

PROBLEMS: dict[str, Callable[[Any], EstimatorProblem]] = {}
"""compare ``task.type`` -> builder(task_cfg) -> EstimatorProblem (the compare config's task section)."""


def register(name: str) -> Callable:
    """Decorator: ``@register("binary")`` puts a builder ``task_cfg -> EstimatorProblem`` in :data:`PROBLEMS`."""

    def wrap(fn):
        PROBLEMS[name] = fn
        return fn

    return wrap


@dataclass(frozen=True)
class EstimatorProblem:
    """Everything the harness needs about one objective. ``theta`` arrays have ``init_params.shape``.

    make_dist(theta) -> distribution pytree (None for perturb-and-MAP);  leaf(pytree) -> its theta-shaped leaf;
    make_f(key) -> f for one step (``key`` seeds the noise of noisy objectives; others ignore it);
    objective(theta) -> [] the reported loss (lower is better); exact_grad(theta) -> grad_theta J, or None;
    reference_grad(theta, key, n) -> a large-sample estimate of grad_theta J where there is no exact one;
    diag_points(key, m) -> [m, *theta] fixed points (the first is ``init_params``).
    """

    name: str
    dist_kind: str
    differentiable: bool
    not_differentiable_why: str
    init_params: jax.Array
    make_dist: Callable[[jax.Array], Any]
    leaf: Callable[[Any], jax.Array]
    make_f: Callable[[jax.Array | None], Callable]
    objective: Callable[[jax.Array], jax.Array]
    exact_grad: Callable[[jax.Array], jax.Array] | None
    reference_grad: Callable[[jax.Array, jax.Array, int], jax.Array]
    diag_points: Callable[[jax.Array, int], jax.Array]
    optimum: float | None = None
    extra: dict = field(default_factory=dict)


def build_problem(task_cfg: Any) -> EstimatorProblem:
    """The problem a compare config's ``task`` section describes (``task_cfg.type`` names its builder)."""
    return PROBLEMS[task_cfg.type](task_cfg)


# -- Gaussian search distributions over R^D ------------------------------------------------------------------


def _noise(key: jax.Array, x: jax.Array) -> jax.Array:
    """A standard normal drawn from (key, the bits of x): independent across distinct points, no gradient."""
    bits = jax.lax.bitcast_convert_type(jax.lax.stop_gradient(x).astype(jnp.float32).ravel(), jnp.uint32)
    mult = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(40503)
    h = jnp.sum(bits * mult, dtype=jnp.uint32) ^ jnp.sum((bits >> 16) * (mult + jnp.uint32(7)), dtype=jnp.uint32)
    return jax.random.normal(jax.random.fold_in(key, h))


def _rastrigin_grad(m, s):
    # E[x^2 - 10 cos(2 pi x)] = m^2 + s^2 - 10 cos(2 pi m) exp(-2 pi^2 s^2) per coordinate
    return 2 * m + 20 * jnp.pi * jnp.sin(2 * jnp.pi * m) * jnp.exp(-2 * jnp.pi**2 * s**2)


@register("synthetic")
def gaussian_task(cfg: Any) -> EstimatorProblem:
    d, sigma = cfg.dim, cfg.sigma
    a = jnp.asarray(np.logspace(0.0, math.log10(cfg.condition), d), jnp.float32)
    from esrun.tasks.synthetic import rastrigin, rosenbrock, sphere

    clean = {
        "sphere": sphere,
        "rastrigin": rastrigin,
        "rosenbrock": rosenbrock,
        "noisy_quadratic": lambda x: 0.5 * jnp.sum(a * x**2),
        "quantized_sphere": lambda x: jnp.sum(jnp.round(x) ** 2),
    }[cfg.objective]
    exact = {
        "sphere": lambda m: 2 * m,
        "rastrigin": lambda m: _rastrigin_grad(m, sigma),
        "noisy_quadratic": lambda m: a * m,
    }.get(cfg.objective)
    noise_std = cfg.noise_std if cfg.objective == "noisy_quadratic" else 0.0
    differentiable = cfg.objective != "quantized_sphere"
    log_std = jnp.full((d,), math.log(sigma), jnp.float32)

    def make_f(key):
        if noise_std == 0.0 or key is None:
            return clean
        return lambda x: clean(x) + noise_std * _noise(key, x)

    def make_dist(m):
        return E.Gaussian(m, log_std)

    def reference_grad(m, key, n):
        dist = make_dist(m)
        if differentiable:
            return E.pathwise(key, clean, dist, n).grad.mean
        return E.score_function(key, clean, dist, n, baseline="mean").grad.mean

    x0 = jax.random.uniform(jax.random.PRNGKey(12345), (d,), jnp.float32, -cfg.init, cfg.init)

    def diag_points(key, m):
        more = jax.random.uniform(key, (m - 1, d), jnp.float32, -cfg.init, cfg.init)
        return jnp.concatenate([x0[None], more])

    return EstimatorProblem(
        name=cfg.objective, dist_kind="gaussian", differentiable=differentiable,
        not_differentiable_why=f"{cfg.objective} is piecewise constant (its gradient is 0 almost everywhere)",
        init_params=x0, make_dist=make_dist, leaf=lambda p: p.mean, make_f=make_f, objective=clean,
        exact_grad=exact, reference_grad=reference_grad, diag_points=diag_points, optimum=0.0)


# -- Discrete distributions, enumerated exactly ----------------------------------------------------------------


def _enumerated(name, dist_kind, dist_cls, states, f, theta0, point_scale):
    """A discrete task whose J(theta) = sum_s p_theta(s) f(s) and its gradient are exact by enumeration."""
    fs = jax.vmap(f)(states)

    def expected(theta):
        dist = dist_cls(theta)
        return jnp.sum(jnp.exp(jax.vmap(dist.log_prob)(states)) * fs)

    exact = jax.grad(expected)

    def diag_points(key, m):
        more = point_scale * jax.random.normal(key, (m - 1, *theta0.shape), jnp.float32)
        return jnp.concatenate([theta0[None], more])

    return EstimatorProblem(
        name=name, dist_kind=dist_kind, differentiable=True, not_differentiable_why="",
        init_params=theta0, make_dist=dist_cls, leaf=lambda p: p.logits, make_f=lambda key: f,
        objective=expected, exact_grad=exact, reference_grad=lambda th, key, n: exact(th),
        diag_points=diag_points, optimum=float(jnp.min(fs)))


def _binary_states(d):
    return jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)), jnp.float32)


@register("bernoulli_toy")
def bernoulli_toy(cfg: Any) -> EstimatorProblem:
    t = cfg.target

    def f(b):
        return jnp.sum((b - t) ** 2)

    return _enumerated(f"bernoulli_toy(t={t})", "bernoulli", E.Bernoulli, _binary_states(1), f,
                       jnp.full((1,), cfg.init_logit, jnp.float32), 1.0)


@register("binary")
def binary(cfg: Any) -> EstimatorProblem:
    d = cfg.dim
    kq, kc = jax.random.split(jax.random.PRNGKey(cfg.instance))
    q = jax.random.normal(kq, (d, d)) / math.sqrt(d)
    q = (q + q.T) / 2
    c = 0.5 * jax.random.normal(kc, (d,))

    def f(b):
        return b @ q @ b + c @ b

    return _enumerated(f"binary(d={d})", "bernoulli", E.Bernoulli, _binary_states(d), f,
                       jnp.full((d,), cfg.init_logit, jnp.float32), 1.0)


@register("categorical")
def categorical(cfg: Any) -> EstimatorProblem:
    v, k = cfg.num_vars, cfg.num_classes
    kc, kw = jax.random.split(jax.random.PRNGKey(cfg.instance))
    c = jax.random.normal(kc, (v, k))
    w = jax.random.normal(kw, (k, k)) / math.sqrt(k)

    def f(z):  # z: [V, K] one-hot rows (or points of the simplex for relaxations)
        return jnp.sum(c * z) + jnp.sum(jnp.einsum("ik,kl,il->i", z[:-1], w, z[1:]))

    eye = np.eye(k, dtype=np.float32)
    states = jnp.asarray([[eye[i] for i in idx] for idx in itertools.product(range(k), repeat=v)])
    return _enumerated(f"categorical({v}x{k})", "categorical", E.Categorical, states, f,
                       jnp.zeros((v, k), jnp.float32), 1.0)


# -- Top-k subset selection (perturb-and-MAP) -------------------------------------------------------------------


@register("topk")
def topk(cfg: Any) -> EstimatorProblem:
    n, k = cfg.n, cfg.k
    w = jax.random.normal(jax.random.PRNGKey(cfg.instance), (n,))
    eval_noise = jax.random.gumbel(jax.random.PRNGKey(777), (2048, n))

    def f(z):
        return -(w @ z) / k

    def solver(s):
        return E.solvers.top_k(s, k)

    def objective(theta):  # E_g f(topk(theta + g)) on 2048 fixed Gumbel draws
        return jnp.mean(jax.vmap(lambda g: f(solver(theta + g)))(eval_noise))

    def reference_grad(theta, key, num):
        # Score function of the perturbation: theta + g has density prod gumbel(y_i - theta_i), whose score in
        # theta_i is 1 - exp(-g_i); a mean baseline from an independent batch keeps it unbiased.
        k1, k2 = jax.random.split(key)
        g = jax.random.gumbel(k1, (num, n))
        fz = jax.vmap(lambda gi: f(solver(theta + gi)))(g)
        b = jnp.mean(jax.vmap(lambda gi: f(solver(theta + gi)))(jax.random.gumbel(k2, (num // 4, n))))
        return jnp.mean((fz - b)[:, None] * (1.0 - jnp.exp(-g)), 0)

    def diag_points(key, m):
        theta0 = jnp.zeros((n,), jnp.float32)
        return jnp.concatenate([theta0[None], jax.random.normal(key, (m - 1, n), jnp.float32)])

    optimum = float(-jnp.sum(jax.lax.top_k(w, k)[0]) / k)
    return EstimatorProblem(
        name=f"topk({k} of {n})", dist_kind="perturb_and_map", differentiable=True, not_differentiable_why="",
        init_params=jnp.zeros((n,), jnp.float32), make_dist=lambda theta: None, leaf=lambda p: p,
        make_f=lambda key: f, objective=objective, exact_grad=None, reference_grad=reference_grad,
        diag_points=diag_points, optimum=optimum, extra={"k": k, "solver": solver})
