"""Variance cases for the discrete estimators (ARM, DisARM, REBAR, RELAX), read by ``bench/estimator_variance.py``.

Same format as ``variance_cases_continuous.py``: estimator, target, run (key -> one Estimate), exact_variance (one
exact per-estimate variance per gradient leaf, summed over coordinates, or None), note.

Exact values (ORACLES.md), Bernoulli(sigmoid(0)) and f(b) = (b - t)^2, Delta = 1 - 2t:
ARM Delta^2 / 48 (the estimate is Delta |u - 1/2|), DisARM 0 (it returns Delta / 4 every time), RELAX with the
default zero-initialized control variate c_phi = 0 is REINFORCE: ((1-t)^4 + t^4) / 8 - Delta^2 / 16.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from esrun import estimators as E

BERN = E.Bernoulli(jnp.zeros(1))
W = jnp.array([0.7, -1.2, 0.4, 1.5, -0.3])
MULTI = E.Bernoulli(jnp.array([0.3, -1.0, 0.8, 1.7, -0.4]))


def toy(t):
    return lambda b: jnp.sum((b - t) ** 2)


def multi_f(b):
    return (W @ b - 0.6) ** 2 + jnp.sin(3.0 * b[0] * b[1] + b[2]) - b[3] * b[4]


def _case(estimator, target, run, exact=None, note=""):
    return {"estimator": estimator, "target": target, "run": run, "exact_variance": exact, "note": note}


def _toy_cases(t):
    f, delta = toy(t), 1 - 2 * t
    target = f"Bernoulli(1/2), (b - {t})^2"
    cv = E.mlp_control_variate()
    cv_params = cv.init(jax.random.PRNGKey(0), (1,))  # zero output layer: c_phi = 0
    rebar_cv = E.rebar_mlp_control_variate(f)
    rebar_cv_params = rebar_cv.init(jax.random.PRNGKey(0), (1,))
    return [
        _case("arm", target, lambda k: E.arm(k, f, BERN, 1), (delta**2 / 48,), "1 antithetic pair"),
        _case("disarm", target, lambda k: E.disarm(k, f, BERN, 1), (0.0,), "1 antithetic pair"),
        _case("rebar(eta=1, lambda=0.5)", target, lambda k: E.rebar(k, f, BERN, 1), None),
        _case("relax(c_phi = 0)", target, lambda k: E.relax(k, f, BERN, 1, cv, cv_params),
              (((1 - t) ** 4 + t**4) / 8 - delta**2 / 16,), "untrained default MLP = REINFORCE"),
        _case("relax(eta f(s(z)) + MLP)", target,
              lambda k: E.relax(k, f, BERN, 1, rebar_cv, rebar_cv_params),
              None, "untrained; see bench/rebar_relax_toy.py"),
    ]


CASES = (
    _toy_cases(0.45)
    + _toy_cases(0.499)
    + [
        _case("arm", "Bernoulli^5, non-separable f", lambda k: E.arm(k, multi_f, MULTI, 1), None, "trace"),
        _case("disarm", "Bernoulli^5, non-separable f", lambda k: E.disarm(k, multi_f, MULTI, 1), None,
              "trace; <= ARM"),
        _case("rebar(eta=1, lambda=0.5)", "Bernoulli^5, non-separable f", lambda k: E.rebar(k, multi_f, MULTI, 1),
              None, "trace"),
    ]
)
