"""Every evosax algorithm by name: ``strategy.name: evosax/<Name>`` for each entry of evosax's own registry.

One generic builder turns a registry entry into an :class:`~esrun.strategies.evosax_adapter.EvosaxStrategy`
(the seed-sharing replay; see that module for the protocol and the three families). ``StrategyConfig`` maps in
as follows, wherever the algorithm has the field:

    params.std_init  <- sigma                 params.std_min <- sigma_min
    optimizer        <- optimizer / learning_rate / momentum / weight_decay   (as for pgpe)
    std_schedule     <- max(sigma * sigma_decay^t, sigma_min)                (as for open_es_evosax)
    use_antithetic_sampling <- antithetic
    sampling_fn      <- x ~ N(0, sigma^2 I)  (RandomSearch: the search distribution is fixed, centred on 0)

Every other knob of the algorithm is an option, ``strategy.options: {name: value}``: the constructor's
arguments with a plain default (int, float, bool, str, dict; e.g. DifferentialEvolution's ``num_diff``) and the
scalar fields of its evosax params (e.g. ``crossover_rate``, ``c_std``). Unknown names and wrong types are
one-line errors listing what the algorithm accepts. The algorithm's own fitness shaping is kept (evosax's
default for the class); ``fitness_shaping`` applies to the native names only.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax
from evosax.algorithms import algorithms as EVOSAX_ALGORITHMS
from evosax.algorithms.distribution_based.base import DistributionBasedAlgorithm
from evosax.algorithms.distribution_based.sv.base import SV_ES
from evosax.algorithms.population_based.base import PopulationBasedAlgorithm

from esrun.errors import OptionError, UserError
from esrun.strategies.base import register
from esrun.strategies.evosax_adapter import (
    FAMILIES,
    FULL_COVARIANCE_MAX_PARAMS,
    EvosaxStrategy,
    _default_params,
    _optimizer,
    _solution,
)

if TYPE_CHECKING:
    from esrun.config.schema import StrategyConfig

PREFIX = "evosax/"

REFUSED: dict[str, str] = {}
"""evosax names that cannot run under the seed-sharing protocol -> why (docs/strategies.md lists them)."""

_MAPPED_CTOR = {
    "optimizer": "strategy.optimizer / learning_rate / momentum / weight_decay",
    "std_schedule": "strategy.sigma / sigma_decay / sigma_min",
    "use_antithetic_sampling": "strategy.antithetic",
    "sampling_fn": "strategy.sigma",
}
"""Constructor arguments esrun fills from StrategyConfig -> the fields that set them."""

_FIXED_CTOR = {"population_size", "solution", "fitness_shaping_fn", "metrics_fn", "kernel", "alpha_schedule",
               "fitness_mapping", "params", "params_path", "mutation_feature_encoding"}
"""Constructor arguments that are not options: shapes, callables, and pickled weights (``params_path`` would
unpickle an arbitrary file; the learned algorithms use the checkpoints shipped inside evosax)."""

_STEIN_DEFAULT_POPULATIONS = 2


def family_of(cls: type) -> str:
    """The FAMILIES key of an evosax algorithm class, from its base class."""
    if issubclass(cls, SV_ES):
        return "stein"
    if issubclass(cls, PopulationBasedAlgorithm):
        return "population"
    if issubclass(cls, DistributionBasedAlgorithm):
        return "distribution"
    raise TypeError(f"{cls.__name__} is neither a distribution- nor a population-based evosax algorithm")


def names() -> list[str]:
    """Every ``evosax/<Name>`` strategy name, in evosax's registry order."""
    return [PREFIX + n for n in EVOSAX_ALGORITHMS]


# -- options -------------------------------------------------------------------------------------------------

def _ctor_options(cls: type) -> dict[str, Any]:
    """Constructor arguments that are options -> their default (``inspect.Parameter.empty`` if required)."""
    out = {}
    # cls.__init__ (not cls): its signature with self, as evosax declares it  (mypy: fine on a class object)
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:  # type: ignore[misc]
        if p.name in _FIXED_CTOR or p.name in _MAPPED_CTOR:
            continue
        plain = isinstance(p.default, (bool, int, float, str, dict))
        if p.default is inspect.Parameter.empty or p.default is None or plain:
            out[p.name] = p.default
    return out


def _param_options(params) -> dict[str, Any]:
    """Scalar fields of evosax params -> their default (arrays such as recombination weights are not options)."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if f.name != "params" and jnp.ndim(getattr(params, f.name)) == 0}


def accepted_options(cls: type, params: Any) -> list[str]:
    return sorted({*_ctor_options(cls), *_param_options(params)})


def _bad_option(label: str, key: str, accepted: list[str]) -> OptionError:
    if key in _MAPPED_CTOR:
        return OptionError(f"strategy.options.{key}: {label} takes it from {_MAPPED_CTOR[key]}")
    close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return OptionError(f"strategy.options.{key}: {label} has no such option{hint}; accepted: "
                       f"{', '.join(accepted) or 'none'}")


def _check_ctor_value(label: str, key: str, value: Any, default: Any) -> Any:
    if default is inspect.Parameter.empty or default is None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        want = "a positive integer"
    elif isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, dict):
        ok, want = isinstance(value, dict), "a mapping"
    else:
        ok, want = isinstance(value, str), "a string"
    if not ok:
        raise OptionError(f"strategy.options.{key} = {value!r}: {label} expects {want}")
    return float(value) if isinstance(default, float) else value


def split_options(label: str, cls: type, params: Any, options: dict[str, Any], ctor: bool = True
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate ``options`` against ``cls``; returns (constructor kwargs, params replacements)."""
    ctor_opts = _ctor_options(cls) if ctor else {}
    param_opts = _param_options(params)
    accepted = sorted({*ctor_opts, *param_opts})
    kwargs, replace = {}, {}
    for key, value in options.items():
        if key in ctor_opts:
            kwargs[key] = _check_ctor_value(label, key, value, ctor_opts[key])
        elif key in param_opts:
            default = jnp.asarray(param_opts[key])
            is_bool = default.dtype == jnp.bool_
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (isinstance(value, bool) if is_bool else number):
                raise OptionError(f"strategy.options.{key} = {value!r}: {label} expects "
                                  f"{'true or false' if is_bool else 'a number'}")
            replace[key] = jnp.asarray(value, default.dtype)
        else:
            raise _bad_option(label, key, accepted)
    return kwargs, replace


# -- StrategyConfig -> constructor ----------------------------------------------------------------------------

def _sigma_schedule(cfg) -> Callable:
    if cfg.sigma_decay < 1.0:
        return optax.exponential_decay(cfg.sigma, 1, cfg.sigma_decay, end_value=cfg.sigma_min)
    return optax.constant_schedule(cfg.sigma)


def _mapped_kwargs(cls: type, num_params: int, cfg) -> dict[str, Any]:
    takes = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # a class object, not an instance
    sigma = cfg.sigma
    mapped = {
        "optimizer": lambda: _optimizer(cfg),
        "std_schedule": lambda: _sigma_schedule(cfg),
        "use_antithetic_sampling": lambda: cfg.antithetic,
        "sampling_fn": lambda: (lambda key: sigma * jax.random.normal(key, (num_params,), jnp.float32)),
    }
    return {k: make() for k, make in mapped.items() if k in takes}


def _check_size(label: str, strategy: EvosaxStrategy) -> None:
    """Refuse algorithms whose state holds a P x P matrix beyond FULL_COVARIANCE_MAX_PARAMS parameters."""
    p = strategy.num_params
    if p <= FULL_COVARIANCE_MAX_PARAMS:
        return
    shapes = jax.eval_shape(lambda: FAMILIES[strategy.family].init(strategy, jnp.zeros(2, jnp.uint32),
                                                                   jnp.zeros((p,), jnp.float32)))
    if any(leaf.size >= p * p for leaf in jax.tree_util.tree_leaves(shapes)):
        raise UserError(f"strategy.name = {label}: keeps a {p} x {p} matrix; use it for at most "
                        f"{FULL_COVARIANCE_MAX_PARAMS} parameters (evosax/SNES, evosax/Sep_CMA_ES, openai_es scale "
                        "further)")


def build(key: str, num_params: int, population: int, cfg: StrategyConfig) -> EvosaxStrategy:
    """The EvosaxStrategy of evosax registry entry ``key`` for ``num_params`` parameters and ``population``."""
    label = PREFIX + key
    if key in REFUSED:
        raise UserError(f"strategy.name = {label}: {REFUSED[key]}")
    cls = EVOSAX_ALGORITHMS[key]
    family = family_of(cls)
    mapped_kwargs = _mapped_kwargs(cls, num_params, cfg)

    def make(options: dict[str, Any]):
        kwargs = {**mapped_kwargs, **options}
        try:
            if family == "stein":
                k = kwargs.pop("num_populations", _STEIN_DEFAULT_POPULATIONS)
                if population % k or population // k < 2:
                    raise OptionError(f"strategy.population = {population}: {label} splits it into "
                                      f"options.num_populations = {k} equal groups of at least 2")
                algorithm = cls(population // k, k, _solution(num_params), **kwargs)
            else:
                algorithm = cls(population, _solution(num_params), **kwargs)
        except AssertionError as exc:  # evosax checks its constructor arguments with asserts
            given = f"strategy.population = {population}" + (f" with options {options}" if options else "")
            raise OptionError(f"{given}: {label} refuses it: {str(exc).splitlines()[0] if str(exc) else 'bad value'}"
                              ) from None
        try:
            return algorithm, _default_params(algorithm)
        except jax.errors.ConcretizationTypeError:  # defaults computed with Python ints (LM_MA_ES): eagerly
            return algorithm, algorithm.default_params

    algorithm, params = make({})
    ctor_opts, replace = split_options(label, cls, params, dict(cfg.options))
    if ctor_opts:
        algorithm, params = make(ctor_opts)
    fields = {f.name for f in dataclasses.fields(params)}
    mapped = {"std_init": jnp.asarray(cfg.sigma, jnp.float32), "std_min": jnp.asarray(cfg.sigma_min, jnp.float32)}
    params = params.replace(**{k: v for k, v in mapped.items() if k in fields}, **replace)
    strategy = EvosaxStrategy(label, num_params, population, algorithm, params, family, float(cfg.sigma))
    _check_size(label, strategy)
    return strategy


def _factory(key: str) -> Callable[..., EvosaxStrategy]:
    def make(num_params: int, population: int, cfg) -> EvosaxStrategy:
        return build(key, num_params, population, cfg)

    make.__name__ = f"make_evosax_{key}"
    make.__doc__ = f"evosax's {key} through the generic adapter (see esrun.strategies.evosax_registry)."
    return make


for _key in EVOSAX_ALGORITHMS:
    register(PREFIX + _key)(_factory(_key))
