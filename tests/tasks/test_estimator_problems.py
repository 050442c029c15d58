"""The estimator test problems' exact and reference gradients, which every compare diagnostic is measured against,
checked against closed forms and large-sample estimates."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E
from esrun.config import compare_schema as schema
from esrun.tasks.estimator_problems import build_problem

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("t", [0.45, 0.499])
def test_bernoulli_toy_exact_gradient_is_the_closed_form(t):
    task = build_problem(schema.BernoulliToyTask(target=t))
    for logit in (-2.0, 0.0, 0.7):
        p = 1 / (1 + np.exp(-logit))
        theta = jnp.array([logit], jnp.float32)
        assert float(task.exact_grad(theta)[0]) == pytest.approx(p * (1 - p) * (1 - 2 * t), rel=1e-4, abs=1e-7)
        assert float(task.objective(theta)) == pytest.approx(t**2 + p * (1 - 2 * t), rel=1e-5)
    assert task.optimum == pytest.approx(min(t, 1 - t) ** 2, rel=1e-6)


def test_rastrigin_smoothed_gradient_matches_a_large_pathwise_sample():
    task = build_problem(schema.SyntheticTask(objective="rastrigin", dim=4, sigma=0.3, init=2.0))
    theta = jnp.array([0.2, -1.3, 0.9, 2.4], jnp.float32)
    est = E.pathwise(jax.random.PRNGKey(3), task.make_f(None), task.make_dist(theta), 200_000)
    mean, se = est.grad.mean, est.per_sample.mean.std(0) / np.sqrt(200_000)
    exact = task.exact_grad(theta)
    assert np.all(np.abs(np.asarray(mean - exact)) < 4.5 * np.asarray(se)), (mean, exact)


def test_topk_reference_gradient_for_k1_is_the_softmax_jacobian():
    # k = 1: P(top1(theta + Gumbel) = i) = softmax(theta)_i, so grad E[-<w, z>] = -(diag p - p p^T) w exactly.
    task = build_problem(schema.TopKTask(n=6, k=1, instance=3))
    theta = jnp.array([0.3, -0.5, 1.0, 0.0, -1.2, 0.4], jnp.float32)
    w = -jax.vmap(task.make_f(None))(jnp.eye(6))  # f(e_i) = -w_i
    p = jax.nn.softmax(theta)
    exact = -(jnp.diag(p) - jnp.outer(p, p)) @ w
    ref = task.reference_grad(theta, jax.random.PRNGKey(0), 400_000)
    assert float(jnp.max(jnp.abs(ref - exact))) < 0.01, (ref, exact)
    assert float(task.objective(theta)) == pytest.approx(float(-(p @ w)), abs=0.05)  # 2048 fixed draws


def test_noisy_quadratic_noise_is_centred_independent_across_points_and_repeatable():
    task = build_problem(schema.SyntheticTask(objective="noisy_quadratic", dim=3, noise_std=2.0))
    f = task.make_f(jax.random.PRNGKey(1))
    xs = jax.random.normal(jax.random.PRNGKey(2), (20_000, 3))
    noise = jax.vmap(f)(xs) - jax.vmap(task.objective)(xs)
    assert abs(float(noise.mean())) < 4.5 * 2.0 / np.sqrt(20_000)
    assert float(noise.std()) == pytest.approx(2.0, rel=0.05)
    assert float(f(xs[0])) == float(f(xs[0]))  # same point, same step key: same value
    assert float(task.make_f(jax.random.PRNGKey(5))(xs[0])) != float(f(xs[0]))  # another step: fresh noise


def test_categorical_exact_gradient_matches_finite_differences():
    task = build_problem(schema.CategoricalTask(num_vars=2, num_classes=3))
    theta = jnp.array([[0.1, -0.4, 0.3], [0.8, 0.0, -0.6]], jnp.float32)
    g = np.asarray(task.exact_grad(theta))
    h = 1e-2
    for idx in [(0, 0), (1, 2)]:
        e = jnp.zeros_like(theta).at[idx].set(h)
        fd = (float(task.objective(theta + e)) - float(task.objective(theta - e))) / (2 * h)
        assert g[idx] == pytest.approx(fd, rel=2e-2, abs=1e-4)
