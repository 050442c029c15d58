"""RLOO estimator: unbiasedness against exact gradients, the Bernoulli toy variance, num_evals, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E
from esrun.estimators.leave_one_out import leave_one_out_mean

from esrun_helpers.oracles import (
    FUNCS,
    assert_unbiased,
    bernoulli_states,
    categorical_states,
    exact_by_enumeration,
    exact_gaussian,
    gauss2,
)

Z = 4.5


def test_leave_one_out_mean():
    v = jnp.array([1.0, 2.0, 4.0, 8.0])
    np.testing.assert_allclose(leave_one_out_mean(v), [14 / 3, 13 / 3, 11 / 3, 7 / 3], rtol=1e-6)
    with pytest.raises(ValueError):
        leave_one_out_mean(v[:1])


@pytest.mark.parametrize("fname", ["x3", "cos"])
def test_gaussian_unbiased(fname):
    dist = gauss2()
    est = E.leave_one_out(jax.random.PRNGKey(11), FUNCS[fname], dist, 4000)
    assert est.num_evals == 4000
    assert_unbiased(est.per_sample, exact_gaussian(dist, fname))


def test_bernoulli_and_categorical_unbiased():
    b = E.Bernoulli(jnp.array([0.3, -1.0, 0.8]))
    fb = lambda x: (jnp.dot(x, jnp.array([1.0, -2.0, 0.5])) - 0.45) ** 2
    est = E.leave_one_out(jax.random.PRNGKey(12), fb, b, 4000)
    assert_unbiased(est.per_sample, exact_by_enumeration(b, bernoulli_states(3), fb))
    c = E.Categorical(jnp.array([[0.2, -0.4, 1.0], [0.0, 0.5, -1.0]]))
    fc = lambda x: jnp.sum(x * jnp.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])) ** 2
    est = E.leave_one_out(jax.random.PRNGKey(13), fc, c, 4000)
    assert_unbiased(est.per_sample, exact_by_enumeration(c, categorical_states((2, 3)), fc))


def _repeat(estimator, f, dist, n, reps, key):
    keys = jax.random.split(key, reps)
    return jax.vmap(lambda k: estimator(k, f, dist, n).grad.logits)(keys)


def test_bernoulli_toy_rloo_beats_reinforce_at_equal_budget():
    """phi = 0, t = 0.45: two-sample RLOO variance Delta^2/16 = 6.25e-4 vs REINFORCE 0.01594 per sample."""
    t = 0.45
    dist = E.Bernoulli(jnp.zeros(1))
    f = lambda b: jnp.sum((b - t) ** 2)
    exact_grad = 0.25 * ((1 - t) ** 2 - t**2)
    rloo = np.asarray(_repeat(E.leave_one_out, f, dist, 2, 20000, jax.random.PRNGKey(14)), np.float64)[:, 0]
    reinforce = np.asarray(_repeat(E.score_function, f, dist, 1, 20000, jax.random.PRNGKey(15)), np.float64)[:, 0]
    for g, exact_var in ((rloo, (1 - 2 * t) ** 2 / 16), (reinforce, ((1 - t) ** 4 + t**4) / 8 - (1 - 2 * t) ** 2 / 16)):
        q = (g - exact_grad) ** 2
        assert abs(q.mean() - exact_var) < Z * q.std(ddof=1) / np.sqrt(q.size) + 1e-9
    # equal budget: one RLOO estimate (2 evaluations) against the mean of two REINFORCE samples
    assert rloo.var() < reinforce.var() / 2 / 5


def test_jit_and_num_evals():
    dist, key = gauss2(), jax.random.PRNGKey(16)
    jitted = jax.jit(E.leave_one_out, static_argnames=("f", "num_samples"))
    a = jitted(key, f=FUNCS["x3"], dist=dist, num_samples=32)
    b = E.leave_one_out(key, FUNCS["x3"], dist, 32)
    for x, y in zip(jax.tree_util.tree_leaves(a.grad), jax.tree_util.tree_leaves(b.grad)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    assert b.num_evals == 32 and int(a.num_evals) == 32
    with pytest.raises(ValueError):
        E.leave_one_out(key, FUNCS["x3"], dist, 1)
