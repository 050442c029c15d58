"""esrun.estimators: every Monte Carlo gradient estimator of the source document, in pure JAX.

See :mod:`esrun.estimators.base` for the one signature all distribution-gradient estimators share.
Family modules register themselves in ``REGISTRY`` (distribution-gradient estimators) or ``LAYERS``
(custom-VJP layers); importing this package imports every family.
"""
# Import order is registration order: REGISTRY and LAYERS list the families in this order.
# isort: off
from esrun.estimators.base import LAYERS, REGISTRY, Estimate, register
from esrun.estimators.distributions import Bernoulli, Categorical, Gaussian, Poisson

# Continuous and RL families.
from esrun.estimators import rl
from esrun.estimators.evolution_strategies import evolution_strategies
from esrun.estimators.leave_one_out import leave_one_out
from esrun.estimators.measure_valued import measure_valued
from esrun.estimators.pathwise import pathwise
from esrun.estimators.score_function import score_function

# Discrete and layer families.
from esrun.estimators import solvers
from esrun.estimators.arm import arm, disarm
from esrun.estimators.gumbel import gumbel_sigmoid, gumbel_softmax
from esrun.estimators.imle import Aimle, AimleState, aimle, imle
from esrun.estimators.rebar import rebar, rebar_with_variance_grad
from esrun.estimators.relax import ControlVariate, mlp_control_variate, rebar_mlp_control_variate, relax
from esrun.estimators.straight_through import straight_through
# isort: on

__all__ = [
    "Estimate", "REGISTRY", "LAYERS", "register", "Gaussian", "Bernoulli", "Categorical", "Poisson",
    # continuous and RL families
    "rl", "evolution_strategies", "leave_one_out", "measure_valued", "pathwise", "score_function",
    # discrete and layer families
    "solvers", "arm", "disarm", "gumbel_sigmoid", "gumbel_softmax", "Aimle", "AimleState", "aimle", "imle",
    "rebar", "rebar_with_variance_grad", "ControlVariate", "mlp_control_variate", "rebar_mlp_control_variate",
    "relax", "straight_through",
]
