"""OpenAI-ES (Salimans et al., 2017) with seed-derived antithetic noise and a chunked, O(chunk x P) update.

Search distribution N(mean, sigma^2 I). Member i of generation g has parameters

    pair(i) = i // 2,  sign(i) = +1 if i is even else -1            (antithetic)
    eps_k   = normal(fold_in(fold_in(run_key, g), k), [P])
    theta_i = mean + sigma * sign(i) * eps_pair(i)

(without antithetic sampling pair(i) = i and sign = +1). The gradient estimate of E[F(mean + sigma eps)] is

    g = 1 / (n sigma) * sum_i u_i sign(i) eps_pair(i) = 1 / (n sigma) * sum_k (u_{2k} - u_{2k+1}) eps_k

with u the shaped fitness. ``tell`` regenerates eps_k ``tell_chunk`` at a time inside a ``lax.scan`` and
accumulates ``w_chunk @ eps_chunk``, so its peak memory is O(tell_chunk x P), never O(n x P). The update ascends
``g - weight_decay * mean`` with an optax optimizer (Adam or SGD with momentum); sigma follows
``sigma <- max(sigma * sigma_decay, sigma_min)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from esrun.strategies.base import Strategy, register
from esrun.strategies.noise import COUNTER, NoiseSource, noise_rows, weighted_noise_sum
from esrun.strategies.optimizer import make_optimizer
from esrun.strategies.shaping import SHAPING

if TYPE_CHECKING:
    from esrun.config.schema import StrategyConfig


class OpenESState(NamedTuple):
    key: jax.Array  # [2] uint32 run key
    generation: jax.Array  # [] int32
    mean: jax.Array  # [P] float32
    sigma: jax.Array  # [] float32
    opt_state: Any


def noise(key: jax.Array, generation: jax.Array, index: jax.Array, num_params: int) -> jax.Array:
    """eps = normal(fold_in(fold_in(key, generation), index), [num_params]) — the counter-mode noise (one vector)."""
    return jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, generation), index), (num_params,))


@dataclass(frozen=True)
class OpenAIES(Strategy):
    num_params: int
    population: int
    sigma_init: float = 0.1
    sigma_decay: float = 1.0
    sigma_min: float = 0.0
    antithetic: bool = True
    fitness_shaping: str = "centered_rank"
    optimizer: str = "adam"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    tell_chunk: int = 32
    takes_noise = True  # member_params / range_params / tell accept a noise source (strategies/noise.py)

    def _opt(self) -> optax.GradientTransformation:
        return make_optimizer(self.optimizer, self.learning_rate, self.momentum)

    @property
    def num_noise(self) -> int:
        """Distinct noise vectors per generation: pairs with antithetic sampling, members otherwise."""
        return self.population // 2 if self.antithetic else self.population

    def init(self, key: jax.Array, x0: jax.Array) -> OpenESState:
        mean = jnp.asarray(x0, jnp.float32)
        return OpenESState(
            key=jnp.asarray(key, jnp.uint32),
            generation=jnp.zeros((), jnp.int32),
            mean=mean,
            sigma=jnp.asarray(self.sigma_init, jnp.float32),
            opt_state=self._opt().init(mean),
        )

    def member_params(self, state: OpenESState, members: jax.Array, noise: NoiseSource = COUNTER) -> jax.Array:
        """``members: [n]`` -> ``[n, P]``; ``noise``: the run's noise source (counter draws or table slices)."""
        members = jnp.asarray(members, jnp.int32)
        if self.antithetic:
            index, sign = members // 2, 1.0 - 2.0 * (members % 2).astype(jnp.float32)
        else:
            index, sign = members, jnp.ones(members.shape, jnp.float32)
        eps = noise_rows(noise, state.key, state.generation, index, self.num_params)
        return state.mean[None, :] + state.sigma * sign[:, None] * eps

    def range_params(self, state: OpenESState, start: jax.Array, size: int,
                     noise: NoiseSource = COUNTER) -> jax.Array:
        """Parameters of members ``start .. start + size - 1``: ``[size, P]``, the rows of ``member_params``.

        With antithetic sampling and an even ``start`` and ``size`` the range holds whole pairs, so each pair's
        noise is drawn once and used with both signs (half the noise generation of ``member_params``). The two
        are separate XLA programs and may round the last bit differently (fused multiply-add); determinism does
        not depend on it, because every process evaluates a chunk through the same one (Replica).
        """
        if not (self.antithetic and size % 2 == 0):
            return self.member_params(state, start + jnp.arange(size, dtype=jnp.int32), noise)
        pairs = start // 2 + jnp.arange(size // 2, dtype=jnp.int32)
        eps = noise_rows(noise, state.key, state.generation, pairs, self.num_params)
        step = state.sigma * eps
        both = jnp.stack([state.mean[None, :] + step, state.mean[None, :] + (-step)], axis=1)
        return both.reshape(size, self.num_params)

    def mean(self, state: OpenESState) -> jax.Array:
        return state.mean

    def gradient(self, state: OpenESState, fitness: jax.Array, noise: NoiseSource = COUNTER) -> jax.Array:
        """g = 1/(n sigma) sum_k w_k eps_k, ``fitness: [n]`` -> ``[P]``; counter mode regenerates ``tell_chunk``
        noise vectors per step, table mode sums table slices (strategies/noise.py: weighted_noise_sum)."""
        u = SHAPING[self.fitness_shaping](jnp.asarray(fitness))
        w = u[0::2] - u[1::2] if self.antithetic else u
        acc = weighted_noise_sum(noise, state.key, state.generation, w, self.num_params, self.tell_chunk)
        return acc / (self.population * state.sigma)

    def tell(self, state: OpenESState, fitness: jax.Array, noise: NoiseSource = COUNTER
             ) -> tuple[OpenESState, dict[str, jax.Array]]:
        """``fitness: [population]`` -> (next state, metrics); ``noise`` must be the source the members used."""
        grad = self.gradient(state, fitness, noise)
        ascent = grad - self.weight_decay * state.mean
        updates, opt_state = self._opt().update(-ascent, state.opt_state, state.mean)
        mean = optax.apply_updates(state.mean, updates)
        sigma = jnp.maximum(state.sigma * self.sigma_decay, self.sigma_min).astype(jnp.float32)
        metrics = {
            "grad_norm": jnp.linalg.norm(grad),
            "update_ratio": jnp.linalg.norm(updates) / (jnp.linalg.norm(state.mean) + 1e-12),
            "sigma": state.sigma,
        }
        new = state._replace(generation=state.generation + 1, mean=mean, sigma=sigma, opt_state=opt_state)
        return new, metrics


@register("openai_es")
def make_openai_es(num_params: int, population: int, cfg: StrategyConfig) -> OpenAIES:
    return OpenAIES(
        num_params=num_params,
        population=population,
        sigma_init=cfg.sigma,
        sigma_decay=cfg.sigma_decay,
        sigma_min=cfg.sigma_min,
        antithetic=cfg.antithetic,
        fitness_shaping=cfg.fitness_shaping,
        optimizer=cfg.optimizer,
        learning_rate=cfg.learning_rate,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        tell_chunk=cfg.tell_chunk,
    )
