"""The strategy interface: init / member_params / tell over an immutable state pytree.

A strategy object holds only static, shape-fixing configuration (population size, number of parameters,
hyperparameters); everything that changes lives in its state pytree, and no method mutates ``self``.

``member_params`` is this interface's "ask". The seed-sharing protocol (docs/design.md, "The seed protocol") needs it
in this form, not as a population matrix: any replica must be able to rebuild the parameters of any slice of the
population from the state alone,

    member_params(state, members: [n] int32) -> [n, num_params]

so workers receive only ``(generation, member range)`` and send back only fitness scalars. Every state carries
``generation`` (int32 scalar) and ``key`` (the run key); the randomness of generation ``g`` is derived from
``fold_in(key, g)`` and nothing else.

Fitness is maximized everywhere in esrun. Strategies that minimize internally (evosax) negate it in exactly one
place, inside their ``tell``.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import jax

STRATEGIES: dict[str, Callable[..., Strategy]] = {}
"""name -> factory(num_params, population, config) -> Strategy. Tests iterate this registry."""


def register(name: str) -> Callable[[Callable[..., Strategy]], Callable[..., Strategy]]:
    def wrap(factory: Callable[..., Strategy]) -> Callable[..., Strategy]:
        if name in STRATEGIES and not getattr(STRATEGIES[name], "lazy", False):
            raise ValueError(f"strategy {name!r} registered twice")
        STRATEGIES[name] = factory
        return factory

    return wrap


def register_lazy(name: str, module: str) -> None:
    """Reserve ``name`` for a strategy registered by ``module``, imported only when the strategy is built.

    Keeps heavy optional imports (evosax) off the start-up path of runs that do not use them, while the
    name is known to config validation and to registry-driven tests.
    """
    import importlib

    def factory(*args, **kwargs):
        importlib.import_module(module)
        real = STRATEGIES[name]
        if getattr(real, "lazy", False):
            raise KeyError(f"{module} did not register strategy {name!r}")
        return real(*args, **kwargs)

    factory.lazy = True  # type: ignore[attr-defined]  # a marker on the placeholder function
    STRATEGIES.setdefault(name, factory)


class Strategy(abc.ABC):
    """Abstract strategy. Concrete strategies are final leaf classes (no override chains)."""

    population: int
    num_params: int

    @abc.abstractmethod
    def init(self, key: jax.Array, x0: jax.Array) -> Any:
        """Initial state around the flat parameter vector ``x0: [num_params]``."""

    @abc.abstractmethod
    def member_params(self, state: Any, members: jax.Array) -> jax.Array:
        """Parameters of population members ``members: [n]`` of generation ``state.generation``: ``[n, P]``."""

    @abc.abstractmethod
    def tell(self, state: Any, fitness: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        """Update with the fitness of every member, ``fitness: [population]`` (finite, to be maximized).

        Returns the next state (generation + 1) and a dict of scalar metrics (logged under ``es/``).
        """

    @abc.abstractmethod
    def mean(self, state: Any) -> jax.Array:
        """The current solution (search-distribution mean): ``[num_params]``."""
