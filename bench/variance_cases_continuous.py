"""Variance cases for the continuous and RL-adjacent estimators, read by ``bench/estimator_variance.py``.

Each case is a dict (the format is documented in estimator_variance.py):
  estimator: str label; target: str (distribution / function); run: key -> Estimate (one estimate);
  exact_variance: tuple, one exact per-estimate variance per gradient leaf (summed over the leaf's coordinates),
  or None; note: str.
Exact values are ORACLES.md figures or closed forms derived in the comments.
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from esrun import estimators as E

N11 = E.Gaussian(jnp.array(1.0), jnp.array(0.0))  # mu = 1, sigma = 1
X2 = lambda x: x**2  # noqa: E731
T = 0.45
BERN = E.Bernoulli(jnp.zeros(1))
BERN_F = lambda b: jnp.sum((b - T) ** 2)  # noqa: E731
MU3 = jnp.array([1.0, -2.0, 0.5])
SPHERE = lambda x: jnp.sum(x**2)  # noqa: E731
A = math.sqrt(math.pi / 2)  # E W for W ~ Weibull(2, sqrt 2)


def _plain_es_trace(sigma, m2=5.25, d=3):
    # f = ||x||^2, g = (||mu||^2 / sigma) eps + 2 (mu . eps) eps + sigma ||eps||^2 eps; odd moments vanish, so
    # E||g||^2 = ||mu||^4 d / sigma^2 + 4 ||mu||^2 (d + 2) + sigma^2 d(d+2)(d+4) + 2 ||mu||^2 d(d+2),
    # and tr Cov = E||g||^2 - ||2 mu||^2 (E||eps||^4 = d(d+2), E||eps||^6 = d(d+2)(d+4)).
    e_g2 = m2**2 * d / sigma**2 + 4 * m2 * (d + 2) + sigma**2 * d * (d + 2) * (d + 4) + 2 * m2 * d * (d + 2)
    return e_g2 - 4 * m2


def _case(estimator, target, run, exact=None, note=""):
    return {"estimator": estimator, "target": target, "run": run, "exact_variance": exact, "note": note}


G = "N(1, 1), f = x^2"
CASES = [
    _case("score_function", G, lambda k: E.score_function(k, X2, N11, 1), (30.0, 136.0)),
    _case("score_function(mean)", G, lambda k: E.score_function(k, X2, N11, 100, baseline="mean"),
          (18.0 / 100, 96.0 / 100), "~ per-sample/n; leave-one-out b"),
    _case("score_function(optimal)", G, lambda k: E.score_function(k, X2, N11, 100, baseline="optimal"),
          (14.0 / 100, 64.0 / 100), "exact b*: per-sample/n; the LOO-estimated b* adds variance at finite n"),
    _case("leave_one_out", G, lambda k: E.leave_one_out(k, X2, N11, 100), (18.0 / 100, 96.0 / 100), "~ per-sample/n"),
    _case("pathwise", G, lambda k: E.pathwise(k, X2, N11, 1), (4.0, 12.0)),
    _case("measure_valued(coupled)", G, lambda k: E.measure_valued(k, X2, N11, 1),
          (16 * (2 - math.pi / 2) / (2 * math.pi), 8.0)),
    # uncoupled: mean c^2 [Var(2W + W^2) + Var(2W - W^2)] = (24 - 4 pi) / (2 pi); scale Var(2M + M^2) + Var(2e + e^2)
    _case("measure_valued(uncoupled)", G, lambda k: E.measure_valued(k, X2, N11, 1, coupled=False),
          ((24 - 4 * math.pi) / (2 * math.pi), 24.0)),
    _case("score_function", "Bernoulli(1/2), (b - 0.45)^2", lambda k: E.score_function(k, BERN_F, BERN, 1),
          (((1 - T) ** 4 + T**4) / 8 - (1 - 2 * T) ** 2 / 16,)),
    _case("leave_one_out", "Bernoulli(1/2), (b - 0.45)^2", lambda k: E.leave_one_out(k, BERN_F, BERN, 2),
          ((1 - 2 * T) ** 2 / 16,)),
    _case("measure_valued", "Bernoulli(1/2), (b - 0.45)^2", lambda k: E.measure_valued(k, BERN_F, BERN, 1), (0.0,)),
    _case("es(antithetic)", "||x||^2, mu=(1,-2,.5), sigma=0.1",
          lambda k: E.evolution_strategies(k, SPHERE, MU3, 0.1, 1), (84.0,), "trace"),
    _case("es(plain, 2 samples)", "||x||^2, mu=(1,-2,.5), sigma=0.1",
          lambda k: E.evolution_strategies(k, SPHERE, MU3, 0.1, 2, antithetic=False), (_plain_es_trace(0.1) / 2,),
          "trace"),
    _case("es(antithetic)", "||x||^2, mu=(1,-2,.5), sigma=0.01",
          lambda k: E.evolution_strategies(k, SPHERE, MU3, 0.01, 1), (84.0,), "trace"),
    _case("es(plain, 2 samples)", "||x||^2, mu=(1,-2,.5), sigma=0.01",
          lambda k: E.evolution_strategies(k, SPHERE, MU3, 0.01, 2, antithetic=False),
          (_plain_es_trace(0.01) / 2,), "trace"),
]
