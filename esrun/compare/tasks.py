"""Moved to :mod:`esrun.tasks.estimator_problems` (this name stays only until the tests import it from there)."""
from esrun.tasks.estimator_problems import PROBLEMS, EstimatorProblem, build_problem, register  # noqa: F401

build_task = build_problem
