"""Encoder gradients of the binary VAE: every estimator of ``grad_phi mean_j E_{q_phi(b | x_j)} f_{x_j}(b)``.

One signature (``VaeEstimator.grad``)::

    grad(key, params, x [B, 64], logits [B, D], enc_vjp, state, f_mean []) -> (g_enc, state)

``g_enc`` is shaped like ``params["enc"]``; ``enc_vjp(g_logits [B, D])`` is the chain rule from the logits into
the encoder; ``f_mean`` is the batch mean of ``f`` at the decoder's own sample (what REINFORCE's moving-average
baseline tracks). ``evals`` is the number of decoder evaluations per image that one call spends.

Logit estimators run per image on ``Bernoulli(l_j)`` with ``f_j(b) = f_{x_j}(b)`` (decoder fixed) and are chained
into the encoder: ``g_enc = enc_vjp(g_l / B)``. The distribution-gradient ones come from
``esrun.estimators.REGISTRY`` unchanged:

    score_function   (f(b) - c) (b - sigmoid(l)), c a moving average of f (option ``baseline: ema``, the default
                     here) or any of the registry's baselines; n samples, n evaluations
    leave_one_out    RLOO (VIMCO's leave-one-out baseline on the ELBO): n samples, n evaluations
    arm, disarm      n antithetic pairs, 2n evaluations
    rebar            n samples, 3n evaluations (f(b), f(sigma(z)), f(sigma(z~))); ``tune: true`` descends the
                     variance in (eta, log temperature), averaged over the batch
    relax            n samples; control variate ``rebar_mlp`` (default: eta f(sigma_lambda(z)) + MLP(z), 3n
                     evaluations) or ``mlp`` (MLP(sigmoid(z)), n evaluations); input: the latent only; trained on
                     the batch mean of grad ||g||^2
    straight_through b = 1[sigmoid(l) > u] forward, identity backward: n samples, n evaluations (with grad f)
    gumbel_sigmoid   y = sigmoid((l + logistic) / tau) (``hard: true``: 1[l + logistic > 0] forward): n, n

ES perturbs the encoder *parameters* (not the logits): with ``eps_i = normal(fold_in(key, i), [P_enc])``,
common uniforms ``u`` for both members of a pair and ``F(phi) = mean_j f_{x_j}(1[u_j < sigmoid(enc_phi(x_j))])``,

    g_enc = 1 / (2 sigma n) sum_i (F(phi + sigma eps_i) - F(phi - sigma eps_i)) eps_i,

n pairs, 2n evaluations per image. Only the pair's two scalars and the key cross the wire (seed-shared noise).
It estimates the gradient of the Gaussian-smoothed objective, so it is biased by O(sigma^2), and its variance
grows with ``P_enc``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from esrun import estimators as E
from esrun.errors import UserError
from esrun.tasks.vae_binary import encode, neg_log_joint


class VaeEstimator(NamedTuple):
    """``init(key) -> state``; ``grad(...)`` as in the module docstring; ``evals`` decoder calls per image."""

    name: str
    num_samples: int
    evals: int
    init: Callable[[jax.Array], Any]
    grad: Callable[..., tuple]


def _check(label: str, options: dict, allowed: set[str]) -> None:
    for k in options:
        if k not in allowed:
            raise UserError(f"estimators[{label}].options.{k}: unknown option; allowed: "
                            f"{', '.join(sorted(allowed)) or '(none)'}")


def _per_image(per_example: Callable, finish: Callable, init: Callable, name: str, n: int, evals: int) -> VaeEstimator:
    """A logit estimator ``per_example(key, f, l [D], state) -> (g_l [D], aux)`` vmapped over the batch.

    ``aux`` (a gradient of the estimator's own state, e.g. RELAX's control variate) is averaged over the batch and
    handed to ``finish(state, aux_mean, f_mean) -> state``.
    """

    def grad(key, params, x, logits, enc_vjp, state, f_mean):
        dec = params["dec"]

        def one(k, xj, lj):
            return per_example(k, lambda b: neg_log_joint(dec, xj, b), jax.lax.stop_gradient(lj), state)

        keys = jax.random.split(key, x.shape[0])
        g_l, aux = jax.vmap(one)(keys, x, logits)
        aux = jax.tree_util.tree_map(lambda a: a.mean(0), aux)
        return enc_vjp(g_l / x.shape[0]), finish(state, aux, f_mean)

    return VaeEstimator(name, n, evals, init, grad)


def _stateless(state, aux, f_mean):
    return state


def _no_state(key):
    return ()


def _registry(name: str):
    est = E.REGISTRY[name]
    allowed = set(inspect.signature(est).parameters) - {"key", "f", "dist", "num_samples"}

    def build(n, options, label):
        _check(label, options, allowed)
        # One eager call on a 2-latent toy: validates the options and the sample count, and counts the calls of f.
        evals = int(est(jax.random.PRNGKey(0), jnp.sum, E.Bernoulli(jnp.zeros(2)), n, **options).num_evals)

        def per_example(k, f, lj, state):
            return est(k, f, E.Bernoulli(lj), n, **options).grad.logits, ()

        return _per_image(per_example, _stateless, _no_state, name, n, evals)

    return build


def _reinforce(n, options, label):
    """score_function; ``baseline: ema`` (default) subtracts a bias-corrected moving average of f (``decay``)."""
    options = dict(options)
    if options.get("baseline", "ema") != "ema":
        _check(label, {k: v for k, v in options.items() if k != "baseline"}, set())
        return _registry("score_function")(n, options, label)
    _check(label, options, {"baseline", "decay"})
    decay = float(options.get("decay", 0.9))
    if not 0.0 <= decay < 1.0:
        raise UserError(f"estimators[{label}].options.decay = {decay}: must be in [0, 1)")

    def init(key):
        return (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))  # (EMA sum, decay^t complement)

    def per_example(k, f, lj, state):
        avg, weight = state
        c = jnp.where(weight > 0, avg / jnp.maximum(weight, 1e-12), 0.0)
        return E.score_function(k, lambda b: f(b) - c, E.Bernoulli(lj), n).grad.logits, ()

    def finish(state, aux, f_mean):
        avg, weight = state
        return (decay * avg + (1 - decay) * f_mean, decay * weight + (1 - decay))

    return _per_image(per_example, finish, init, "score_function", n, n)


def _rebar(n, options, label):
    _check(label, options, {"eta", "temperature", "tune", "tune_learning_rate"})
    eta0, temp0 = float(options.get("eta", 1.0)), float(options.get("temperature", 0.5))
    if temp0 <= 0:
        raise UserError(f"estimators[{label}].options.temperature = {temp0}: must be > 0")
    if not options.get("tune", False):
        def per_example(k, f, lj, state):
            return E.rebar(k, f, E.Bernoulli(lj), n, eta=eta0, temperature=temp0).grad.logits, ()

        return _per_image(per_example, _stateless, _no_state, "rebar", n, 3 * n)
    opt = optax.adam(float(options.get("tune_learning_rate", 0.01)))

    def init(key):
        p = (jnp.asarray(eta0, jnp.float32), jnp.log(jnp.asarray(temp0, jnp.float32)))
        return p, opt.init(p)

    def per_example_tuned(k, f, lj, state):
        (eta, log_t), _ = state
        e, g = E.rebar_with_variance_grad(k, f, E.Bernoulli(lj), n, eta, log_t)
        return e.grad.logits, g

    def finish(state, aux, f_mean):
        p, s = state
        upd, s = opt.update(aux, s, p)
        return optax.apply_updates(p, upd), s

    return _per_image(per_example_tuned, finish, init, "rebar", n, 3 * n)


def _relax(latents: int):
    def build(n, options, label):
        _check(label, options, {"control_variate", "hidden", "cv_learning_rate"})
        kind = options.get("control_variate", "rebar_mlp")
        factories = {"mlp": lambda f, hidden: E.mlp_control_variate(hidden),
                     "rebar_mlp": lambda f, hidden: E.rebar_mlp_control_variate(f, hidden)}
        if kind not in factories:
            raise UserError(f"estimators[{label}].options.control_variate = {kind!r}: must be mlp or rebar_mlp")
        hidden = tuple(options.get("hidden", (32,)))
        opt = optax.adam(float(options.get("cv_learning_rate", 0.01)))
        shape_cv = factories[kind](jnp.sum, hidden)  # parameters do not depend on f

        def init(key):
            p = shape_cv.init(key, (latents,))
            return p, opt.init(p)

        def per_example(k, f, lj, state):
            # The control variate calls this image's f (REBAR's term) on relaxed samples.
            e, g = E.relax(k, f, E.Bernoulli(lj), n, factories[kind](f, hidden), state[0], return_cv_grad=True)
            return e.grad.logits, g

        def finish(state, aux, f_mean):
            p, s = state
            upd, s = opt.update(aux, s, p)
            return optax.apply_updates(p, upd), s

        return _per_image(per_example, finish, init, "relax", n, n * (1 + 2 * shape_cv.f_evals))

    return build


def _pathwise_layer(name: str, sample: Callable, allowed: set[str]):
    """A relaxation / straight-through layer: g_l = mean_i grad_l f(sample(k_i, l, options))."""

    def build(n, options, label):
        _check(label, options, allowed)
        options = dict(options)
        if float(options.get("temperature", 1.0)) <= 0:
            raise UserError(f"estimators[{label}].options.temperature: must be > 0")

        def per_example(k, f, lj, state):
            g = jax.vmap(lambda ki: jax.grad(lambda l: f(sample(ki, l, options)))(lj))(jax.random.split(k, n))
            return g.mean(0), ()

        return _per_image(per_example, _stateless, _no_state, name, n, n)

    return build


def _straight_through_sample(k, l, options):
    st = E.straight_through("heaviside", options.get("surrogate", "identity"))
    return st(jax.nn.sigmoid(l) - jax.random.uniform(k, l.shape))


def _gumbel_sample(k, l, options):
    return E.gumbel_sigmoid(k, l, float(options.get("temperature", 0.5)), bool(options.get("hard", False)))


def _es(n, options, label):
    _check(label, options, {"sigma"})
    sigma = float(options.get("sigma", 0.01))
    if sigma <= 0:
        raise UserError(f"estimators[{label}].options.sigma = {sigma}: must be > 0")

    def grad(key, params, x, logits, enc_vjp, state, f_mean):
        flat, unravel = ravel_pytree(params["enc"])
        k_u, k_eps = jax.random.split(key)
        u = jax.random.uniform(k_u, (n, *logits.shape))  # common random numbers for a pair

        def loss(theta_flat, ui):
            b = (ui < jax.nn.sigmoid(encode(unravel(theta_flat), x))).astype(jnp.float32)
            return jnp.mean(jax.vmap(neg_log_joint, (None, 0, 0))(params["dec"], x, b))

        def pair(i, ui):
            eps = jax.random.normal(jax.random.fold_in(k_eps, i), flat.shape, flat.dtype)
            return (loss(flat + sigma * eps, ui) - loss(flat - sigma * eps, ui)) / (2 * sigma) * eps

        g = jax.vmap(pair)(jnp.arange(n), u).mean(0)
        return unravel(g), state

    return VaeEstimator("es", n, 2 * n, _no_state, grad)


def builders(latents: int) -> dict[str, Callable[[int, dict, str], VaeEstimator]]:
    """estimator name -> build(num_samples, options, label) -> VaeEstimator (raises UserError on bad options)."""
    return {
        "score_function": _reinforce,
        "leave_one_out": _registry("leave_one_out"),
        "arm": _registry("arm"),
        "disarm": _registry("disarm"),
        "rebar": _rebar,
        "relax": _relax(latents),
        "straight_through": _pathwise_layer("straight_through", _straight_through_sample, {"surrogate"}),
        "gumbel_sigmoid": _pathwise_layer("gumbel_sigmoid", _gumbel_sample, {"temperature", "hard"}),
        "es": _es,
    }


def make_estimator(latents: int, name: str, num_samples: int, options: dict, label: str) -> VaeEstimator:
    """The VAE estimator ``name`` or a one-line UserError (unknown name, option, or sample count)."""
    table = builders(latents)
    if name not in table:
        raise UserError(f"estimators[{label}].name = {name!r}: not an estimator of task vae_binary; known: "
                        f"{', '.join(sorted(table))}")
    try:
        return table[name](num_samples, dict(options), label)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"estimators[{label}] ({name}, num_samples={num_samples}, options={options}): "
                        f"{first}") from None
