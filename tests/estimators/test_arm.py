"""ARM and DisARM against exact Bernoulli gradients and the exact variances of ORACLES.md."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

Z = 4.5
N = 4000


def toy(t):
    return lambda b: jnp.sum((b - t) ** 2)


def toy_exact(phi, t):
    p = jax.nn.sigmoid(phi)
    return p * (1 - p) * ((1 - t) ** 2 - t**2)


W = jnp.array([0.7, -1.2, 0.4, 1.5, -0.3])


def multi_f(b):
    """A non-separable f over {0,1}^5."""
    return (W @ b - 0.6) ** 2 + jnp.sin(3.0 * b[0] * b[1] + b[2]) - b[3] * b[4]


MULTI_LOGITS = jnp.array([0.3, -1.0, 0.8, 1.7, -0.4])


def exact_by_enumeration(dist, f):
    """grad_logits sum_b p(b) f(b) over all 2^D states."""
    d = dist.logits.shape[0]
    states = jnp.array(list(itertools.product([0.0, 1.0], repeat=d)))
    fx = jax.vmap(f)(states)
    return jax.grad(lambda dd: jnp.sum(jnp.exp(jax.vmap(dd.log_prob)(states)) * fx))(dist).logits


def assert_unbiased(per, exact, atol=0.0):
    per = np.asarray(per, np.float64)
    se = per.std(0, ddof=1) / np.sqrt(per.shape[0])
    np.testing.assert_array_less(np.abs(per.mean(0) - np.asarray(exact)), Z * se + atol)


@pytest.mark.parametrize("name", ["arm", "disarm"])
@pytest.mark.parametrize("t", [0.45, 0.499])
@pytest.mark.parametrize("phi", [0.0, 1.3, -2.0])
def test_toy_unbiased(name, t, phi):
    est = E.REGISTRY[name](jax.random.PRNGKey(3), toy(t), E.Bernoulli(jnp.asarray(phi)), N)
    assert est.num_evals == 2 * N
    assert est.per_sample.logits.shape == (N,)
    np.testing.assert_allclose(est.grad.logits, est.per_sample.logits.mean(0), rtol=1e-5, atol=1e-9)
    # DisARM has zero variance at phi = 0 (exactly the gradient every time), so allow float rounding.
    assert_unbiased(est.per_sample.logits, toy_exact(phi, t), atol=1e-7)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_multivariate_unbiased_by_enumeration(name):
    dist = E.Bernoulli(MULTI_LOGITS)
    est = E.REGISTRY[name](jax.random.PRNGKey(4), multi_f, dist, N)
    assert est.per_sample.logits.shape == (N, 5) and est.num_evals == 2 * N
    assert_unbiased(est.per_sample.logits, exact_by_enumeration(dist, multi_f))


def test_a_wrong_sign_would_fail():
    """The z-test has power: the negated exact gradient is rejected."""
    dist = E.Bernoulli(MULTI_LOGITS)
    per = np.asarray(E.arm(jax.random.PRNGKey(4), multi_f, dist, N).per_sample.logits, np.float64)
    se = per.std(0, ddof=1) / np.sqrt(N)
    assert np.any(np.abs(per.mean(0) + np.asarray(exact_by_enumeration(dist, multi_f))) > Z * se)


def test_exact_variances_at_phi0():
    """ORACLES.md: at phi = 0, t = 0.45, Var(ARM) = Delta^2 / 48 = 2.08e-4 and Var(DisARM) = 0."""
    t = 0.45
    delta = 1 - 2 * t
    dist = E.Bernoulli(jnp.asarray(0.0))
    arm = np.asarray(E.arm(jax.random.PRNGKey(5), toy(t), dist, N).per_sample.logits, np.float64)
    q = (arm - delta / 4) ** 2  # exact mean p(1-p) Delta = Delta / 4
    se = q.std(ddof=1) / np.sqrt(N)
    assert abs(q.mean() - delta**2 / 48) < Z * se, (q.mean(), delta**2 / 48)
    assert abs(delta**2 / 48 - 2.08e-4) < 1e-6
    dis = np.asarray(E.disarm(jax.random.PRNGKey(5), toy(t), dist, N).per_sample.logits, np.float64)
    assert np.max(np.abs(dis - delta / 4)) < 1e-7


def test_disarm_variance_not_above_arm_multivariate():
    dist = E.Bernoulli(MULTI_LOGITS)
    key = jax.random.PRNGKey(6)
    v_arm = np.asarray(E.arm(key, multi_f, dist, N).per_sample.logits).var(0)
    v_dis = np.asarray(E.disarm(key, multi_f, dist, N).per_sample.logits).var(0)
    assert np.all(v_dis <= v_arm * 1.05), (v_dis, v_arm)
    assert v_dis.sum() < 0.8 * v_arm.sum()


def test_jit_and_registry_metadata():
    for name in ("arm", "disarm"):
        fn = E.REGISTRY[name]
        assert fn.meta["supports"] == ("bernoulli",) and fn.meta["unbiased"] and not fn.meta["needs_grad_f"]
        est = jax.jit(lambda k, d, fn=fn: fn(k, toy(0.45), d, 8))(jax.random.PRNGKey(0), E.Bernoulli(jnp.zeros(3)))
        assert est.grad.logits.shape == (3,)
