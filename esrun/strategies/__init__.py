"""ES strategies as init / ask / tell over immutable state; looked up by name in ``STRATEGIES``.

The native OpenAI-ES is imported eagerly; the evosax adapters are registered lazily (evosax is imported the
first time one of them is built), which keeps about two seconds of imports off every other run's start-up.
"""
from esrun.strategies import openai_es  # noqa: F401  (registers "openai_es")
from esrun.strategies import ars  # noqa: F401  (registers "ars")
from esrun.strategies.base import STRATEGIES, Strategy, register, register_lazy

EVOSAX_STRATEGIES = ("pgpe", "snes", "xnes", "cma_es", "sep_cma_es", "open_es_evosax")
for _name in EVOSAX_STRATEGIES:
    register_lazy(_name, "esrun.strategies.evosax_adapter")

__all__ = ["STRATEGIES", "Strategy", "register", "EVOSAX_STRATEGIES"]
