"""Score-function (REINFORCE) estimator against exact gradients and exact variances (ORACLES.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

from esrun_helpers.oracles import (
    FUNCS,
    assert_unbiased,
    assert_variance,
    bernoulli_states,
    categorical_states,
    exact_by_enumeration,
    exact_gaussian,
    gauss2,
    poisson_states,
)


@pytest.mark.parametrize("baseline", [None, "mean", "optimal", 1.5])
@pytest.mark.parametrize("fname", ["x3", "cos"])
def test_gaussian_unbiased(fname, baseline):
    dist = gauss2()
    est = E.score_function(jax.random.PRNGKey(1), FUNCS[fname], dist, 4000, baseline=baseline)
    assert est.num_evals == 4000
    assert_unbiased(est.per_sample, exact_gaussian(dist, fname))


@pytest.mark.parametrize("baseline", [None, "optimal"])
def test_bernoulli_unbiased_by_enumeration(baseline):
    dist = E.Bernoulli(jnp.array([0.3, -1.0, 0.8]))
    w = jnp.array([1.0, -2.0, 0.5])
    f = lambda b: (jnp.dot(b, w) - 0.45) ** 2 + b[0] * b[2]
    est = E.score_function(jax.random.PRNGKey(2), f, dist, 4000, baseline=baseline)
    assert_unbiased(est.per_sample, exact_by_enumeration(dist, bernoulli_states(3), f))


def test_bernoulli_toy_closed_form():
    t = 0.45
    dist = E.Bernoulli(jnp.zeros(1))
    f = lambda b: jnp.sum((b - t) ** 2)
    est = E.score_function(jax.random.PRNGKey(3), f, dist, 4000)
    p = 0.5
    exact = p * (1 - p) * ((1 - t) ** 2 - t**2)
    assert_unbiased(est.per_sample, E.Bernoulli(jnp.array([exact])))
    # ORACLES: single-sample REINFORCE variance ((1-t)^4 + t^4)/8 - Delta^2/16 = 0.01594.
    assert_variance(est.per_sample.logits, exact, ((1 - t) ** 4 + t**4) / 8 - (1 - 2 * t) ** 2 / 16)


@pytest.mark.parametrize("baseline", [None, "mean"])
def test_categorical_unbiased_by_enumeration(baseline):
    dist = E.Categorical(jnp.array([[0.2, -0.4, 1.0], [0.0, 0.5, -1.0]]))
    c = jnp.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    f = lambda x: jnp.sum(x * c) ** 2
    est = E.score_function(jax.random.PRNGKey(4), f, dist, 4000, baseline=baseline)
    assert_unbiased(est.per_sample, exact_by_enumeration(dist, categorical_states((2, 3)), f))


def test_categorical_single_variable_formula():
    # grad_logits E f = p * (f - E f) with f given over the classes (ORACLES.md).
    logits = jnp.array([0.3, -0.2, 1.1, 0.0])
    fvals = jnp.array([1.0, 4.0, -2.0, 0.5])
    p = jax.nn.softmax(logits)
    est = E.score_function(jax.random.PRNGKey(5), lambda x: jnp.dot(x, fvals), E.Categorical(logits), 4000)
    assert_unbiased(est.per_sample, E.Categorical(p * (fvals - jnp.dot(p, fvals))))


@pytest.mark.parametrize("baseline", [None, "optimal"])
def test_poisson_unbiased_by_pmf_sum(baseline):
    dist = E.Poisson(jnp.log(jnp.array([2.0, 0.7])))
    f = lambda x: jnp.sqrt(1.0 + x[0] * x[1]) + x[0] ** 2
    est = E.score_function(jax.random.PRNGKey(6), f, dist, 4000, baseline=baseline)
    assert_unbiased(est.per_sample, exact_by_enumeration(dist, poisson_states(2), f))


# Per-sample variances at mu = 1, sigma = 1, f = x^2 (ORACLES.md); b = E f = 2 gives (18, 96) (Gauss-Hermite).
@pytest.mark.parametrize("baseline,exact_var", [(None, (30.0, 136.0)), ("optimal", (14.0, 64.0)), (2.0, (18.0, 96.0))])
def test_variance_matches_oracle(baseline, exact_var):
    dist = E.Gaussian(jnp.array(1.0), jnp.array(0.0))
    est = E.score_function(jax.random.PRNGKey(7), FUNCS["x2"], dist, 100000, baseline=baseline)
    assert_variance(est.per_sample.mean, 2.0, exact_var[0])
    assert_variance(est.per_sample.log_std, 2.0, exact_var[1])


def test_variance_ordering_optimal_mean_none():
    dist = E.Gaussian(jnp.array(1.0), jnp.array(0.0))
    var = {}
    for b in (None, "mean", "optimal"):
        est = E.score_function(jax.random.PRNGKey(8), FUNCS["x2"], dist, 20000, baseline=b)
        var[b] = [float(jnp.var(leaf)) for leaf in est.per_sample]
    for j in range(2):
        assert var["optimal"][j] < var["mean"][j] < var[None][j]
    # the estimated (leave-one-out) b* reaches the exact optimal variance (14, 64) within sampling error
    assert abs(var["optimal"][0] - 14) < 2 and abs(var["optimal"][1] - 64) < 12


def test_mean_baseline_is_leave_one_out():
    dist, key = gauss2(), jax.random.PRNGKey(9)
    a = E.score_function(key, FUNCS["x3"], dist, 64, baseline="mean")
    b = E.leave_one_out(key, FUNCS["x3"], dist, 64)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6)


@pytest.mark.parametrize("baseline", [None, "mean", "optimal"])
def test_jit_matches_eager(baseline):
    dist, key = gauss2(), jax.random.PRNGKey(10)
    jitted = jax.jit(E.score_function, static_argnames=("f", "num_samples", "baseline"))
    a = jitted(key, f=FUNCS["cos"], dist=dist, num_samples=128, baseline=baseline)
    b = E.score_function(key, FUNCS["cos"], dist, 128, baseline=baseline)
    for x, y in zip(jax.tree_util.tree_leaves(a.grad), jax.tree_util.tree_leaves(b.grad)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    assert int(a.num_evals) == 128


def test_unknown_baseline_rejected():
    with pytest.raises(ValueError, match="baseline"):
        E.score_function(jax.random.PRNGKey(0), FUNCS["x2"], gauss2(), 8, baseline="median")
