"""Oracles of the estimator tests: z-tests of unbiasedness and variance against exact values, the closed-form
gradients of ORACLES.md for f(x) = sum_j g(x_j) under a Gaussian, and exact gradients by enumerating a finite support.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from esrun import estimators as E

Z = 4.5


def assert_unbiased(per_sample, exact):
    """z-test of every coordinate of every leaf: |mean - exact| < 4.5 standard errors of the sample."""
    for p, e in zip(jax.tree_util.tree_leaves(per_sample), jax.tree_util.tree_leaves(exact)):
        p, e = np.asarray(p, np.float64), np.asarray(e, np.float64)
        se = p.std(0, ddof=1) / np.sqrt(p.shape[0])
        assert np.all(se > 0)
        np.testing.assert_array_less(np.abs(p.mean(0) - e), Z * se)


def assert_variance(per_sample_leaf, exact_mean, exact_var):
    """E[(g - exact_mean)^2] = exact_var, z-tested with the sample's own spread of squared deviations."""
    q = (np.asarray(per_sample_leaf, np.float64) - exact_mean) ** 2
    se = q.std(ddof=1) / np.sqrt(q.size)
    # the 1e-6 relative slack only matters when (g - exact)^2 is constant (e.g. Bernoulli at p = 1/2)
    assert abs(q.mean() - exact_var) < Z * se + 1e-6 * abs(exact_var), (q.mean(), exact_var, se)


def gauss2():
    return E.Gaussian(jnp.array([1.0, -0.5]), jnp.log(jnp.array([1.0, 0.7])))


def exact_gaussian(dist, fname):
    """Closed forms of ORACLES.md for f(x) = sum_j g(x_j); the log_std gradient is sigma * d/dsigma."""
    mu, s = dist.mean, dist.std
    k = 1.3
    if fname == "x2":
        return E.Gaussian(2 * mu, s * 2 * s)
    if fname == "x3":
        return E.Gaussian(3 * mu**2 + 3 * s**2, s * 6 * mu * s)
    damp = jnp.exp(-(k**2) * s**2 / 2)
    return E.Gaussian(-k * jnp.sin(k * mu) * damp, s * jnp.cos(k * mu) * damp * (-(k**2) * s))


FUNCS = {"x2": lambda x: jnp.sum(x**2), "x3": lambda x: jnp.sum(x**3), "cos": lambda x: jnp.sum(jnp.cos(1.3 * x))}


def exact_by_enumeration(dist, states, f):
    """grad of sum_x p(x) f(x) over an explicit list of states (exact for finite supports)."""
    fx = jax.vmap(f)(states)
    return jax.grad(lambda d: jnp.sum(jnp.exp(jax.vmap(d.log_prob)(states)) * fx))(dist)


def bernoulli_states(d):
    return jnp.array(list(itertools.product([0.0, 1.0], repeat=d)))


def categorical_states(shape):
    n_vars, k = shape
    eye = np.eye(k)
    return jnp.array([np.stack([eye[i] for i in combo]) for combo in itertools.product(range(k), repeat=n_vars)])


def poisson_states(d, top=40):
    return jnp.array(list(itertools.product(range(top), repeat=d)), jnp.float32)
