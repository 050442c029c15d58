"""The generation loop, budgets, checkpoint / resume."""
from esrun.runner.loop import Result, train

__all__ = ["Result", "train"]
