"""Gumbel-softmax / Gumbel-sigmoid: exact sampling frequencies, the bias trend in tau, and numerical safety."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

Z = 4.5
N = 20000


def test_gumbel_max_frequencies():
    """P(argmax(logits + G) = i) = softmax(logits)_i (hard=True returns that one-hot)."""
    logits = jnp.array([1.0, -0.5, 0.3, 2.0])
    keys = jax.random.split(jax.random.PRNGKey(0), N)
    y = jax.vmap(lambda k: E.gumbel_softmax(k, logits, 0.7, hard=True))(keys)
    assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(np.asarray(y).sum(-1), 1.0)
    freq, p = np.asarray(y).mean(0), np.asarray(jax.nn.softmax(logits))
    np.testing.assert_array_less(np.abs(freq - p), Z * np.sqrt(p * (1 - p) / N))
    # wrong probabilities are rejected
    assert np.any(np.abs(freq - np.full(4, 0.25)) > Z * np.sqrt(p * (1 - p) / N))


def test_binary_frequencies():
    """P(phi + Logistic > 0) = sigmoid(phi)."""
    phi = jnp.array([-1.5, 0.0, 0.8])
    keys = jax.random.split(jax.random.PRNGKey(1), N)
    y = np.asarray(jax.vmap(lambda k: E.gumbel_sigmoid(k, phi, 0.5, hard=True))(keys))
    p = np.asarray(jax.nn.sigmoid(phi))
    np.testing.assert_array_less(np.abs(y.mean(0) - p), Z * np.sqrt(p * (1 - p) / N))


def test_hard_forward_matches_soft_argmax_and_backward_is_soft():
    logits = jnp.array([[0.2, 1.0, -0.4], [3.0, 0.0, 0.1]])
    key = jax.random.PRNGKey(2)
    soft = E.gumbel_softmax(key, logits, 0.5)
    hard = E.gumbel_softmax(key, logits, 0.5, hard=True)
    np.testing.assert_array_equal(hard, jax.nn.one_hot(jnp.argmax(soft, -1), 3))
    w = jnp.array([1.0, -1.0, 2.0])
    g_soft = jax.grad(lambda l: jnp.sum(E.gumbel_softmax(key, l, 0.5) @ w))(logits)
    g_hard = jax.grad(lambda l: jnp.sum(E.gumbel_softmax(key, l, 0.5, hard=True) @ w))(logits)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)


def test_gumbel_softmax_bias_shrinks_with_temperature():
    """grad_logits E f over the exact categorical (p * (f - E f)) against the mean Gumbel-softmax pathwise gradient:
    biased at every tau > 0, and the bias falls as tau falls (common random numbers across tau)."""
    logits = jnp.array([0.5, -0.3, 1.0])
    c, w = jnp.array([1.0, -2.0, 0.5]), jnp.array([2.0, 0.0, -1.0])
    f = lambda y: c @ y + (w @ y) ** 2
    fx = jax.vmap(f)(jnp.eye(3))
    p = jax.nn.softmax(logits)
    exact = np.asarray(p * (fx - p @ fx))
    u = jax.random.uniform(jax.random.PRNGKey(3), (N, 3))
    biases, ses = [], []
    for tau in (2.0, 1.0, 0.5, 0.1):
        g = jax.vmap(lambda uu, tau=tau: jax.grad(lambda l: f(E.gumbel_softmax(None, l, tau, u=uu)))(logits))(u)
        g = np.asarray(g, np.float64)
        biases.append(np.linalg.norm(g.mean(0) - exact))
        ses.append(np.linalg.norm(g.std(0, ddof=1) / np.sqrt(N)))
    assert all(b1 > b2 for b1, b2 in zip(biases, biases[1:])), biases
    assert biases[0] > 50 * ses[0] and biases[0] > 5 * biases[-1], (biases, ses)


@pytest.mark.parametrize("hard", [False, True])
def test_no_nan_at_extremes(hard):
    """tau = 1e-6, logits +-1e4, u at exactly 0 and 1: finite values and gradients (logits and temperature)."""
    logits = jnp.array([1e4, -1e4, 0.0, 3.0])
    for tau in (1e-6, 1.0):
        for u in (jnp.zeros(4), jnp.ones(4), jnp.array([0.0, 1.0, 0.5, 1.0]), None):
            key = jax.random.PRNGKey(4)
            for fn in (E.gumbel_softmax, E.gumbel_sigmoid):
                y = fn(key, logits, tau, hard=hard, u=u)
                assert np.all(np.isfinite(np.asarray(y)))
                g_l, g_t = jax.grad(lambda l, t, fn=fn, key=key, u=u: jnp.sum(fn(key, l, t, hard=hard, u=u)
                                                                        * jnp.arange(4.0)),
                                    argnums=(0, 1))(logits, tau)
                assert np.all(np.isfinite(np.asarray(g_l))) and np.isfinite(float(g_t)), (fn, tau, u)


def test_layers_registry():
    for name in ("gumbel_softmax", "gumbel_sigmoid"):
        assert name in E.LAYERS and E.LAYERS[name].meta["unbiased"] is False
