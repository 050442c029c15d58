"""Every algorithm of evosax's registry, by name (``evosax/<Name>``), through the generic seed-sharing adapter.

The sweep iterates ``evosax.algorithms.algorithms`` itself, so an algorithm a new evosax adds is tested by
default (or must be listed in ``REFUSED`` with its reason). Shapes are tiny (P = 4, population 8) and each
algorithm compiles one program (ask + tell) with XLA's optimizations off: compilation is the whole cost.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import esrun
from esrun.config.load import ConfigError
from esrun.config.schema import StrategyConfig
from esrun.errors import OptionError, UserError
from esrun.strategies import STRATEGIES, get_strategy
from esrun.strategies.evosax_adapter import EvosaxStrategy, _strong
from esrun.strategies.evosax_registry import EVOSAX_ALGORITHMS, REFUSED, names

from esrun_helpers.fast_compile import fast_compile as fast_compile_mode

P, POP, GENERATIONS = 4, 8, 3
X0 = jnp.full((P,), 1.0, jnp.float32)


@pytest.fixture(scope="module")
def fast_compile():
    with fast_compile_mode(subprocesses=False):  # in-process runs only
        yield


def _sphere(x):
    return -jnp.sum(x**2, axis=-1)


@pytest.mark.parametrize("name", [n for n in names() if n.split("/", 1)[1] not in REFUSED])
def test_every_evosax_algorithm_runs_on_the_sphere(name, fast_compile):
    strategy = get_strategy(name)(P, POP, StrategyConfig(name=name, population=POP, sigma=0.5))
    assert isinstance(strategy, EvosaxStrategy) and strategy.name == name

    @jax.jit
    def generation(state):
        population, _ = strategy.population_matrix(state)
        fitness = _sphere(population)
        new, metrics = strategy.tell(state, fitness)
        return new, population, fitness, metrics

    state = strategy.init(jax.random.PRNGKey(0), X0)
    first = None
    for g in range(GENERATIONS):
        state, population, fitness, metrics = generation(state)
        state = state._replace(es_state=_strong(state.es_state))  # one compilation: no weak types in the carry
        assert population.shape == (POP, P), (name, population.shape)
        assert np.isfinite(np.asarray(fitness)).all(), (name, g)
        first = population if first is None else first
    assert int(state.generation) == GENERATIONS
    assert not np.array_equal(np.asarray(first), np.asarray(population)), name  # generations differ
    mean = np.asarray(strategy.mean(state))
    assert mean.shape == (P,) and np.isfinite(mean).all(), name
    assert all(np.isfinite(float(v)) for v in metrics.values()), (name, metrics)
    # Workers evaluate slices: any member subset is the same rows as the whole generation.
    members = jnp.array([7, 0, 3, 3], jnp.int32)
    rows = strategy.member_params(state, members)
    np.testing.assert_array_equal(rows, strategy.population_matrix(state)[0][np.asarray(members)])


def test_registry_covers_evosax_and_both_kinds():
    registered = {n for n in STRATEGIES if n.startswith("evosax/")} | {n for n in names()}
    assert registered == {f"evosax/{k}" for k in EVOSAX_ALGORITHMS}
    assert len(EVOSAX_ALGORITHMS) >= 30
    families = {get_strategy(n)(P, POP, StrategyConfig(name=n, population=POP)).family
                for n in ("evosax/CMA_ES", "evosax/DifferentialEvolution", "evosax/SV_Open_ES")}
    assert families == {"distribution", "population", "stein"}


def test_options_reach_the_algorithm():
    cfg = StrategyConfig(name="evosax/DifferentialEvolution", population=POP,
                         options={"crossover_rate": 0.25, "num_diff": 2})
    s = get_strategy(cfg.name)(P, POP, cfg)
    assert float(s.params.crossover_rate) == pytest.approx(0.25) and s.algorithm.num_diff == 2
    cma = get_strategy("cma_es")(P, POP, StrategyConfig(name="cma_es", population=POP, options={"c_std": 0.5}))
    assert float(cma.params.c_std) == pytest.approx(0.5)


@pytest.mark.parametrize("name, options, expected", [
    ("evosax/PSO", {"inertia": 0.5}, ["strategy.options.inertia", "evosax/PSO", "inertia_coeff",
                                      "cognitive_coeff", "social_coeff"]),
    ("evosax/DifferentialEvolution", {"num_diff": "two"}, ["strategy.options.num_diff = 'two'", "integer"]),
    ("evosax/Open_ES", {"use_antithetic_sampling": False}, ["strategy.antithetic"]),
    ("cma_es", {"c_stdd": 1.0}, ["did you mean 'c_std'"]),
])
def test_bad_options_are_one_line_errors(name, options, expected):
    with pytest.raises(OptionError) as err:
        get_strategy(name)(P, POP, StrategyConfig(name=name, population=POP, options=options))
    msg = str(err.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, msg


@pytest.mark.parametrize("name, closest", [
    ("evosax/CMA_Es", "evosax/CMA_ES"),
    ("evosax/SimpleGa", "evosax/SimpleGA"),
    ("PSO", "evosax/PSO"),
])
def test_unknown_names_suggest_the_closest(name, closest):
    with pytest.raises(ConfigError) as err:
        esrun.load_config(None, "task.type=synthetic", f"strategy.name={name}")
    msg = str(err.value)
    assert "\n" not in msg and "unknown strategy" in msg and closest in msg, msg


def test_population_that_evosax_refuses_is_a_user_error():
    with pytest.raises(UserError, match="DifferentialEvolution"):
        get_strategy("evosax/DifferentialEvolution")(P, 2, StrategyConfig(population=2))
