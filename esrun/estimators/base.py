"""The contract every distribution-gradient estimator in `esrun.estimators` follows.

An estimator approximates

    grad_params J(params) = grad_params E_{x ~ p_params}[f(x)]

and has one signature:

    est(key, f, dist, num_samples, **options) -> Estimate(grad, per_sample, num_evals)

* ``key``: a JAX PRNG key; the only source of randomness.
* ``f``: a function of one sample ``x`` (shaped like a sample of ``dist``) returning a scalar. Estimators
  vmap it themselves; ``f`` never sees a batch axis.
* ``dist``: a distribution pytree (:mod:`esrun.estimators.distributions`) whose array leaves are the
  parameters differentiated.
* ``num_samples``: static; how many draws (or antithetic pairs, where the estimator says so).

The result ``grad`` is a pytree shaped like ``dist``; ``per_sample`` has the same structure with a leading
``[num_samples]`` axis whose mean is ``grad`` (``None`` where no per-sample form exists), so the variance of a
single-sample estimate is ``per_sample.var(0)``; ``num_evals`` is the number of calls of ``f`` spent — the
currency of every equal-budget comparison.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax


class Estimator(Protocol):
    """A registered estimator: the one signature above, and ``meta`` (its :func:`register` metadata)."""

    meta: dict[str, Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


REGISTRY: dict[str, Estimator] = {}
"""name -> estimator. Tests iterate this dict, so a registered estimator is tested by default."""

Objective = Callable[[jax.Array], jax.Array]
"""``f``: one sample (shaped like a sample of ``dist``, no batch axis) -> a scalar ``[]``."""

LAYERS: dict[str, Estimator] = {}
"""name -> layer-style estimator (custom VJPs used inside a model: straight-through, Gumbel, I-MLE, ...)."""


class Estimate(NamedTuple):
    """What every distribution-gradient estimator returns.

    Attributes:
      grad: pytree shaped like the distribution: the gradient estimate.
      per_sample: same structure with a leading ``[num_samples]`` axis whose mean over axis 0 is ``grad``;
        ``None`` for estimators without a per-sample decomposition.
      num_evals: int, calls of ``f`` spent on this estimate.
    """

    grad: Any
    per_sample: Any
    num_evals: int


def register(
    name: str,
    *,
    supports: tuple[str, ...] = (),
    unbiased: bool = True,
    needs_grad_f: bool = False,
    example_options: Callable[[Any], dict[str, Any]] | None = None,
    table: dict[str, Estimator] | None = None,
) -> Callable[[Callable[..., Any]], Any]:  # Any: the result carries .meta
    """Decorator adding an estimator to ``REGISTRY`` (or ``table``) under ``name``, with its metadata.

    Args:
      supports: distribution names (keys of ``distributions.DISTRIBUTIONS``) the estimator applies to.
      unbiased: whether E[grad] equals the true gradient.
      needs_grad_f: whether ``f`` must be differentiable (pathwise, REBAR, RELAX, ...).
      example_options: ``dist -> dict`` of keyword options that make a call valid for ``dist`` (e.g. RELAX's
        control variate and its parameters); registry-driven tests and ``esrun compare`` use it.

    The metadata is stored on the function as ``fn.meta`` (a dict) so that callers can refuse an estimator
    that does not apply to a task before any work starts.
    """
    target = REGISTRY if table is None else table

    def wrap(fn: Any) -> Any:
        if name in target:
            raise ValueError(f"estimator {name!r} registered twice")
        fn.meta = {
            "name": name,
            "supports": tuple(supports),
            "unbiased": unbiased,
            "needs_grad_f": needs_grad_f,
            "example_options": example_options or (lambda dist: {}),
        }
        target[name] = fn
        return fn

    return wrap
