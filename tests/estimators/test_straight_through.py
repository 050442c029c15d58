"""Straight-through: exact hard forward, the surrogate's backward, and its bias on the Bernoulli toy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E
from esrun.estimators.straight_through import SURROGATES, heaviside, one_hot_argmax

Z = 4.5


def test_toy_bias_is_2_p_minus_t():
    """b = H(p - u) ~ Bernoulli(p), f(b) = (b - t)^2: straight-through returns 2 (p - t) in expectation, while the
    true d/dp E f is 1 - 2t (ORACLES.md)."""
    t, p, n = 0.45, float(jax.nn.sigmoid(1.0)), 4000
    st = E.straight_through(heaviside, "identity")
    u = jax.random.uniform(jax.random.PRNGKey(0), (n,))
    g = np.asarray(jax.vmap(lambda uu: jax.grad(lambda pp: (st(pp - uu) - t) ** 2)(p))(u), np.float64)
    se = g.std(ddof=1) / np.sqrt(n)
    assert abs(g.mean() - 2 * (p - t)) < Z * se
    assert abs(g.mean() - (1 - 2 * t)) > 20 * se  # the bias, shown: 0.56 against the true 0.1


def test_forward_is_exactly_hard():
    a = jnp.array([[-0.3, 0.2, 1.5], [2.0, -1.0, 0.0]])
    np.testing.assert_array_equal(E.straight_through("heaviside", "sigmoid")(a), heaviside(a))
    np.testing.assert_array_equal(E.straight_through("argmax", "softmax")(a), one_hot_argmax(a))
    np.testing.assert_array_equal(E.straight_through(jnp.round, "identity")(a), jnp.round(a))


@pytest.mark.parametrize("hard,surrogate", [("heaviside", "identity"), ("heaviside", "sigmoid"),
                                            ("argmax", "softmax")])
def test_backward_is_the_surrogates(hard, surrogate):
    a = jnp.array([[-0.3, 0.2, 1.5], [2.0, -1.0, 0.0]])
    w = jnp.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]])
    got = jax.grad(lambda x: jnp.sum(w * E.straight_through(hard, surrogate)(x)))(a)
    want = jax.grad(lambda x: jnp.sum(w * SURROGATES[surrogate](x)))(a)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.any(np.asarray(got) != 0)


def test_registered_as_layer_and_jit():
    assert E.LAYERS["straight_through"] is E.straight_through
    assert E.LAYERS["straight_through"].meta["unbiased"] is False
    fn = jax.jit(jax.grad(lambda x: jnp.sum(E.straight_through("heaviside", "sigmoid")(x))))
    np.testing.assert_allclose(fn(jnp.zeros(2)), [0.25, 0.25])
