"""A replica: the task, the strategy and the pure generation update that every process applies identically.

Keys (all derived from ``PRNGKey(seed)``, so any process can rebuild them):

    strategy run key      fold_in(root, 0)                 -> member noise (see strategies/openai_es.py)
    chunk episodes        fold_in(fold_in(fold_in(root, 1), g), chunk)
    evaluation episodes   fold_in(fold_in(root, 2), g)
    initial parameters    fold_in(root, 3)
    noise table           fold_in(root, 4)                 -> strategy.noise=table (runner/noise_table.py)
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from esrun.errors import UserError
from esrun.runner.noise_table import table_source, table_too_small
from esrun.strategies import get_strategy
from esrun.strategies.noise import COUNTER
from esrun.tasks import build_task
from esrun.tasks.obs_norm import ObsStats, merge_all

if TYPE_CHECKING:
    from esrun.config.schema import Config
    from esrun.runner.noise_table import SharedTable
    from esrun.strategies.noise import NoiseSource
    from esrun.tasks.base import ChunkResult


class RunState(NamedTuple):
    """Everything a run needs to continue exactly where it stopped (checkpointed whole)."""

    strategy: Any  # the strategy's state pytree
    obs_stats: ObsStats | None
    generation: int
    env_steps: int
    evaluations: int
    nonfinite: int  # members with NaN / inf fitness so far
    best_fitness: float
    eval_return: float | None  # last evaluation return of the mean policy
    eval_generation: int  # generation at which eval_return was measured (-1: never)
    wall_seconds: float  # accumulated over every session of the run


def sanitize_fitness(fitness: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank NaN / inf worst: they take the smallest finite value (0 if none is finite). Returns (clean, count)."""
    fitness = np.asarray(fitness, np.float64)
    finite = np.isfinite(fitness)
    bad = int((~finite).sum())
    if bad:
        fill = fitness[finite].min() if finite.any() else 0.0
        fitness = np.where(finite, fitness, fill)
    return fitness, bad


class Replica:
    """One process's copy of the run: its task, strategy and keys, the chunk evaluation and the pure update.

    Every process (coordinator, Ray worker, MPI rank) builds one from the same config, so each applies the same
    ``apply(state, fitness, steps, obs_delta)`` to the same fitness vector and their states stay bitwise equal.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.task = build_task(cfg)
        self.num_params = self.task.num_params
        pop = cfg.strategy.population
        self.strategy = get_strategy(cfg.strategy.name)(self.num_params, pop, cfg.strategy)
        self.chunk_size = cfg.chunk_size()
        self.num_chunks = pop // self.chunk_size
        self.root = jax.random.PRNGKey(cfg.seed)
        # Strategies that take a noise source get it as a jit argument (the table is a buffer, never a constant).
        self.takes_noise = bool(getattr(self.strategy, "takes_noise", False))
        self._noise: NoiseSource | None = COUNTER if self.takes_noise else None
        self.shared_table: SharedTable | None = None  # mapped on first use (strategy.noise=table)
        if cfg.strategy.noise == "table":
            if not self.takes_noise:
                raise UserError(f"strategy.noise=table: strategy {cfg.strategy.name!r} draws its own noise; "
                                "use strategy.noise=counter")
            if cfg.strategy.noise_table_size < self.num_params:
                raise UserError(table_too_small(cfg.strategy.noise_table_size, self.num_params))
            self._noise = None  # mapped on first use: `esrun evaluate` never needs it
        self._member_params = jax.jit(self.strategy.member_params)
        # Chunks start at multiples of chunk_size; an even chunk then holds whole antithetic pairs.
        self._range_params = None
        if hasattr(self.strategy, "range_params") and self.chunk_size % 2 == 0:
            self._range_params = jax.jit(self.strategy.range_params, static_argnums=2)
        self._tell = jax.jit(self.strategy.tell)
        self.uses_obs_stats = bool(getattr(cfg.task, "obs_norm", False))
        # ARS's survival-bonus removal: fitness = return - shift x steps (per episode); evaluation returns unshifted
        self.reward_shift = float(getattr(cfg.task, "reward_shift", 0.0))
        self.episodes = int(getattr(cfg.task, "episodes_per_member", 1))

    @property
    def noise(self) -> NoiseSource | None:
        """The strategy's noise source (strategies/noise.py), or None for strategies that draw their own."""
        if self._noise is None and self.takes_noise:
            self._noise, self.shared_table = table_source(self.root, self.cfg.strategy.noise_table_size,
                                                          self.num_params)
        return self._noise

    def _with_noise(self, *args) -> tuple:
        return (*args, self.noise) if self.takes_noise else args

    # -- keys -------------------------------------------------------------------------------------------
    def chunk_key(self, generation: int, chunk: int) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(self.root, 1), generation), chunk)

    def eval_key(self, generation: int) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(self.root, 2), generation)

    # -- state ------------------------------------------------------------------------------------------
    def init_state(self) -> RunState:
        x0 = self.task.initial_params(jax.random.fold_in(self.root, 3))
        sstate = self.strategy.init(jax.random.fold_in(self.root, 0), jnp.asarray(x0))
        obs = None
        if self.uses_obs_stats:
            assert self.task.obs_dim is not None  # a task that normalizes observations sets obs_dim
            obs = ObsStats.zeros(self.task.obs_dim)
        return RunState(strategy=sstate, obs_stats=obs, generation=0, env_steps=0, evaluations=0, nonfinite=0,
                        best_fitness=float("-inf"), eval_return=None, eval_generation=-1, wall_seconds=0.0)

    def mean(self, state: RunState) -> np.ndarray:
        return np.asarray(self.strategy.mean(state.strategy), np.float32)

    # -- one generation -------------------------------------------------------------------------------
    def evaluate_chunks(self, state: RunState, chunk_ids: Iterable[int]) -> list[ChunkResult]:
        """ChunkResults of ``chunk_ids`` (in the given order) for generation ``state.generation``."""
        out = []
        for c in chunk_ids:
            if self._range_params is not None:
                params = self._range_params(*self._with_noise(state.strategy, jnp.int32(c * self.chunk_size),
                                                              self.chunk_size))
            else:
                members = jnp.arange(c * self.chunk_size, (c + 1) * self.chunk_size, dtype=jnp.int32)
                params = self._member_params(*self._with_noise(state.strategy, members))
            result = self.task.evaluate(params, self.chunk_key(state.generation, c), state.obs_stats)
            if self.reward_shift:
                result = result._replace(fitness=result.fitness - self.reward_shift * result.steps / self.episodes)
            out.append(result)
        return out

    def apply(self, state: RunState, fitness: np.ndarray, steps: int, obs_delta: ObsStats | None
              ) -> tuple[RunState, dict[str, float]]:
        """The update every replica applies: strategy tell, observation statistics, counters.

        ``fitness: [population]`` raw (may hold NaN); ``steps``: environment steps of the generation;
        ``obs_delta``: the generation's observation statistics merged in chunk order.
        Returns (next state, metrics dict).
        """
        clean, bad = sanitize_fitness(fitness)
        if bad == len(clean):  # every member failed: nothing to rank (ties by index would move the mean)
            sstate, es_metrics = state.strategy, {}
        else:
            sstate, es_metrics = self._tell(*self._with_noise(state.strategy, jnp.asarray(clean, jnp.float32)))
        obs = state.obs_stats
        if obs is not None and obs_delta is not None:
            obs = obs.merge(obs_delta)
        finite = np.asarray(fitness)[np.isfinite(fitness)]
        best = max(state.best_fitness, float(finite.max())) if finite.size else state.best_fitness
        new = state._replace(
            strategy=sstate,
            obs_stats=obs,
            generation=state.generation + 1,
            env_steps=state.env_steps + int(steps),
            evaluations=state.evaluations + len(fitness),
            nonfinite=state.nonfinite + bad,
            best_fitness=best,
        )
        metrics = {
            "fitness/best": float(finite.max()) if finite.size else float("nan"),
            "fitness/mean": float(finite.mean()) if finite.size else float("nan"),
            "fitness/min": float(finite.min()) if finite.size else float("nan"),
            "fitness/std": float(finite.std()) if finite.size else float("nan"),
            "fitness/nonfinite": float(bad),
        }
        metrics.update({f"es/{k}": float(v) for k, v in es_metrics.items()})
        return new, metrics

    @staticmethod
    def combine(results: Sequence[ChunkResult]) -> tuple[np.ndarray, int, ObsStats | None]:
        """Fitness vector, total steps and observation statistics (merged in chunk order) of a generation."""
        fitness = np.concatenate([np.asarray(r.fitness, np.float64) for r in results])
        steps = int(sum(int(np.sum(r.steps)) for r in results))
        return fitness, steps, merge_all(r.obs_delta for r in results)

    def evaluate_mean(self, state: RunState, episodes: int, generation: int | None = None) -> np.ndarray:
        g = state.generation if generation is None else generation
        return self.task.evaluate_policy(self.mean(state), self.eval_key(g), episodes, state.obs_stats)
