"""Pathwise (reparameterization) estimator against closed forms and the ORACLES variances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

from esrun_helpers.oracles import (
    FUNCS,
    assert_unbiased,
    assert_variance,
    exact_gaussian,
    gauss2,
)


@pytest.mark.parametrize("fname", ["x2", "x3", "cos"])
def test_unbiased(fname):
    dist = gauss2()
    est = E.pathwise(jax.random.PRNGKey(20), FUNCS[fname], dist, 4000)
    assert est.num_evals == 4000
    assert_unbiased(est.per_sample, exact_gaussian(dist, fname))


def test_variance_oracle_mu1_sigma1():
    est = E.pathwise(jax.random.PRNGKey(21), FUNCS["x2"], E.Gaussian(jnp.array(1.0), jnp.array(0.0)), 20000)
    assert_variance(est.per_sample.mean, 2.0, 4.0)
    assert_variance(est.per_sample.log_std, 2.0, 12.0)


@pytest.mark.parametrize("shift", [-3.0, 0.0, 5.0])
def test_mean_variance_is_4_sigma2_for_every_shift(shift):
    sigma = 0.7
    dist = E.Gaussian(jnp.array(0.4), jnp.log(jnp.array(sigma)))
    est = E.pathwise(jax.random.PRNGKey(22), lambda x: (x - shift) ** 2, dist, 20000)
    assert_variance(est.per_sample.mean, 2 * (0.4 - shift), 4 * sigma**2)


@pytest.mark.parametrize("fname", ["x2", "x3"])
@pytest.mark.parametrize("baseline", [None, "optimal"])
def test_beats_score_function_on_smooth_f(fname, baseline):
    # (On a bounded, oscillating f such as cos(1.3 x) the optimal-baseline score function can win a coordinate.)
    dist, key = gauss2(), jax.random.PRNGKey(23)
    pw = E.pathwise(key, FUNCS[fname], dist, 4000)
    sf = E.score_function(key, FUNCS[fname], dist, 4000, baseline=baseline)
    for a, b in zip(jax.tree_util.tree_leaves(pw.per_sample), jax.tree_util.tree_leaves(sf.per_sample)):
        assert np.all(np.asarray(a.var(0)) < 0.5 * np.asarray(b.var(0)))


def test_pytree_shape_and_jit():
    dist = E.Gaussian(jnp.arange(6.0).reshape(2, 3) / 4, jnp.full((2, 3), -0.5))
    key = jax.random.PRNGKey(24)
    jitted = jax.jit(E.pathwise, static_argnames=("f", "num_samples"))
    a = jitted(key, f=FUNCS["x2"], dist=dist, num_samples=16)
    b = E.pathwise(key, FUNCS["x2"], dist, 16)
    assert b.grad.mean.shape == (2, 3) and b.per_sample.log_std.shape == (16, 2, 3)
    np.testing.assert_allclose(a.grad.mean, b.grad.mean, rtol=1e-5)
    assert int(a.num_evals) == 16
