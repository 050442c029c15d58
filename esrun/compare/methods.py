"""Estimators as the harness runs them: one uniform ``Method`` per (estimator, options, task).

    method.init(key) -> state                               the estimator's own state (RELAX's control variate,
                                                            REBAR's tuned (eta, lambda), AIMLE's lambda), else ()
    method.estimate(key, f, theta, state) -> (grad [*theta], per_sample [n, *theta], state)
    method.evals                                            calls of f per estimate (static)

``METHODS`` maps a name to ``(applies, build)``: ``applies(task)`` returns None or the one-line reason the estimator
does not apply (checked for every entry before any work starts), ``build(task, n, options)`` returns
``(init, estimate)`` where ``estimate`` also returns the calls of f it spent. Distribution-gradient estimators come
from ``esrun.estimators.REGISTRY`` (their ``meta`` says which distributions they support and whether they need
grad f); layer estimators (straight-through, Gumbel, I-MLE, AIMLE) are wrapped here: each sample's gradient is
``grad_theta f(layer(theta, noise))``, one call of f (with its gradient) per sample.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from esrun import estimators as E
from esrun.errors import UserError
from esrun.strategies.optimizer import make_optimizer

DIST_WORDS = {
    "gaussian": "a Gaussian over x",
    "bernoulli": "Bernoulli variables",
    "categorical": "categorical variables",
    "perturb_and_map": "z = topk(theta + Gumbel) (perturb-and-MAP, no tractable log-probability)",
}


class Method(NamedTuple):
    name: str
    num_samples: int
    evals: int
    init: Callable[[jax.Array], Any]
    estimate: Callable[..., tuple]


def _no_state(key):
    return ()


def _check_options(label: str, options: dict, allowed: set[str]) -> None:
    for k in options:
        if k not in allowed:
            known = ", ".join(sorted(allowed)) or "(none)"
            raise UserError(f"estimators[{label}].options.{k}: unknown option; allowed: {known}")


# -- distribution-gradient estimators from the registry ----------------------------------------------------------

# Registry estimators whose state the harness keeps (and whose options are the harness's, not the function's).
_SPECIAL = ("relax", "rebar")


def _registry_applies(name: str):
    def applies(task) -> str | None:
        meta = E.REGISTRY[name].meta
        if task.dist_kind not in meta["supports"]:
            return (f"{name} applies to {', '.join(meta['supports'])} distributions, but task {task.name} samples "
                    f"{DIST_WORDS[task.dist_kind]}")
        if meta["needs_grad_f"] and not task.differentiable:
            return f"{name} needs the gradient of f, but {task.not_differentiable_why}"
        return None

    return applies


def _registry_build(name: str):
    est = E.REGISTRY[name]
    allowed = set(inspect.signature(est).parameters) - {"key", "f", "dist", "num_samples"}

    def build(task, n, options, label):
        _check_options(label, options, allowed)

        def estimate(key, f, theta, state):
            e = est(key, f, task.make_dist(theta), n, **options)
            return task.leaf(e.grad), task.leaf(e.per_sample), state, e.num_evals

        return _no_state, estimate

    return build


def _rebar_build(task, n, options, label):
    _check_options(label, options, {"eta", "temperature", "tune", "tune_learning_rate"})
    eta0, temp0 = float(options.get("eta", 1.0)), float(options.get("temperature", 0.5))
    tune = bool(options.get("tune", False))
    opt = make_optimizer("adam", float(options.get("tune_learning_rate", 0.01)))

    def init(key):
        p = (jnp.asarray(eta0), jnp.log(jnp.asarray(temp0)))
        return (p, opt.init(p)) if tune else ()

    def estimate(key, f, theta, state):
        dist = task.make_dist(theta)
        if not tune:
            e = E.rebar(key, f, dist, n, eta=eta0, temperature=temp0)
            return task.leaf(e.grad), task.leaf(e.per_sample), state, e.num_evals
        p, s = state
        e, g = E.rebar_with_variance_grad(key, f, dist, n, p[0], p[1])
        upd, s = opt.update(g, s, p)
        return task.leaf(e.grad), task.leaf(e.per_sample), (optax.apply_updates(p, upd), s), e.num_evals

    return init, estimate


def _relax_build(task, n, options, label):
    _check_options(label, options, {"control_variate", "hidden", "cv_learning_rate"})
    kind = options.get("control_variate", "mlp")
    hidden = tuple(options.get("hidden", (16,) if kind == "mlp" else (8,)))
    if kind == "mlp":
        cv = E.mlp_control_variate(hidden)
    elif kind == "rebar_mlp":
        cv = E.rebar_mlp_control_variate(task.make_f(None), hidden)
    else:
        raise UserError(f"estimators[{label}].options.control_variate = {kind!r}: must be mlp or rebar_mlp")
    opt = make_optimizer("adam", float(options.get("cv_learning_rate", 0.01)))

    def init(key):
        p = cv.init(key, task.init_params.shape)
        return p, opt.init(p)

    def estimate(key, f, theta, state):
        p, s = state
        e, g = E.relax(key, f, task.make_dist(theta), n, cv, p, return_cv_grad=True)
        upd, s = opt.update(g, s, p)
        return task.leaf(e.grad), task.leaf(e.per_sample), (optax.apply_updates(p, upd), s), e.num_evals

    return init, estimate


# -- layer estimators: a sample's gradient is grad_theta f(layer(theta, noise)) -----------------------------------


def _per_sample_grads(key, n, loss, theta):
    """[n, *theta]: grad_theta loss(theta, key_i) for n independent keys."""
    return jax.vmap(lambda k: jax.grad(loss)(theta, k))(jax.random.split(key, n))


def _layer_applies(kinds: tuple[str, ...], name: str):
    def applies(task) -> str | None:
        if task.dist_kind not in kinds:
            return (f"{name} applies to {', '.join(kinds)} tasks, but task {task.name} samples "
                    f"{DIST_WORDS[task.dist_kind]}")
        if not task.differentiable:
            return f"{name} backpropagates through f, but {task.not_differentiable_why}"
        return None

    return applies


def _gumbel_build(layer):
    def build(task, n, options, label):
        _check_options(label, options, {"temperature", "hard"})
        tau, hard = float(options.get("temperature", 0.5)), bool(options.get("hard", False))

        def estimate(key, f_step, theta, state):
            per = _per_sample_grads(key, n, lambda th, k: f_step(layer(k, th, tau, hard)), theta)
            return per.mean(0), per, state, n

        return _no_state, estimate

    return build


def _topk_surrogate(k):
    return lambda a: k * jax.nn.softmax(a, axis=-1)


def _straight_through_build(task, n, options, label):
    _check_options(label, options, {"surrogate"})
    if task.dist_kind == "bernoulli":
        # b = H(p - u), u ~ U(0,1): an exact sample; backward through the surrogate of p - u, then sigmoid.
        st = E.straight_through("heaviside", options.get("surrogate", "identity"))

        def loss(th, k, f):
            return f(st(jax.nn.sigmoid(th) - jax.random.uniform(k, th.shape)))
    elif task.dist_kind == "categorical":
        st = E.straight_through("argmax", options.get("surrogate", "softmax"))

        def loss(th, k, f):
            return f(st(th + jax.random.gumbel(k, th.shape)))
    else:
        if "surrogate" in options:
            raise UserError(f"estimators[{label}].options.surrogate: top-k uses k * softmax; remove the option")
        st = E.straight_through(task.extra["solver"], _topk_surrogate(task.extra["k"]))

        def loss(th, k, f):
            return f(st(th + jax.random.gumbel(k, th.shape)))

    def estimate(key, f, theta, state):
        per = _per_sample_grads(key, n, lambda th, k: loss(th, k, f), theta)
        return per.mean(0), per, state, n

    return _no_state, estimate


def _map_solver(task):
    if task.dist_kind == "categorical":
        return lambda s: E.solvers.top_k(s, 1)  # one-hot argmax per row
    return task.extra["solver"]


_IMLE_OPTIONS = {"lam", "noise", "noise_k", "noise_temperature", "sog_steps", "scale_by_lambda"}
_AIMLE_OPTIONS = {"target_norm", "lam_init", "lam_lr", "lam_min", "ema", "centered", "noise", "noise_k",
                  "noise_temperature", "sog_steps", "scale_by_lambda"}


def _imle_build(task, n, options, label):
    _check_options(label, options, _IMLE_OPTIONS)
    layer = E.imle(_map_solver(task), 1, **options)

    def estimate(key, f, theta, state):
        per = _per_sample_grads(key, n, lambda th, k: f(layer(th, k)[0]), theta)
        return per.mean(0), per, state, n

    return _no_state, estimate


def _aimle_build(task, n, options, label):
    _check_options(label, options, _AIMLE_OPTIONS)
    a = E.aimle(_map_solver(task), 1, **options)

    def estimate(key, f, theta, state):
        def loss(th, st, k):
            return f(a.apply(th, k, st)[0])

        per, st_grad = jax.vmap(lambda k: jax.grad(loss, argnums=(0, 1))(theta, state, k))(jax.random.split(key, n))
        measured = E.AimleState(jnp.mean(st_grad.lam), jnp.zeros(()))
        return per.mean(0), per, a.update(state, measured), n

    return (lambda key: a.init()), estimate


METHODS: dict[str, tuple[Callable, Callable]] = {
    **{name: (_registry_applies(name), _registry_build(name)) for name in E.REGISTRY if name not in _SPECIAL},
    "rebar": (_registry_applies("rebar"), _rebar_build),
    "relax": (_registry_applies("relax"), _relax_build),
    "straight_through": (_layer_applies(("bernoulli", "categorical", "perturb_and_map"), "straight_through"),
                         _straight_through_build),
    "gumbel_sigmoid": (_layer_applies(("bernoulli",), "gumbel_sigmoid"), _gumbel_build(E.gumbel_sigmoid)),
    "gumbel_softmax": (_layer_applies(("categorical",), "gumbel_softmax"), _gumbel_build(E.gumbel_softmax)),
    "imle": (_layer_applies(("categorical", "perturb_and_map"), "imle"), _imle_build),
    "aimle": (_layer_applies(("categorical", "perturb_and_map"), "aimle"), _aimle_build),
}
"""estimator name -> (applies(task) -> None | reason, build(task, n, options, label) -> (init, estimate))."""


def make_method(task, name: str, num_samples: int, options: dict, label: str) -> Method:
    """The estimator ``name`` on ``task``, or a one-line :class:`UserError` saying why it cannot run there.

    The estimate is traced once here (abstractly, no FLOPs) so that a bad option or sample count is refused
    before any work starts, and so that ``evals`` (calls of f per estimate) is known statically.
    """
    if name not in METHODS:
        import difflib

        close = difflib.get_close_matches(name, METHODS, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"estimators[{label}].name = {name!r}: unknown estimator{hint}; "
                        f"known: {', '.join(sorted(METHODS))}")
    applies, build = METHODS[name]
    why = applies(task)
    if why is not None:
        raise UserError(f"estimators[{label}]: {why}")
    init, estimate = build(task, num_samples, dict(options), label)
    spent: list[int] = []

    def probe(key):
        g, per, st, evals = estimate(key, task.make_f(key), task.init_params, init(key))
        spent.append(int(evals))
        return g, per, st

    try:
        g, per, _ = jax.eval_shape(probe, jax.random.PRNGKey(0))
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        what = f"{name}, num_samples={num_samples}, options={options}"
        raise UserError(f"estimators[{label}] ({what}): {first}") from None
    if g.shape != task.init_params.shape or per.shape != (num_samples, *task.init_params.shape):
        raise RuntimeError(f"{name}: estimate shapes {g.shape}, {per.shape} do not match theta "
                           f"{task.init_params.shape}")
    return Method(name, num_samples, spent[0], init, lambda key, f, theta, state: estimate(key, f, theta, state)[:3])


def applicable(task) -> list[str]:
    """Names of the estimators that apply to ``task`` (for docs and error messages)."""
    return sorted(n for n, (applies, _) in METHODS.items() if applies(task) is None)

