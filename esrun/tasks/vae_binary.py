"""A variational autoencoder with Bernoulli latents on binarized 8x8 digits: the discrete estimators' own benchmark.

Data: scikit-learn's bundled ``load_digits`` (1,797 images of 8 x 8 pixels in 0..16, shipped with the package: no
download), binarized as ``x = 1[pixel / 16 > threshold]`` (a fixed binarization). Image ``i`` is a test image when
``i % test_every == 0`` (default: 360 test, 1,437 train), the same split on every machine.

Model (Yin and Zhou, 2019; Dong, Mnih and Tucker, 2020), ``D`` Bernoulli latents, ``b in {0, 1}^D``:

    q_phi(b | x)   = prod_d Bernoulli(b_d; sigmoid(l_d)),   l = enc_phi(x)   [D]
    p_theta(b)     = prod_d Bernoulli(b_d; sigmoid(a_d))                    (prior logits a [D], learned)
    p_theta(x | b) = prod_p Bernoulli(x_p; sigmoid(dec_theta(b)_p))         [64]

``linear``: ``enc`` and ``dec`` are affine (one stochastic layer, no deterministic hidden layer). ``nonlinear``: two
deterministic LeakyReLU hidden layers of ``hidden`` units in each of ``enc`` and ``dec``.

Objective (maximized), split into the part estimators have to estimate and an exact part:

    ELBO(x) = E_q[log p(x | b) + log p(b)] + H(q(. | x)) = -E_q f_x(b) + H(q),
    f_x(b)  = -log p(x | b) - log p(b) = sum_p [softplus(u_p) - x_p u_p] + sum_d [softplus(a_d) - b_d a_d],
    H(q)    = sum_d [sigmoid(l_d) softplus(-l_d) + sigmoid(-l_d) softplus(l_d)]            (exact, no sampling)

with ``u = dec(b)``. One call of ``f_x`` is one decoder evaluation. ``f_x`` is defined for relaxed ``b in (0,1)^D``
too (the relaxations and REBAR / RELAX need it). Decoder and prior gradients are pathwise: ``grad_theta f_x(b)`` at
a sample ``b ~ q``; the encoder gradient of ``E_q f_x`` is what the estimator under test supplies
(:mod:`esrun.tasks.vae_estimators`); the entropy's encoder gradient is exact.

Parameters are a dict ``{"enc": [layers], "dec": {"layers": [layers], "prior": [D]}}``, each layer ``{"w", "b"}``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from esrun.errors import UserError

Params = dict[str, Any]


class Digits(NamedTuple):
    """Binarized digits: ``train [N_train, 64]``, ``test [N_test, 64]``, float32 in {0, 1}."""

    train: np.ndarray
    test: np.ndarray


def load_binarized_digits(threshold: float = 0.5, test_every: int = 5) -> Digits:
    """scikit-learn's ``load_digits`` binarized at ``pixel / 16 > threshold``; every ``test_every``-th image is test."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError:
        raise UserError("task vae_binary needs scikit-learn (pip install scikit-learn; it ships the digits)") from None
    x = (load_digits().data / 16.0 > threshold).astype(np.float32)  # [1797, 64]
    is_test = np.arange(len(x)) % test_every == 0
    return Digits(train=x[~is_test], test=x[is_test])


# -- the networks ---------------------------------------------------------------------------------------------


def _dense_init(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[dict[str, jax.Array]]:
    # numpy (float64, then float32): the same bits in every process, whatever XLA options compiled eager ops there
    return [{"w": jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(m), jnp.float32), "b": jnp.zeros((n,), jnp.float32)}
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp(layers: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    """``[..., in] -> [..., out]``: affine layers with LeakyReLU(0.2) between them (none after the last)."""
    for layer in layers[:-1]:
        x = jax.nn.leaky_relu(x @ layer["w"] + layer["b"], 0.2)
    return x @ layers[-1]["w"] + layers[-1]["b"]


def init_params(seed: int, variant: str, latents: int, hidden: int, pixel_mean: np.ndarray) -> Params:
    """Initial parameters (N(0, 1/fan_in) weights, zero biases); the decoder's output bias is the logit of the mean
    training image and the prior logits are 0, as in the papers."""
    middle = {"linear": (), "nonlinear": (hidden, hidden)}[variant]
    rng = np.random.default_rng(seed)
    enc = _dense_init(rng, (64, *middle, latents))
    dec = _dense_init(rng, (latents, *middle, 64))
    p = np.clip(pixel_mean.astype(np.float64), 1e-3, 1 - 1e-3)
    dec[-1]["b"] = jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32)
    return {"enc": enc, "dec": {"layers": dec, "prior": jnp.zeros((latents,), jnp.float32)}}


def encode(enc: list, x: jax.Array) -> jax.Array:
    """Encoder logits ``l [..., D]`` of images ``x [..., 64]``."""
    return mlp(enc, x)


def neg_log_joint(dec: dict, x: jax.Array, b: jax.Array) -> jax.Array:
    """``f_x(b) = -log p(x | b) - log p(b)``, ``x [64]``, ``b [D]`` (binary or relaxed) -> ``[]``: one decoder call."""
    u = mlp(dec["layers"], b)
    a = dec["prior"]
    return jnp.sum(jax.nn.softplus(u) - x * u) + jnp.sum(jax.nn.softplus(a) - b * a)


def entropy(logits: jax.Array) -> jax.Array:
    """``H(Bernoulli(sigmoid(l)))`` summed over the last axis: ``[..., D] -> [...]``, exact."""
    p = jax.nn.sigmoid(logits)
    return jnp.sum(p * jax.nn.softplus(-logits) + (1 - p) * jax.nn.softplus(logits), -1)


def elbo(params: Params, x: jax.Array, key: jax.Array, num_samples: int) -> jax.Array:
    """Mean over images ``x [N, 64]`` of ``-mean_k f_x(b_k) + H(q)``, ``b_k ~ q(. | x)``, ``num_samples`` draws each."""
    logits = encode(params["enc"], x)  # [N, D]
    b = jax.random.bernoulli(key, jax.nn.sigmoid(logits), (num_samples, *logits.shape)).astype(jnp.float32)
    f = jax.vmap(jax.vmap(neg_log_joint, (None, 0, 0)), (None, None, 0))(params["dec"], x, b)  # [K, N]
    return jnp.mean(-f.mean(0) + entropy(logits))


def param_counts(params: Params) -> dict[str, int]:
    """Number of encoder and decoder (+ prior) parameters."""
    size = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))
    return {"encoder": size(params["enc"]), "decoder": size(params["dec"])}


class VaeProblem(NamedTuple):
    """Data and initial parameters of one ``vae_binary`` config (the same for every estimator and seed)."""

    name: str
    data: Digits
    init: Params
    batch_size: int
    eval_samples: int
    dist_kind: str = "bernoulli"
    optimum: None = None


def build_vae_problem(task_cfg) -> VaeProblem:
    """The problem of a ``VaeBinaryTask`` config section (initial parameters from ``task_cfg.init_seed``)."""
    data = load_binarized_digits(task_cfg.threshold, task_cfg.test_every)
    if task_cfg.batch_size > len(data.train):
        raise UserError(f"task.batch_size = {task_cfg.batch_size}: more than the {len(data.train)} training images")
    params = init_params(task_cfg.init_seed, task_cfg.variant, task_cfg.latents,
                         task_cfg.hidden, data.train.mean(0))
    name = f"vae_binary({task_cfg.variant}, D={task_cfg.latents}; objective: -ELBO of the training images)"
    return VaeProblem(name, data, params, task_cfg.batch_size, task_cfg.eval_samples)
