"""I-MLE and AIMLE: exact finite-difference expectations for k = 1, the lambda -> 0 limit, the adaptive lambda,
and perturb-and-MAP over top-3-of-8 against the enumerated 56-state distribution."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from esrun import estimators as E
from esrun.estimators.imle import NOISES

Z = 4.5
THETA = jnp.array([0.5, -0.3, 1.0, 0.0])
C = jnp.array([1.0, -2.0, 0.5, 0.3])


def argmax_solver(s):
    return E.solvers.top_k(s, 1)


def per_sample_grads(layer_fn, n, seed=0):
    """Single-perturbation I-MLE gradients of the linear loss C^T z, one per key: [n, 4]."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return np.asarray(jax.vmap(lambda k: jax.grad(lambda th: layer_fn(th, k)[0] @ C)(THETA))(keys), np.float64)


def test_imle_k1_expectation_and_lambda_limit():
    """With Gumbel noise MAP(theta + G) ~ Categorical(softmax theta), so E[estimate] = (mu(theta) - mu(theta -
    lambda c)) / lambda exactly (z-test); that tends to (diag p - p p^T) c as lambda -> 0, and the Monte Carlo
    error to the limit falls with lambda."""
    p = jax.nn.softmax(THETA)
    limit = np.asarray((jnp.diag(p) - jnp.outer(p, p)) @ C)
    errors = []
    for lam in (1.0, 0.3, 0.1):
        per = per_sample_grads(E.imle(argmax_solver, num_samples=1, lam=lam), 20000)
        fd = np.asarray((p - jax.nn.softmax(THETA - lam * C)) / lam)
        se = per.std(0, ddof=1) / np.sqrt(len(per))
        np.testing.assert_array_less(np.abs(per.mean(0) - fd), Z * se + 1e-7)
        errors.append(np.linalg.norm(per.mean(0) - limit))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.06 and errors[0] > 2 * errors[2]


def test_imle_scaling_and_samples_convention():
    """S samples with the loss averaged over them reproduce the mean of S single-sample estimates; without the
    1/lambda scaling the estimate is lambda times smaller."""
    layer = E.imle(argmax_solver, num_samples=64, lam=0.5)
    g = jax.grad(lambda th: jnp.mean(layer(th, jax.random.PRNGKey(1)) @ C))(THETA)
    eps = NOISES["gumbel"](jax.random.PRNGKey(1), (64, 4), 1, 1.0, 10)
    z = jax.vmap(argmax_solver)(THETA + eps)
    z_target = jax.vmap(argmax_solver)(THETA - 0.5 * C + eps)
    np.testing.assert_allclose(g, (z - z_target).mean(0) / 0.5, rtol=1e-6, atol=1e-7)
    unscaled = E.imle(argmax_solver, num_samples=64, lam=0.5, scale_by_lambda=False)
    g2 = jax.grad(lambda th: jnp.mean(unscaled(th, jax.random.PRNGKey(1)) @ C))(THETA)
    np.testing.assert_allclose(g2, 0.5 * g, rtol=1e-6, atol=1e-7)
    assert layer(THETA, jax.random.PRNGKey(1)).shape == (64, 4)


def test_aimle_centered_expectation():
    """Centered differences: E = (mu(theta + lambda c) - mu(theta - lambda c)) / (2 lambda) for k = 1."""
    lam = 0.4
    a = E.aimle(argmax_solver, num_samples=1, lam_init=lam, centered=True)
    state = a.init()
    per = per_sample_grads(lambda th, k: a.apply(th, k, state), 20000, seed=5)
    fd = np.asarray((jax.nn.softmax(THETA + lam * C) - jax.nn.softmax(THETA - lam * C)) / (2 * lam))
    se = per.std(0, ddof=1) / np.sqrt(len(per))
    np.testing.assert_array_less(np.abs(per.mean(0) - fd), Z * se)


def test_aimle_adapts_lambda_toward_target_norm():
    target = 0.5
    a = E.aimle(argmax_solver, num_samples=16, target_norm=target, lam_lr=0.5, ema=0.8)

    @jax.jit
    def step(state, key):
        _, sg = jax.grad(lambda th, s: jnp.mean(a.apply(th, key, s) @ C), argnums=(0, 1))(THETA, state)
        return a.update(state, sg), sg.lam

    for lam0, direction in ((1e-3, +1), (20.0, -1)):
        state = E.AimleState(jnp.asarray(lam0), jnp.asarray(target))
        measured = []
        for i in range(150):
            state, m = step(state, jax.random.PRNGKey(i))
            measured.append(float(m))
        assert direction * (float(state.lam) - lam0) > 0, (lam0, state)
        assert abs(np.mean(measured[-50:]) - target) < 0.15, np.mean(measured[-50:])


def test_sum_of_gamma_noise_mean():
    """E[(tau / k)(sum_{i<=s} Gamma(1/k, k/i) - log s)] = tau (H_s - log s) / k."""
    for k, s in ((1, 10), (3, 20)):
        noise = jax.jit(NOISES["sum_of_gamma"], static_argnums=(1, 2, 4))
        x = np.asarray(noise(jax.random.PRNGKey(k), (20000,), k, 1.0, s), np.float64)
        exact = (np.sum(1.0 / np.arange(1, s + 1)) - np.log(s)) / k
        assert abs(x.mean() - exact) < Z * x.std(ddof=1) / np.sqrt(len(x))


def test_top3_of_8_perturb_and_map_distribution():
    """Gumbel perturb-and-MAP of top-3 over 8 samples a 3-subset with the Plackett-Luce probabilities (sum over
    the 6 orders); the 56 state frequencies and the expected linear loss match the enumeration."""
    theta = jnp.array([0.8, -0.2, 0.3, 1.2, -1.0, 0.0, 0.5, -0.5])
    c = np.array([1.0, -0.5, 2.0, 0.3, -1.2, 0.7, 0.1, -0.8])
    w = np.exp(np.asarray(theta, np.float64))
    states = list(itertools.combinations(range(8), 3))
    assert len(states) == 56
    exact = {}
    for s in states:
        prob = 0.0
        for order in itertools.permutations(s):
            rest, q = w.sum(), 1.0
            for i in order:
                q *= w[i] / rest
                rest -= w[i]
            prob += q
        exact[s] = prob
    assert abs(sum(exact.values()) - 1) < 1e-12
    n = 40000
    z = np.asarray(E.imle(lambda t: E.solvers.top_k(t, 3), num_samples=n)(theta, jax.random.PRNGKey(9)))
    codes = z @ (2 ** np.arange(8))
    for s in states:
        p = exact[s]
        freq = np.mean(codes == sum(2**i for i in s))
        assert abs(freq - p) < Z * np.sqrt(p * (1 - p) / n), (s, freq, p)
    loss = z @ c
    exact_loss = sum(p * c[list(s)].sum() for s, p in exact.items())
    assert abs(loss.mean() - exact_loss) < Z * loss.std(ddof=1) / np.sqrt(n)


def test_imle_with_other_solvers_and_sog_noise():
    """I-MLE runs through the shortest-path and ILP solvers and with sum-of-gamma noise; gradients are finite."""
    costs = jax.random.uniform(jax.random.PRNGKey(3), (4, 4), minval=0.5, maxval=2.0)
    sp = E.imle(lambda t: E.solvers.shortest_path(jnp.maximum(-t, 0.0)), num_samples=2, lam=1.0,
                noise_temperature=0.1)
    g = jax.grad(lambda t: jnp.mean(jnp.sum(sp(t, jax.random.PRNGKey(0)) * costs, (1, 2))))(-costs)
    assert g.shape == (4, 4) and np.all(np.isfinite(np.asarray(g)))
    ilp_layer = E.imle(lambda t: E.solvers.ilp(-t, None, None, jnp.ones((1, 6)), jnp.array([2.0])), num_samples=2,
                       noise="sum_of_gamma", noise_k=2)
    th = jnp.linspace(-1.0, 1.0, 6)
    g = jax.grad(lambda t: jnp.mean(ilp_layer(t, jax.random.PRNGKey(1)) @ jnp.arange(6.0)))(th)
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
    assert "imle" in E.LAYERS and "aimle" in E.LAYERS
