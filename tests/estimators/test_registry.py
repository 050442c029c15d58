"""Every entry of esrun.estimators.REGISTRY, on every distribution it claims to support, on a 2x3 pytree.

Driven by each entry's metadata (``supports``, ``unbiased``, ``example_options``, and ``estimates`` where an
entry estimates only some leaves), so a newly registered estimator is tested here by default:

* it runs under ``jax.jit`` (options closed over, key and distribution traced);
* ``grad`` has the distribution's tree structure and leaf shapes; ``per_sample`` (where not None) has a leading
  [n] axis and its mean is ``grad``;
* ``num_evals`` is a positive Python int at trace time (static, so equal-budget comparisons can use it);
* entries marked unbiased pass a z-test against the exact gradient on every coordinate.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E
from esrun.estimators.distributions import DISTRIBUTIONS

Z = 4.5
N = 2000
W = jnp.array([[1.0, -0.5, 2.0], [0.3, 1.5, -1.0]])


def _gaussian():
    dist = E.Gaussian(jnp.array([[0.5, -1.0, 0.2], [1.5, 0.0, -0.4]]), jnp.log(jnp.array([[1.0, 0.5, 0.8]] * 2)))
    f = lambda x: jnp.sum(W * x**2 + jnp.sin(x))
    mu, s = dist.mean, dist.std
    damp = jnp.exp(-(s**2) / 2)
    # d/dmu E[w x^2 + sin x] = 2 w mu + cos(mu) e^{-s^2/2};  d/dlog s = s (2 w s - s sin(mu) e^{-s^2/2})
    exact = E.Gaussian(2 * W * mu + jnp.cos(mu) * damp, s * (2 * W * s - s * jnp.sin(mu) * damp))
    return dist, f, exact


def _enumerated(dist, states, f):
    fx = jax.vmap(f)(states)
    return jax.grad(lambda d: jnp.sum(jnp.exp(jax.vmap(d.log_prob)(states)) * fx))(dist)


def _bernoulli():
    dist = E.Bernoulli(jnp.array([[0.3, -1.0, 0.8], [0.0, 1.2, -0.4]]))
    f = lambda b: (jnp.sum(W * b) - 0.45) ** 2
    states = jnp.array(list(itertools.product([0.0, 1.0], repeat=6))).reshape(-1, 2, 3)
    return dist, f, _enumerated(dist, states, f)


def _categorical():
    dist = E.Categorical(jnp.array([[0.2, -0.4, 1.0], [0.0, 0.5, -1.0]]))
    f = lambda x: jnp.sum(W * x) ** 2
    eye = np.eye(3)
    states = jnp.array([np.stack([eye[i], eye[j]]) for i in range(3) for j in range(3)])
    return dist, f, _enumerated(dist, states, f)


def _poisson():
    rate = jnp.array([[2.0, 0.5, 1.0], [3.0, 0.2, 1.5]])
    dist = E.Poisson(jnp.log(rate))
    f = lambda x: jnp.sum(W * x**2)
    # d/dlambda E[X^2] = 2 lambda + 1; d/dlog_rate multiplies by lambda
    return dist, f, E.Poisson(W * rate * (2 * rate + 1))


CASES = {"gaussian": _gaussian, "bernoulli": _bernoulli, "categorical": _categorical, "poisson": _poisson}


def _params():
    return [(name, kind) for name, fn in sorted(E.REGISTRY.items()) for kind in fn.meta["supports"]]


def test_cases_cover_every_distribution():
    assert set(CASES) == set(DISTRIBUTIONS)
    assert {"score_function", "leave_one_out", "pathwise", "measure_valued", "evolution_strategies"} <= set(E.REGISTRY)


@pytest.mark.parametrize("name,kind", _params())
def test_registry_entry(name, kind):
    est_fn = E.REGISTRY[name]
    meta = est_fn.meta
    assert kind in DISTRIBUTIONS
    dist, f, exact = CASES[kind]()
    options = meta["example_options"](dist)
    seen_evals = []

    @jax.jit
    def run(key, d):
        est = est_fn(key, f, d, N, **options)
        seen_evals.append(est.num_evals)
        return est

    est = run(jax.random.PRNGKey(7), dist)

    (num_evals,) = seen_evals
    assert isinstance(num_evals, int) and not isinstance(num_evals, bool) and num_evals > 0
    assert int(est.num_evals) == num_evals

    assert jax.tree_util.tree_structure(est.grad) == jax.tree_util.tree_structure(dist)
    for g, p in zip(jax.tree_util.tree_leaves(est.grad), jax.tree_util.tree_leaves(dist)):
        assert g.shape == jnp.shape(p) and bool(jnp.all(jnp.isfinite(g)))

    if est.per_sample is not None:
        assert jax.tree_util.tree_structure(est.per_sample) == jax.tree_util.tree_structure(dist)
        for ps, g in zip(jax.tree_util.tree_leaves(est.per_sample), jax.tree_util.tree_leaves(est.grad)):
            assert ps.shape[1:] == g.shape
            np.testing.assert_allclose(ps.mean(0), g, rtol=1e-5, atol=1e-6)

    if meta["unbiased"]:
        if est.per_sample is not None:
            samples = est.per_sample
        else:  # no per-sample form: many independent small estimates instead
            keys = jax.random.split(jax.random.PRNGKey(8), 400)
            samples = jax.vmap(lambda k: est_fn(k, f, dist, 8, **options).grad)(keys)
        fields = meta.get("estimates", dist._fields)
        for field in fields:
            p = np.asarray(getattr(samples, field), np.float64)
            e = np.asarray(getattr(exact, field), np.float64)
            se = p.std(0, ddof=1) / np.sqrt(p.shape[0])
            assert np.all(np.abs(p.mean(0) - e) < Z * se + 1e-6), (name, kind, field, p.mean(0), e, se)
