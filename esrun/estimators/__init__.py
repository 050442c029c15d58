"""esrun.estimators: every Monte Carlo gradient estimator of the source document, in pure JAX.

See :mod:`esrun.estimators.base` for the one signature all distribution-gradient estimators share.
Family modules register themselves in ``REGISTRY`` (distribution-gradient estimators) or ``LAYERS``
(custom-VJP layers); importing this package imports every family.
"""
from esrun.estimators.base import LAYERS, REGISTRY, Estimate, register
from esrun.estimators.distributions import Bernoulli, Categorical, Gaussian, Poisson

__all__ = ["Estimate", "REGISTRY", "LAYERS", "register", "Gaussian", "Bernoulli", "Categorical", "Poisson"]
