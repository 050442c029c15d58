"""ES strategies as init / ask / tell over immutable state; looked up by name in ``STRATEGIES``."""
import importlib

from esrun.strategies import openai_es  # noqa: F401  (registers "openai_es")
from esrun.strategies.base import STRATEGIES, Strategy, register

try:  # evosax adapters register themselves; the module is optional while it is being written
    importlib.import_module("esrun.strategies.evosax_adapter")
except ModuleNotFoundError as exc:  # pragma: no cover
    if exc.name != "esrun.strategies.evosax_adapter":
        raise

__all__ = ["STRATEGIES", "Strategy", "register"]
