"""Pathwise (reparameterization) gradient for a diagonal Gaussian.

With x = g_theta(eps) = mean + exp(log_std) * eps, eps ~ N(0, I),

    grad_theta E[f(x)] = E_eps[ grad_theta f(g_theta(eps)) ] = E_eps[ df/dx * dg_theta(eps)/dtheta ],

so d/dmean = f'(x) and d/dlog_std = f'(x) * sigma * eps (Kingma and Welling, 2013; Rezende et al., 2014).
"""
from __future__ import annotations

import jax

from esrun.estimators.base import Estimate, Objective, register
from esrun.estimators.distributions import Gaussian


@register("pathwise", supports=("gaussian",), unbiased=True, needs_grad_f=True)
def pathwise(key: jax.Array, f: Objective, dist: Gaussian, num_samples: int) -> Estimate:
    """Reparameterization: grad_hat = 1/n sum_k grad_(mean, log_std) f(mean + exp(log_std) * eps_k).

    Args:
      key: PRNG key.
      f: differentiable x -> [] scalar, x of ``dist.mean.shape``.
      dist: Gaussian(mean, log_std) with leaves of any (equal) shape.
      num_samples: n (static).

    Returns:
      Estimate(grad: Gaussian shaped like ``dist``, per_sample: Gaussian with leading [n], num_evals = n
      evaluations of f, each with its gradient).

    Unbiased for f differentiable with integrable gradient. Paper: Kingma and Welling, 2013; Rezende et al., 2014.
    """
    eps = jax.random.normal(key, (num_samples, *jax.numpy.shape(dist.mean)), jax.numpy.result_type(dist.mean, float))

    def f_of_params(d: Gaussian, e):
        return f(d.mean + d.std * e)

    per_sample = jax.vmap(jax.grad(f_of_params), in_axes=(None, 0))(dist, eps)
    grad = jax.tree_util.tree_map(lambda p: p.mean(0), per_sample)
    return Estimate(grad, per_sample, num_samples)
