"""ES strategies as init / member_params / tell over immutable state; looked up by name with :func:`get_strategy`.

The native OpenAI-ES is imported eagerly; the evosax adapters are registered lazily (evosax is imported the
first time one of them is built), which keeps about two seconds of imports off every other run's start-up.
``evosax/<Name>`` names every algorithm of evosax's own registry (``esrun.strategies.evosax_registry``); they
are registered when the first such name is looked up.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from esrun.errors import UserError

# Import order is registration order (the order "allowed: ..." messages list the names in).
# isort: off
from esrun.strategies import openai_es  # noqa: F401  (registers "openai_es")
from esrun.strategies import ars  # noqa: F401  (registers "ars")
# isort: on
from esrun.strategies.base import STRATEGIES, Strategy, register, register_lazy

EVOSAX_STRATEGIES = ("pgpe", "snes", "xnes", "cma_es", "sep_cma_es", "open_es_evosax")
for _name in EVOSAX_STRATEGIES:
    register_lazy(_name, "esrun.strategies.evosax_adapter")

EVOSAX_PREFIX = "evosax/"


class UnknownStrategyError(UserError, KeyError):
    """A strategy name that is in no registry; the message is one line with the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


def _register_evosax() -> None:
    importlib.import_module("esrun.strategies.evosax_registry")


def get_strategy(name: str) -> Callable[..., Strategy]:
    """The factory ``(num_params, population, StrategyConfig) -> Strategy`` registered under ``name``.

    ``evosax/<Name>`` imports evosax and registers its algorithms on first use. An unknown name raises
    :class:`UnknownStrategyError` naming the closest registered names (native and evosax).
    """
    if name not in STRATEGIES and name.startswith(EVOSAX_PREFIX):
        _register_evosax()
    if name in STRATEGIES:
        return STRATEGIES[name]
    _register_evosax()
    known = list(STRATEGIES)
    lower = {k.lower(): k for k in known}
    close = [lower[c] for c in difflib.get_close_matches(name.lower(), lower, n=3, cutoff=0.6)]
    for candidate in (lower.get(name.lower()), lower.get(f"{EVOSAX_PREFIX}{name}".lower())):
        if candidate and candidate not in close:
            close.insert(0, candidate)
    hint = f"closest: {', '.join(close)}" if close else f"native: {', '.join(k for k in known if '/' not in k)}"
    raise UnknownStrategyError(f"strategy.name = {name!r}: unknown strategy ({hint}; evosax/<Name> for any of "
                               f"evosax's {sum('/' in k for k in known)} algorithms)")


__all__ = ["STRATEGIES", "Strategy", "register", "get_strategy", "EVOSAX_STRATEGIES", "EVOSAX_PREFIX"]
