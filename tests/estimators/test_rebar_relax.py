"""REBAR and RELAX: unbiasedness against exact gradients, variance gradients, and the t = 0.499 toy."""
import functools
import importlib.util
import itertools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

Z = 4.5
N = 2000
W = jnp.array([0.7, -1.2, 0.4, 1.5, -0.3])
MULTI_LOGITS = jnp.array([0.3, -1.0, 0.8, 1.7, -0.4])


@functools.cache
def toy(t):
    """One function object per t, so that jitted estimators compile once per t."""
    return lambda b: jnp.sum((b - t) ** 2)


def toy_exact(phi, t):
    p = jax.nn.sigmoid(phi)
    return p * (1 - p) * (1 - 2 * t)


def multi_f(b):
    """Non-separable and smooth, so that it also takes relaxed inputs."""
    return (W @ b - 0.6) ** 2 + jnp.sin(3.0 * b[0] * b[1] + b[2]) - b[3] * b[4]


def exact_by_enumeration(dist, f):
    states = jnp.array(list(itertools.product([0.0, 1.0], repeat=dist.logits.shape[0])))
    fx = jax.vmap(f)(states)
    return jax.grad(lambda d: jnp.sum(jnp.exp(jax.vmap(d.log_prob)(states)) * fx))(dist).logits


def assert_unbiased(per, exact):
    per = np.asarray(per, np.float64)
    se = per.std(0, ddof=1) / np.sqrt(per.shape[0])
    assert np.all(se > 0)
    np.testing.assert_array_less(np.abs(per.mean(0) - np.asarray(exact)), Z * se)


def random_mlp_cv(key, shape, hidden=(8,)):
    """The default MLP control variate with a non-zero (random) output layer, so c_phi is not trivial."""
    cv = E.mlp_control_variate(hidden)
    params = cv.init(key, shape)
    params[-1]["w"] = jax.random.normal(jax.random.fold_in(key, 1), params[-1]["w"].shape)
    params[-1]["b"] = jnp.array([0.3])
    return cv, params


@pytest.mark.parametrize("t", [0.45, 0.499])
@pytest.mark.parametrize("phi,eta,temp", [(0.0, 1.0, 0.5), (1.3, 0.3, 0.2), (-2.0, 2.0, 1.0)])
def test_rebar_toy_unbiased(t, phi, eta, temp):
    est = E.rebar(jax.random.PRNGKey(7), toy(t), E.Bernoulli(jnp.asarray(phi)), N, eta=eta, temperature=temp)
    assert est.num_evals == 3 * N
    assert_unbiased(est.per_sample.logits, toy_exact(phi, t))


def test_rebar_multivariate_unbiased():
    dist = E.Bernoulli(MULTI_LOGITS)
    est = E.rebar(jax.random.PRNGKey(8), multi_f, dist, N, eta=0.7, temperature=0.3)
    assert est.per_sample.logits.shape == (N, 5)
    assert_unbiased(est.per_sample.logits, exact_by_enumeration(dist, multi_f))


@pytest.mark.parametrize("t", [0.45, 0.499])
@pytest.mark.parametrize("cv_kind", ["mlp", "rebar_mlp"])
def test_relax_toy_unbiased(t, cv_kind):
    phi = 0.8
    f = toy(t)
    if cv_kind == "mlp":
        cv, params = random_mlp_cv(jax.random.PRNGKey(1), ())
    else:
        cv = E.rebar_mlp_control_variate(f, eta=1.5, temperature=0.4)
        params = cv.init(jax.random.PRNGKey(1), ())
    est = E.relax(jax.random.PRNGKey(9), f, E.Bernoulli(jnp.asarray(phi)), N, cv, params)
    assert est.num_evals == N * (1 + 2 * cv.f_evals)
    assert_unbiased(est.per_sample.logits, toy_exact(phi, t))


def test_relax_multivariate_unbiased_and_variance_grad_shape():
    dist = E.Bernoulli(MULTI_LOGITS)
    cv, params = random_mlp_cv(jax.random.PRNGKey(2), (5,))
    est, cv_grad = E.relax(jax.random.PRNGKey(10), multi_f, dist, N, cv, params, return_cv_grad=True)
    assert_unbiased(est.per_sample.logits, exact_by_enumeration(dist, multi_f))
    assert jax.tree.structure(cv_grad) == jax.tree.structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(cv_grad))


def test_relax_registry_example_options():
    fn = E.REGISTRY["relax"]
    assert fn.meta["unbiased"] and fn.meta["supports"] == ("bernoulli",)
    dist = E.Bernoulli(MULTI_LOGITS)
    est = fn(jax.random.PRNGKey(0), multi_f, dist, 16, **fn.meta["example_options"](dist))
    assert est.grad.logits.shape == (5,) and est.num_evals == 16
    assert E.REGISTRY["rebar"].meta["needs_grad_f"] and E.REGISTRY["rebar"].meta["unbiased"]


def test_rebar_variance_grad_matches_finite_differences():
    """d/d(eta, log lambda) of mean_s ||g_s||^2 at a fixed key against central differences (float64-free check)."""
    key, dist, f = jax.random.PRNGKey(11), E.Bernoulli(jnp.asarray(0.4)), toy(0.3)
    _, (d_eta, d_lt) = E.rebar_with_variance_grad(key, f, dist, 300, 0.8, jnp.log(0.5))

    def m2(eta, lt):
        per = E.rebar(key, f, dist, 300, eta=eta, temperature=jnp.exp(lt)).per_sample.logits
        return float(jnp.mean(per.astype(jnp.float32) ** 2))

    h = 1e-2
    fd_eta = (m2(0.8 + h, jnp.log(0.5)) - m2(0.8 - h, jnp.log(0.5))) / (2 * h)
    fd_lt = (m2(0.8, jnp.log(0.5) + h) - m2(0.8, jnp.log(0.5) - h)) / (2 * h)
    np.testing.assert_allclose([d_eta, d_lt], [fd_eta, fd_lt], rtol=0.05, atol=1e-5)


def _load_bench():
    path = pathlib.Path(__file__).resolve().parents[2] / "bench" / "rebar_relax_toy.py"
    spec = importlib.util.spec_from_file_location("rebar_relax_toy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_toy_reduced_budget():
    """t = 0.499, one sample per step, Adam(0.01): RELAX learns a control variate that cuts the variance by
    orders of magnitude and moves the logit down (the optimum is phi -> -inf); REBAR's tuned variance is no larger
    than REINFORCE's."""
    bench = _load_bench()
    steps = 400
    key = jax.random.PRNGKey(0)
    vkey = jax.random.PRNGKey(123)
    run, variance = bench.make_trainer("relax", steps)
    phis, auxs = run(key)
    last = jax.tree.map(lambda a: a[-1], auxs)
    assert float(phis[-1]) < -0.02 and float(phis[-1]) < float(phis[steps // 2]) < float(phis[0])
    _, var_reinforce = bench.make_trainer("reinforce", 1)
    v_reinforce = var_reinforce(vkey, 0.0, ())
    v_relax = variance(vkey, float(phis[-1]), last)
    assert v_relax < 0.05 * v_reinforce, (v_relax, v_reinforce)
    run_rebar, var_rebar = bench.make_trainer("rebar", steps)
    _, rebar_aux = run_rebar(key)
    v_rebar = var_rebar(vkey, 0.0, jax.tree.map(lambda a: a[-1], rebar_aux))
    v_rebar0 = var_rebar(vkey, 0.0, (jnp.asarray(1.0), jnp.log(jnp.asarray(0.5))))
    assert v_relax < v_rebar <= 1.05 * v_reinforce and v_rebar <= v_rebar0, (v_rebar, v_rebar0, v_reinforce)
