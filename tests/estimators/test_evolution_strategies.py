"""Evolution strategies: exact smoothing of quadratics, antithetic covariance, the two forms, registry entry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

Z = 4.5
A = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])
B = jnp.array([1.0, -1.0, 0.5])
MU = jnp.array([1.0, -2.0, 0.5])


def quadratic(x):
    return x @ A @ x + B @ x


def sphere(x):
    return jnp.sum(x**2)


@pytest.mark.parametrize("antithetic", [True, False])
@pytest.mark.parametrize("sigma", [0.05, 1.0, 4.0])
def test_smoothing_a_quadratic_gives_2A_mu_plus_b(sigma, antithetic):
    est = E.evolution_strategies(jax.random.PRNGKey(40), quadratic, MU, sigma, 4000, antithetic=antithetic)
    p = np.asarray(est.per_sample, np.float64)
    se = p.std(0, ddof=1) / np.sqrt(p.shape[0])
    exact = np.asarray(2 * A @ MU + B)
    np.testing.assert_array_less(np.abs(p.mean(0) - exact), Z * se)
    assert est.num_evals == (8000 if antithetic else 4000)
    if antithetic:  # f is even-plus-linear around mu: the pair kills f(mu) and all even terms; error ~ sigma-free
        assert np.all(se < 1.0)


@pytest.mark.parametrize("sigma", [0.01, 0.5, 3.0])
def test_antithetic_pair_covariance_trace_is_84(sigma):
    """f = ||x||^2: per-pair covariance 4 (||mu||^2 I + mu mu^T), trace 84 at mu = (1, -2, 0.5), any sigma."""
    est = E.evolution_strategies(jax.random.PRNGKey(41), sphere, MU, sigma, 20000)
    q = np.sum((np.asarray(est.per_sample, np.float64) - 2 * np.asarray(MU)) ** 2, axis=1)
    assert abs(q.mean() - 84.0) < Z * q.std(ddof=1) / np.sqrt(q.size)


def test_antithetic_beats_plain_and_plain_explodes_as_sigma_shrinks():
    key = jax.random.PRNGKey(42)
    trace = {}
    for sigma in (0.01, 0.1):
        for anti in (True, False):
            est = E.evolution_strategies(key, quadratic, MU, sigma, 4000, antithetic=anti)
            # variance of one estimate per evaluation spent
            trace[sigma, anti] = float(jnp.sum(est.per_sample.var(0))) * (2 if anti else 1)
    for sigma in (0.01, 0.1):
        assert trace[sigma, True] < trace[sigma, False] / 10
    assert trace[0.01, False] > 50 * trace[0.1, False]  # ~ f(mu)^2 d / sigma^2
    assert trace[0.01, True] < 2 * trace[0.1, True]


@pytest.mark.parametrize("antithetic", [True, False])
def test_standardized_and_scaled_forms_agree(antithetic):
    key, sigma = jax.random.PRNGKey(43), jnp.array([0.3, 0.1, 2.0])
    f = lambda x: jnp.sum(jnp.sin(3 * x)) + x[0] * x[2]
    a = E.evolution_strategies(key, f, MU, sigma, 256, antithetic=antithetic, form="standardized")
    b = E.evolution_strategies(key, f, MU, sigma, 256, antithetic=antithetic, form="scaled")
    # same evaluation points; the two formulas differ only by floating-point rounding
    np.testing.assert_allclose(a.per_sample, b.per_sample, rtol=1e-5, atol=1e-6)
    assert a.num_evals == b.num_evals
    with pytest.raises(ValueError):
        E.evolution_strategies(key, f, MU, sigma, 4, form="natural")


def test_jit_with_traced_sigma_and_matrix_mean():
    mean = jnp.arange(6.0).reshape(2, 3) / 5
    f = lambda x: jnp.sum(x**2) + x[0, 1] * x[1, 2]
    fn = jax.jit(E.evolution_strategies, static_argnames=("f", "num_samples", "antithetic", "form"))
    key = jax.random.PRNGKey(44)
    a = fn(key, f=f, mean=mean, sigma=jnp.float32(0.2), num_samples=64, antithetic=True, form="scaled")
    b = E.evolution_strategies(key, f, mean, 0.2, 64, form="scaled")
    assert a.grad.shape == (2, 3) and a.per_sample.shape == (64, 2, 3)
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    assert int(a.num_evals) == 128


def test_registry_entry_is_mean_only():
    fn = E.REGISTRY["evolution_strategies"]
    assert fn.meta["supports"] == ("gaussian",) and fn.meta["estimates"] == ("mean",)
    dist, key = E.Gaussian(MU, jnp.log(jnp.array([0.3, 0.3, 0.3]))), jax.random.PRNGKey(45)
    est = fn(key, quadratic, dist, 128, antithetic=True)
    ref = E.evolution_strategies(key, quadratic, MU, dist.std, 128)
    np.testing.assert_array_equal(est.grad.mean, ref.grad)
    np.testing.assert_array_equal(est.grad.log_std, jnp.zeros(3))
    assert est.per_sample.log_std.shape == (128, 3)
    assert est.num_evals == 256
