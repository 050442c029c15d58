"""The one optax builder: ``optimizer`` / ``learning_rate`` / ``momentum`` / ``weight_decay`` -> an optax transform.

Used by every place that steps parameters with a gradient: OpenAI-ES and the evosax adapters (the search mean),
the ``esrun compare`` estimator loop (``optimizer.name``), its estimators' own state (REBAR's tuned (eta, lambda),
RELAX's control variate) and the policy-gradient replicas (Adam).

    adam   optax.adam(lr)
    sgd    optax.sgd(lr, momentum=momentum or None)        (momentum 0: plain SGD, no trace state)
    weight_decay > 0: optax.chain(optax.add_decayed_weights(weight_decay), <the above>)   (L2 decay before the step)
"""
from __future__ import annotations

from collections.abc import Callable

import optax

OPTIMIZERS: dict[str, Callable[[float, float], optax.GradientTransformation]] = {
    "adam": lambda lr, momentum: optax.adam(lr),
    "sgd": lambda lr, momentum: optax.sgd(lr, momentum=momentum or None),
}
"""name -> (learning_rate, momentum) -> GradientTransformation (Adam ignores momentum)."""


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
    """The optax transformation ``name`` (a key of :data:`OPTIMIZERS`) minimizing with step ``learning_rate``.

    Args:
      name: ``"adam"`` or ``"sgd"``.
      learning_rate: step size (a scalar).
      momentum: SGD's momentum; 0 (or None) gives plain SGD.
      weight_decay: L2 decay coefficient applied to the gradient before the step; 0 adds nothing.
    Returns:
      an ``optax.GradientTransformation`` over parameter pytrees of any shape.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    opt = OPTIMIZERS[name](learning_rate, momentum)
    if weight_decay:
        opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
    return opt
