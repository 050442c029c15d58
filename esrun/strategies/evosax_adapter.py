"""evosax strategies (PGPE, SNES, xNES, CMA-ES, Sep-CMA-ES, OpenAI-ES) behind esrun's strategy interface.

The seed-sharing protocol for strategies that need the whole population matrix (docs/design.md, "The seed
protocol"): every replica rebuilds the population from the state alone. The adapter's state holds the evosax
state *before* the generation's ask, the evosax params, the run key and a generation counter ``g``; then

    ask_key_g          = fold_in(fold_in(run_key, g), 0)
    X_g, s'_g          = evosax.ask(ask_key_g, s_g, params)            X_g: [population, P]
    member_params(s, m)= X_g[m]                                         [n, P]
    tell(s, F)         = evosax.tell(fold_in(fold_in(run_key, g), 1), X_g, -F, s'_g, params), g + 1

``member_params`` and ``tell`` both recompute the same ask (same key, same state -> the same ``X_g`` and the same
post-ask state ``s'_g``, e.g. CMA-ES's eigendecomposition or xNES's stored ``z``), so any replica can evaluate
any slice and apply the update from fitness scalars only. Each call rebuilds the whole ``X_g`` (an evaluation
chunk costs O(population x P) work and memory, O(P^2) for CMA-ES and xNES, which refuse more than
``FULL_COVARIANCE_MAX_PARAMS``): these strategies are for small and medium parameter counts; the native
``openai_es`` is the large-P one (``tell_chunk`` applies only to it).

**Fitness sign.** esrun maximizes fitness (returns); evosax minimizes. The only sign flip is in ``tell`` above:
evosax receives ``-F``. The metrics returned (``sigma``: mean std, ``step_norm``, ``mean_norm``) carry no sign.

Mapping of ``StrategyConfig`` (fields not listed are ignored by that strategy):

    name             evosax class    sigma ->            learning_rate / optimizer / momentum / weight_decay
    pgpe             PGPE            std_init            optax adam(lr) | sgd(lr, momentum), after L2 decay wd
    snes             SNES            std_init            (natural-gradient mean step of 1, SNES's own rates)
    xnes             xNES            std_init            (natural-gradient mean step of 1, xNES's own rates)
    cma_es           CMA_ES          std_init; sigma_min -> std_min   (Hansen's default rates, c_mean = 1)
    sep_cma_es       Sep_CMA_ES      std_init; sigma_min -> std_min   (Hansen's default rates, c_mean = 1)
    open_es_evosax   Open_ES         std_schedule(t) = max(sigma * sigma_decay^t, sigma_min);
                                     antithetic -> use_antithetic_sampling;
                                     optax adam(lr) | sgd(lr, momentum), after L2 decay wd

``fitness_shaping`` (centered_rank | z_score | raw, the functions of ``esrun.strategies.shaping`` applied to the
negated fitness) is used by the gradient strategies ``pgpe`` and ``open_es_evosax``. The NES and CMA-ES family
weight members by rank with their own recombination weights, which are part of the algorithm; they ignore
``fitness_shaping``, and adapt their step size themselves (``sigma_decay`` is ignored; CMA-ES honours
``sigma_min``). Weight decay ``wd`` adds ``wd * mean`` to the minimized gradient, i.e. ascends ``g - wd * mean``
exactly as ``openai_es`` does.

**Every evosax algorithm by name.** ``evosax/<Name>`` for each entry of evosax's own registry
(``evosax.algorithms.algorithms``) is built by one generic builder (``esrun.strategies.evosax_registry``):
``sigma`` -> ``std_init`` and ``sigma_min`` -> ``std_min`` where the params have them, and the constructor gets
``optimizer`` / ``std_schedule`` / ``use_antithetic_sampling`` from the same fields as above when it takes them.
The protocol is played by one of three families, chosen by the algorithm's evosax base class:

    distribution   the replay above (mean() = the distribution mean)
    population     generation 0 evaluates X_0 = x0 + sigma * N(0, I) drawn with ask_key_0, and tell builds the
                   evosax state with evosax's init(X_0, -F_0); later generations replay ask / tell as above.
                   mean() = the best member seen so far (evosax's best_solution)
    stein          SV-CMA-ES / SV-Open-ES: ``options.num_populations`` particles (default 2), each a search
                   distribution of population / num_populations members, initial means x0 + sigma * N(0, I);
                   mean() = the mean of the particle holding the best fitness seen so far
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax import algorithms as ea

from esrun.errors import UserError
from esrun.strategies.base import Strategy, register
from esrun.strategies.optimizer import make_optimizer
from esrun.strategies.shaping import SHAPING

FULL_COVARIANCE_MAX_PARAMS = 20_000
"""CMA-ES and xNES hold P x P matrices; beyond this many parameters they would need > 1.6 GB each."""


class EvosaxState(NamedTuple):
    key: jax.Array  # [2] uint32 run key
    generation: jax.Array  # [] int32
    es_state: Any  # the evosax state before this generation's ask
    es_params: Any  # the evosax params (array leaves, so they can be changed without retracing)


def _strong(tree):
    """Leaves as non-weakly-typed 32-bit arrays, so a checkpointed (numpy) state retraces to the same computation.

    Done through numpy: eager jnp conversions would compile one tiny XLA program per leaf shape.
    """

    narrow = {np.dtype(np.float64): np.float32, np.dtype(np.int64): np.int32}

    def leaf(x):
        a = np.asarray(x)
        return jnp.asarray(a.astype(narrow.get(a.dtype, a.dtype)))

    return jax.tree_util.tree_map(leaf, tree)


def _default_params(algorithm):
    """evosax's default params, computed in one compiled program (eagerly they cost one compilation per op)."""
    return jax.jit(lambda: algorithm.default_params)()


def _like(new, old):
    """``new`` cast leaf by leaf to the (strong) dtypes of ``old``: both branches of a ``lax.cond`` must agree."""
    return jax.tree_util.tree_map(lambda n, o: jax.lax.convert_element_type(n, o.dtype), new, old)


class Family(NamedTuple):
    """How one kind of evosax algorithm plays the seed-sharing protocol (see the module docstring).

    init(strategy, key, x0: [P]) -> es_state;  ask(strategy, ask_key, state) -> (X: [population, P], asked);
    tell(strategy, tell_key, X, neg_fitness: [population], asked, state) -> es_state;
    mean(strategy, es_state) -> [P].
    """

    init: Callable
    ask: Callable
    tell: Callable
    mean: Callable


def _dist_init(s, key, x0):
    return s.algorithm.init(key, x0, s.params)


def _dist_ask(s, ask_key, state):
    return s.algorithm.ask(ask_key, state.es_state, state.es_params)


def _dist_tell(s, tell_key, population, neg_fitness, asked, state):
    es_state, _ = s.algorithm.tell(tell_key, population, neg_fitness, asked, state.es_params)
    return es_state


def _pop_init(s, key, x0):
    """A placeholder state whose population is x0 repeated (fitness +inf): generation 0 replaces it."""
    population = jnp.broadcast_to(x0, (s.population, s.num_params))
    return s.algorithm.init(key, population, jnp.full((s.population,), jnp.inf, jnp.float32), s.params)


def _pop_ask(s, ask_key, state):
    def first():  # X_0 = x0 + sigma * N(0, I)
        noise = jax.random.normal(ask_key, (s.population, s.num_params), jnp.float32)
        return state.es_state.population + s.sigma * noise, state.es_state

    def later():
        population, asked = s.algorithm.ask(ask_key, state.es_state, state.es_params)
        return population.astype(jnp.float32), _like(asked, state.es_state)

    return jax.lax.cond(state.generation == 0, first, later)


def _pop_tell(s, tell_key, population, neg_fitness, asked, state):
    def first():
        return _like(s.algorithm.init(tell_key, population, neg_fitness, state.es_params), state.es_state)

    def later():
        es_state, _ = s.algorithm.tell(tell_key, population, neg_fitness, asked, state.es_params)
        return _like(es_state, state.es_state)

    return jax.lax.cond(state.generation == 0, first, later)


def _stein_init(s, key, x0):
    k = s.algorithm.num_populations
    means = x0 + s.sigma * jax.random.normal(jax.random.fold_in(key, 1), (k, s.num_params), jnp.float32)
    return s.algorithm.init(key, means, s.params)


def _stein_tell(s, tell_key, population, neg_fitness, asked, state):
    k = s.algorithm.num_populations
    grouped = population.reshape(k, s.population // k, s.num_params)
    es_state, _ = s.algorithm.tell(tell_key, grouped, neg_fitness, asked, state.es_params)
    return es_state


FAMILIES: dict[str, Family] = {
    "distribution": Family(_dist_init, _dist_ask, _dist_tell, lambda s, es: es.mean),
    "population": Family(_pop_init, _pop_ask, _pop_tell, lambda s, es: es.best_solution),
    "stein": Family(_stein_init, _dist_ask, _stein_tell, lambda s, es: es.mean[jnp.argmin(es.best_fitness)]),
}
"""family name -> how its algorithms are replayed; ``evosax_registry`` picks one from the evosax base class."""


@dataclass(frozen=True, eq=False)
class EvosaxStrategy(Strategy):
    """One evosax algorithm, replayed from seeds; see the module docstring."""

    name: str
    num_params: int
    population: int
    algorithm: Any = field(repr=False)  # an evosax algorithm over a flat [P] solution
    params: Any = field(repr=False)  # its evosax params, with StrategyConfig mapped in
    family: str = "distribution"  # a key of FAMILIES
    sigma: float = 1.0  # scale of generation 0 (population family) or of the initial means (stein family)

    @property
    def _family(self) -> Family:
        return FAMILIES[self.family]

    def init(self, key: jax.Array, x0: jax.Array) -> EvosaxState:
        x0 = jnp.asarray(x0, jnp.float32)
        if x0.shape != (self.num_params,):
            raise ValueError(f"x0 has shape {x0.shape}, expected ({self.num_params},)")
        key = jnp.asarray(key, jnp.uint32)
        es_state = self._family.init(self, key, x0)
        return EvosaxState(key=key, generation=jnp.zeros((), jnp.int32), es_state=_strong(es_state),
                           es_params=_strong(self.params))

    def _keys(self, state: EvosaxState):
        gen_key = jax.random.fold_in(state.key, state.generation)
        return jax.random.fold_in(gen_key, 0), jax.random.fold_in(gen_key, 1)

    def population_matrix(self, state: EvosaxState) -> tuple[jax.Array, Any]:
        """The whole generation ``X_g: [population, P]`` and the post-ask evosax state, rebuilt from the state."""
        ask_key, _ = self._keys(state)
        return self._family.ask(self, ask_key, state)

    def member_params(self, state: EvosaxState, members: jax.Array) -> jax.Array:
        members = jnp.asarray(members, jnp.int32)
        population, _ = self.population_matrix(state)
        return population[members]

    def mean(self, state: EvosaxState) -> jax.Array:
        return self._family.mean(self, state.es_state)

    def tell(self, state: EvosaxState, fitness: jax.Array) -> tuple[EvosaxState, dict[str, jax.Array]]:
        fitness = jnp.asarray(fitness, jnp.float32)
        if fitness.shape != (self.population,):
            raise ValueError(f"fitness has shape {fitness.shape}, expected ({self.population},)")
        population, asked = self.population_matrix(state)
        _, tell_key = self._keys(state)
        # The one sign flip: esrun maximizes fitness, evosax minimizes.
        es_state = self._family.tell(self, tell_key, population, -fitness, asked, state)
        new = state._replace(generation=state.generation + 1, es_state=es_state)
        mean = self.mean(new)
        metrics = {
            "step_norm": jnp.linalg.norm(mean - self.mean(state)),
            "mean_norm": jnp.linalg.norm(mean),
        }
        if hasattr(es_state, "std"):  # the mean std where the algorithm has one
            metrics = {"sigma": jnp.mean(es_state.std), **metrics}
        return new, metrics


# -- StrategyConfig -> evosax ------------------------------------------------------------------------------


def _optimizer(cfg) -> optax.GradientTransformation:
    """cfg.optimizer / learning_rate / momentum, after L2 weight decay on the minimized gradient."""
    return make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.momentum, cfg.weight_decay)


def _shaping(cfg) -> Callable:
    """esrun's shaping function of the (already negated) fitness, in evosax's fitness_shaping_fn signature."""
    shape = SHAPING[cfg.fitness_shaping]

    def fitness_shaping_fn(population, fitness, state, params):
        return shape(fitness)

    return fitness_shaping_fn


def _solution(num_params: int) -> jax.Array:
    return jnp.zeros((num_params,), jnp.float32)


def _even(name: str, population: int) -> None:
    if population % 2:
        raise UserError(f"strategy.population = {population}: {name} samples antithetic pairs, must be even")


def _small(name: str, num_params: int) -> None:
    if num_params > FULL_COVARIANCE_MAX_PARAMS:
        raise UserError(
            f"strategy.name = {name}: keeps a {num_params} x {num_params} matrix; use it for at most "
            f"{FULL_COVARIANCE_MAX_PARAMS} parameters (openai_es, snes, pgpe or sep_cma_es scale further)"
        )


def _pgpe(num_params, population, cfg):
    _even("pgpe", population)
    algo = ea.PGPE(population, _solution(num_params), optimizer=_optimizer(cfg), fitness_shaping_fn=_shaping(cfg))
    return algo, _default_params(algo).replace(std_init=cfg.sigma)


def _snes(num_params, population, cfg):
    algo = ea.SNES(population, _solution(num_params))
    return algo, _default_params(algo).replace(std_init=jnp.asarray(cfg.sigma))


def _xnes(num_params, population, cfg):
    _small("xnes", num_params)
    algo = ea.xNES(population, _solution(num_params))
    return algo, _default_params(algo).replace(std_init=jnp.asarray(cfg.sigma))


def _cma(cls, name):
    def build(num_params, population, cfg):
        if cls is ea.CMA_ES:
            _small(name, num_params)
        algo = cls(population, _solution(num_params))
        return algo, _default_params(algo).replace(std_init=jnp.asarray(cfg.sigma), std_min=cfg.sigma_min)

    return build


def _open_es(num_params, population, cfg):
    if cfg.antithetic:
        _even("open_es_evosax", population)
    if cfg.sigma_decay < 1.0:
        schedule = optax.exponential_decay(cfg.sigma, 1, cfg.sigma_decay, end_value=cfg.sigma_min)
    else:
        schedule = optax.constant_schedule(cfg.sigma)
    algo = ea.Open_ES(
        population,
        _solution(num_params),
        use_antithetic_sampling=cfg.antithetic,
        optimizer=_optimizer(cfg),
        std_schedule=schedule,
        fitness_shaping_fn=_shaping(cfg),
    )
    return algo, _default_params(algo)


BUILDERS: dict[str, Callable] = {
    "pgpe": _pgpe,
    "snes": _snes,
    "xnes": _xnes,
    "cma_es": _cma(ea.CMA_ES, "cma_es"),
    "sep_cma_es": _cma(ea.Sep_CMA_ES, "sep_cma_es"),
    "open_es_evosax": _open_es,
}
"""esrun name -> builder(num_params, population, cfg) -> (evosax algorithm, evosax params)."""


def _factory(name: str, build: Callable):
    def make(num_params: int, population: int, cfg) -> EvosaxStrategy:
        from esrun.strategies.evosax_registry import split_options

        algorithm, params = build(num_params, population, cfg)
        # Native names take the scalar evosax params as options (their constructors are set by the fields above).
        _, replace = split_options(name, type(algorithm), params, dict(getattr(cfg, "options", None) or {}), ctor=False)
        if replace:
            params = params.replace(**replace)
        return EvosaxStrategy(name, num_params, population, algorithm, params)

    make.__name__ = f"make_{name}"
    make.__doc__ = f"evosax-backed {name!r} strategy (see esrun.strategies.evosax_adapter)."
    return make


for _name, _build in BUILDERS.items():
    register(_name)(_factory(_name, _build))
