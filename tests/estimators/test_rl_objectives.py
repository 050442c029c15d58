"""RL objectives: GRPO / RLOO advantages (ORACLES), PPO clipping gradients, GRPO KL terms by hand and exactly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun import estimators as E

REWARDS = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def test_group_advantages_oracle():
    adv = E.rl.group_advantages(REWARDS)
    np.testing.assert_allclose(adv[:3], 1.2074, atol=1e-4)
    np.testing.assert_allclose(adv[3:], -0.7244, atol=1e-4)
    np.testing.assert_allclose(E.rl.group_advantages(jnp.ones(4)), 0.0)  # eps keeps equal rewards finite


def test_leave_one_out_advantages_oracle():
    adv = E.rl.leave_one_out_advantages(REWARDS)
    np.testing.assert_allclose(adv[:3], 0.7143, atol=1e-4)
    np.testing.assert_allclose(adv[3:], -0.4286, atol=1e-4)


def test_rank_checks():
    with pytest.raises(ValueError, match="rewards"):
        E.rl.group_advantages(REWARDS[None])
    with pytest.raises(ValueError, match="logp"):
        E.rl.reinforce_loss(jnp.zeros(3), jnp.zeros(3), jnp.ones(3))


def test_reinforce_loss_gradient():
    logp = -jnp.arange(8.0).reshape(4, 2) / 3
    mask = jnp.array([[1, 1], [1, 0], [1, 1], [0, 0]], jnp.float32)
    adv = jnp.array([1.0, -2.0, 0.5, 3.0])
    loss, g = jax.value_and_grad(E.rl.reinforce_loss)(logp, adv, mask)
    np.testing.assert_allclose(g, -adv[:, None] * mask / 4, rtol=1e-6)
    np.testing.assert_allclose(loss, -np.sum(adv * (logp * mask).sum(1)) / 4, rtol=1e-6)


# ratios and advantages chosen to hit every case of the clipped objective, eps = 0.2
RATIOS = np.array([[1.5, 0.5], [0.5, 1.5], [1.1, 1.0], [0.9, 1.19]])
ADV = np.array([1.0, -1.0, 2.0, 0.5])
MASK = np.array([[1, 1], [1, 1], [1, 0], [1, 1]], np.float32)
OLD = np.log(np.array([[0.3, 0.2], [0.5, 0.1], [0.25, 0.4], [0.6, 0.05]]))
LOGP = OLD + np.log(RATIOS)
# binding: A > 0 and r > 1 + eps, or A < 0 and r < 1 - eps -> zero gradient
BINDING = np.array([[True, False], [True, False], [False, False], [False, False]])


def _hand_surrogate():
    clipped = np.clip(RATIOS, 0.8, 1.2)
    per_token = np.minimum(RATIOS * ADV[:, None], clipped * ADV[:, None])
    weights = MASK / MASK.sum(1, keepdims=True) / MASK.shape[0]
    # d per_token / d logp = A r where not binding (r = exp(logp - old))
    d_token = np.where(BINDING, 0.0, ADV[:, None] * RATIOS)
    return per_token, weights, d_token


def test_ppo_clip_gradient_zero_when_clipped_and_reinforce_inside():
    per_token, weights, d_token = _hand_surrogate()
    loss, g = jax.value_and_grad(E.rl.ppo_clip_loss)(jnp.asarray(LOGP), jnp.asarray(OLD), jnp.asarray(ADV),
                                                     jnp.asarray(MASK))
    np.testing.assert_allclose(loss, -np.sum(weights * per_token), rtol=1e-5)
    np.testing.assert_allclose(g, -weights * d_token, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(g)[BINDING] == 0.0)
    # inside: equal to the importance-weighted REINFORCE gradient A r grad log pi
    inside = ~BINDING & (MASK > 0)
    np.testing.assert_allclose(np.asarray(g)[inside], -(weights * ADV[:, None] * RATIOS)[inside], rtol=1e-5)


@pytest.mark.parametrize("kl_estimator", ["k1", "k3"])
def test_grpo_loss_value_and_gradient_by_hand(kl_estimator):
    per_token, weights, d_token = _hand_surrogate()
    ref = OLD + np.array([[0.1, -0.3], [0.4, 0.0], [-0.2, 0.7], [0.05, -0.6]])
    beta = 0.1
    log_rho = ref - LOGP
    kl = {"k1": -log_rho, "k3": np.exp(log_rho) - log_rho - 1}[kl_estimator]
    d_kl = {"k1": np.ones_like(kl), "k3": 1 - np.exp(log_rho)}[kl_estimator]
    fn = jax.jit(E.rl.grpo_loss, static_argnames=("kl_estimator",))
    loss, g = jax.value_and_grad(fn)(
        jnp.asarray(LOGP), jnp.asarray(OLD), jnp.asarray(ref), jnp.asarray(ADV), jnp.asarray(MASK),
        clip_eps=0.2, kl_coef=beta, kl_estimator=kl_estimator,
    )
    np.testing.assert_allclose(loss, -np.sum(weights * (per_token - beta * kl)), rtol=1e-5)
    np.testing.assert_allclose(g, -weights * (d_token - beta * d_kl), rtol=1e-5, atol=1e-7)
    if kl_estimator == "k3":
        assert np.all(kl >= 0)


def test_grpo_kl_terms_exact_expectations():
    """Enumerating one token of a 5-way policy: both values average to KL(pi || ref); the expected gradient of
    k1 is 0 and that of k3 is grad KL(ref || pi)."""
    theta = jnp.array([0.3, -0.5, 1.2, 0.0, -1.0])
    ref_logits = jnp.array([0.0, 0.4, 0.2, -0.3, 0.5])
    ref_logp = jax.nn.log_softmax(ref_logits)
    pi = jax.nn.softmax(theta)

    def token_loss(th, x, kl_estimator):
        lp = jax.nn.log_softmax(th)[x].reshape(1, 1)
        return E.rl.grpo_loss(
            lp, jax.lax.stop_gradient(lp), ref_logp[x].reshape(1, 1), jnp.zeros(1), jnp.ones((1, 1)),
            kl_coef=1.0, kl_estimator=kl_estimator,
        )

    kl_pi_ref = jnp.sum(pi * (jnp.log(pi) - ref_logp))
    grad_kl_ref_pi = jax.grad(lambda th: jnp.sum(jnp.exp(ref_logp) * (ref_logp - jax.nn.log_softmax(th))))(theta)
    for est in ("k1", "k3"):
        values = jnp.array([token_loss(theta, x, est) for x in range(5)])
        grads = jnp.stack([jax.grad(token_loss)(theta, x, est) for x in range(5)])
        np.testing.assert_allclose(jnp.sum(pi * values), kl_pi_ref, rtol=1e-5)
        expected_grad = jnp.sum(pi[:, None] * grads, 0)
        target = jnp.zeros(5) if est == "k1" else grad_kl_ref_pi
        np.testing.assert_allclose(expected_grad, target, atol=1e-6)
    assert float(jnp.linalg.norm(grad_kl_ref_pi)) > 0.1  # the k3 check is not vacuous


def test_grpo_rejects_unknown_kl_estimator():
    z = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="kl_estimator"):
        E.rl.grpo_loss(z, z, z, jnp.zeros(2), jnp.ones((2, 3)), kl_estimator="k2")
