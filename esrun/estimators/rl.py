"""Policy-gradient objectives on arrays: REINFORCE, GRPO / RLOO advantages, PPO clipping, GRPO with KL.

Shapes used throughout (one group of G sampled outputs for one prompt, padded to T tokens):

* ``rewards``: [G] scalar reward R_i of output o_i.
* ``advantages``: [G] one advantage per output, broadcast over its tokens; treated as a constant.
* ``logp``, ``old_logp``, ``ref_logp``: [G, T] log pi(o_{i,t} | q, o_{i,<t}) under the current policy
  (differentiated), the sampling policy pi_old and the reference policy pi_ref.
* ``mask``: [G, T] 1 for real tokens, 0 for padding; |o_i| = sum_t mask_{i,t}.

Every ``*_loss`` is a scalar to *minimise* (the negated surrogate objective); its gradient w.r.t. the
policy parameters, through ``logp``, is the (negated) estimator named in its docstring.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _check(name: str, x: jax.Array, ndim: int) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {x.shape}")
    return x


def _token_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """1/G sum_i 1/|o_i| sum_t mask_it values_it (the GRPO sequence-then-group average); [G, T] -> []."""
    lengths = jnp.maximum(mask.sum(-1), 1.0)
    return jnp.mean((values * mask).sum(-1) / lengths)


def group_advantages(rewards: jax.Array, eps: float = 1e-4) -> jax.Array:
    """GRPO group-normalised advantage A_i = (R_i - mean(R)) / (std(R) + eps).

    std is Bessel-corrected (divides by G - 1). For rewards [1,1,1,0,0,0,0,0] this gives +1.2074 for a
    correct and -0.7244 for a wrong output. Shao et al., 2024 (DeepSeekMath).

    Args:
      rewards: [G], G >= 2.
      eps: added to the std so a group of equal rewards gets advantages 0.
    Returns:
      [G] advantages.
    """
    rewards = _check("rewards", rewards, 1)
    centred = rewards - rewards.mean()
    return centred / (jnp.std(rewards, ddof=1) + eps)


def leave_one_out_advantages(rewards: jax.Array) -> jax.Array:
    """RLOO advantage A_i = R_i - 1/(G-1) sum_{j != i} R_j (Ahmadian et al., 2024).

    Unbiased as a baseline: b_i does not depend on o_i. [1,1,1,0,0,0,0,0] -> +0.7143 / -0.4286.

    Args:
      rewards: [G], G >= 2.
    Returns:
      [G] advantages.
    """
    rewards = _check("rewards", rewards, 1)
    g = rewards.shape[0]
    if g < 2:
        raise ValueError("leave-one-out advantages need a group of at least 2")
    return rewards - (rewards.sum() - rewards) / (g - 1)


def reinforce_loss(logp: jax.Array, advantages: jax.Array, mask: jax.Array) -> jax.Array:
    """REINFORCE surrogate: loss = -1/G sum_i A_i sum_t mask_it log pi(o_it), A_i held constant.

    Its gradient is -1/G sum_i A_i grad log pi(o_i), the score-function estimator of -grad E[R] when
    A_i = R_i - b_i with b_i independent of o_i (Williams, 1992). Cost: one policy evaluation per token.

    Args:
      logp: [G, T] token log-probs under the current policy.
      advantages: [G] (rewards, or rewards minus a baseline).
      mask: [G, T].
    Returns:
      [] loss.
    """
    logp, mask = _check("logp", logp, 2), _check("mask", mask, 2)
    adv = jax.lax.stop_gradient(_check("advantages", advantages, 1))
    return -jnp.mean(adv * (logp * mask).sum(-1))


def _clipped_surrogate(logp, old_logp, advantages, mask, clip_eps):
    ratio = jnp.exp(logp - jax.lax.stop_gradient(old_logp))
    adv = jax.lax.stop_gradient(advantages)[:, None]
    return jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)


def ppo_clip_loss(
    logp: jax.Array, old_logp: jax.Array, advantages: jax.Array, mask: jax.Array, clip_eps: float = 0.2
) -> jax.Array:
    """PPO clipped surrogate (Schulman et al., 2017), averaged per output then over the group:

        loss = -1/G sum_i 1/|o_i| sum_t min(r_it A_i, clip(r_it, 1 - eps, 1 + eps) A_i),
        r_it = pi_theta(o_it) / pi_old(o_it) = exp(logp - old_logp).

    Inside the clip range (or on the side where clipping does not bind) the gradient of the surrogate is the
    importance-weighted REINFORCE term A_i r_it grad log pi_theta(o_it); when r_it > 1 + eps with A_i > 0, or
    r_it < 1 - eps with A_i < 0, that token's gradient is exactly zero.

    Args:
      logp, old_logp, mask: [G, T].
      advantages: [G].
      clip_eps: clip range epsilon (array-valued is fine).
    Returns:
      [] loss.
    """
    logp, old_logp, mask = _check("logp", logp, 2), _check("old_logp", old_logp, 2), _check("mask", mask, 2)
    advantages = _check("advantages", advantages, 1)
    return -_token_mean(_clipped_surrogate(logp, old_logp, advantages, mask, clip_eps), mask)


def _k1(logp, ref_logp):
    return logp - ref_logp


def _k3(logp, ref_logp):
    log_ratio = ref_logp - logp
    return jnp.exp(log_ratio) - log_ratio - 1.0


KL_ESTIMATORS: dict[str, Callable] = {"k1": _k1, "k3": _k3}
"""name -> (logp [G, T], ref_logp [G, T]) -> per-token KL estimate [G, T] (Schulman, 2020, "Approximating KL")."""


def grpo_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    ref_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    clip_eps: float = 0.2,
    kl_coef: float = 0.04,
    kl_estimator: str = "k3",
) -> jax.Array:
    """GRPO loss (Shao et al., 2024): PPO clipping with group advantages plus a per-token KL penalty,

        loss = -1/G sum_i 1/|o_i| sum_t [ min(r_it A_i, clip(r_it, 1-eps, 1+eps) A_i) - beta k_it ],

    with A = group_advantages(rewards) normally, beta = ``kl_coef`` and, with rho_it = pi_ref / pi_theta,
        k1_it = log pi_theta(o_it) - log pi_ref(o_it)  = -log rho_it,
        k3_it = rho_it - log rho_it - 1                (>= 0).

    What the KL term contributes, for tokens sampled from pi_theta (on-policy, i.e. theta = theta_old):
      * values: k1 and k3 are both unbiased estimates of KL(pi_theta || pi_ref); k3 is never negative and has
        lower variance when the policies are close.
      * gradients (differentiating the sample's log-prob, samples fixed): grad k1 = grad log pi_theta(o_it),
        whose expectation is 0 -- k1 as a loss adds only noise, not the gradient of any KL;
        grad k3 = (1 - rho_it) grad log pi_theta(o_it), whose expectation is
        -E_{pi_ref}[grad log pi_theta] = grad_theta KL(pi_ref || pi_theta), the *forward* KL, not the reverse
        KL(pi_theta || pi_ref) that the value estimates.

    Args:
      logp, old_logp, ref_logp, mask: [G, T].
      advantages: [G].
      clip_eps, kl_coef: scalars (array-valued is fine).
      kl_estimator: ``"k1"`` | ``"k3"`` (static).
    Returns:
      [] loss.
    """
    if kl_estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator must be one of {sorted(KL_ESTIMATORS)}, got {kl_estimator!r}")
    logp, old_logp, mask = _check("logp", logp, 2), _check("old_logp", old_logp, 2), _check("mask", mask, 2)
    ref_logp = jax.lax.stop_gradient(_check("ref_logp", ref_logp, 2))
    advantages = _check("advantages", advantages, 1)
    surrogate = _clipped_surrogate(logp, old_logp, advantages, mask, clip_eps)
    kl = KL_ESTIMATORS[kl_estimator](logp, ref_logp)
    return -_token_mean(surrogate - kl_coef * kl, mask)
