"""Noise sources of the seed-sharing protocol: counter-based Gaussian draws or slices of a shared noise table.

Both answer the one question every replica asks: the noise vector ``eps_k: [P]`` of index ``k`` (an antithetic
pair or a member) in generation ``g`` of the run with key ``key``.

    counter:  eps_k = normal(fold_in(fold_in(key, g), k), [P])                    threefry, drawn on demand
    table:    o_k   = randint(fold_in(fold_in(key, g), k), 0, T - P + 1)           one integer per index
              eps_k = table[o_k : o_k + P]                                         a slice of T float32 N(0, 1)

(Salimans et al., 2017 keep one table of 250M float32 per machine and send offsets.) A source is a pytree
(``NamedTuple``): the counter source has no leaves, the table source has one, the table itself, so it enters
jitted functions as an *argument* (a buffer aliased by XLA, never a constant baked into the program).

Two operations, implemented by both sources with the same shapes:

    noise_rows(source, key, g, indices [n], P)                     -> eps [n, P]
    weighted_noise_sum(source, key, g, weights [K], P, chunk)       -> sum_k weights_k eps_k  [P]

In counter mode ``weighted_noise_sum`` regenerates ``chunk`` vectors per ``lax.scan`` step and multiplies
``[chunk] @ [chunk, P]`` (peak O(chunk x P)). In table mode each step adds ``TABLE_SLICES_PER_STEP`` weighted
slices in one fused loop: the update reads ``K x P`` floats of the table, a memory-bound operation, instead of
generating them, and holds no ``[chunk, P]`` buffer (1.2x a BLAS ``np.dot`` of the same slices at 1e6 x 512 pairs;
docs/BENCHMARKS.md, "Noise table (issue 13)").

Properties of the table mode: the offsets are uniform on ``[0, T - P]`` (``jax.random.randint``), so every slice
lies inside the table for any ``P <= T``; two indices share all their noise only when their offsets coincide
(probability ``1 / (T - P + 1)`` per pair of indices). Slices at different offsets overlap, so two noise vectors
are not independent as vectors (entry i of one and entry i of the other are distinct table entries), as in
Salimans et al. Table contents are built by :mod:`esrun.runner.noise_table`.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def _index_key(key: jax.Array, generation: jax.Array, index: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(key, generation), index)


TABLE_SLICES_PER_STEP = 8
"""Table slices added per scan step of the table-mode update: 8 measured fastest of 1 / 4 / 8 / 16 / 32 at
1M parameters x 512 pairs on a 2-core EPYC (bench/es_update.py); more slices make one fusion too wide."""


class CounterNoise(NamedTuple):
    """eps_k = normal(fold_in(fold_in(key, g), k), [P]): no state; every vector is drawn with threefry on demand."""

    def rows(self, key: jax.Array, generation: jax.Array, indices: jax.Array, num_params: int) -> jax.Array:
        """``indices: [n]`` -> ``[n, num_params]`` float32."""
        return jax.vmap(lambda k: jax.random.normal(_index_key(key, generation, k), (num_params,)))(indices)

    def weighted_sum(self, key: jax.Array, generation: jax.Array, weights: jax.Array, num_params: int,
                     chunk: int) -> jax.Array:
        """sum_k weights_k eps_k: a scan over blocks of ``chunk`` indices, each ``[chunk] @ [chunk, P]``."""
        w, idx = _blocks(weights, chunk)

        def body(acc, xs):
            wc, ic = xs
            return acc + wc @ self.rows(key, generation, ic, num_params), None

        acc, _ = jax.lax.scan(body, jnp.zeros((num_params,), jnp.float32), (w, idx))
        return acc


class TableNoise(NamedTuple):
    """eps_k = table[o_k : o_k + P] with o_k = randint(fold_in(fold_in(key, g), k), 0, T - P + 1)."""

    table: jax.Array  # [T] float32, i.i.d. N(0, 1)

    def offsets(self, key: jax.Array, generation: jax.Array, indices: jax.Array, num_params: int) -> jax.Array:
        """``indices: [n]`` -> offsets ``[n]`` int32 in ``[0, T - num_params]`` (T = table size)."""
        high = self.table.shape[0] - num_params + 1
        if high < 1:
            raise ValueError(f"noise table of {self.table.shape[0]} floats is smaller than {num_params} parameters")
        return jax.vmap(lambda k: jax.random.randint(_index_key(key, generation, k), (), 0, high, jnp.int32))(indices)

    def rows(self, key: jax.Array, generation: jax.Array, indices: jax.Array, num_params: int) -> jax.Array:
        """``indices: [n]`` -> ``[n, num_params]``: one ``dynamic_slice`` of the table per index."""
        offs = self.offsets(key, generation, indices, num_params)
        return jax.vmap(lambda o: jax.lax.dynamic_slice(self.table, (o,), (num_params,)))(offs)

    def weighted_sum(self, key: jax.Array, generation: jax.Array, weights: jax.Array, num_params: int,
                     chunk: int) -> jax.Array:
        """sum_k weights_k table[o_k : o_k + P]: per scan step ``acc + sum_j w_j slice_j`` over
        ``TABLE_SLICES_PER_STEP`` slices, which XLA fuses into one pass (no ``[chunk, P]`` gather buffer).
        ``chunk`` (the counter mode's block) is not needed: memory is O(P) for any block."""
        del chunk
        w, idx = _blocks(weights, TABLE_SLICES_PER_STEP)
        offs = jax.vmap(lambda i: self.offsets(key, generation, i, num_params))(idx)

        def body(acc, xs):
            wc, oc = xs
            for j in range(wc.shape[0]):  # unrolled: one fusion reads the slices once and writes acc once
                acc = acc + wc[j] * jax.lax.dynamic_slice(self.table, (oc[j],), (num_params,))
            return acc, None

        acc, _ = jax.lax.scan(body, jnp.zeros((num_params,), jnp.float32), (w, offs))
        return acc


def _blocks(weights: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
    """weights [K] -> (weights [B, c], indices [B, c]) zero-padded to whole blocks of c = min(chunk, K)."""
    k = weights.shape[0]
    c = max(1, min(chunk, k))
    n = -(-k // c)
    w = jnp.pad(weights, (0, n * c - k)).reshape(n, c)
    return w, jnp.arange(n * c, dtype=jnp.int32).reshape(n, c)


NoiseSource = CounterNoise | TableNoise
COUNTER = CounterNoise()


def noise_rows(source: NoiseSource, key: jax.Array, generation: ArrayLike, indices: jax.Array,
               num_params: int) -> jax.Array:
    """eps of ``indices: [n]`` (pairs or members) in generation ``generation``: ``[n, num_params]`` float32.

    The one noise function of the protocol (OpenAI-ES, ARS, the estimators' ES): any process with the same
    ``(source, key)`` gets the same rows, with no communication.
    """
    indices = jnp.asarray(indices, jnp.int32)
    if indices.ndim != 1:
        raise ValueError(f"indices must be [n], got shape {indices.shape}")
    return source.rows(key, jnp.asarray(generation, jnp.int32), indices, num_params)


def weighted_noise_sum(source: NoiseSource, key: jax.Array, generation: ArrayLike, weights: jax.Array, num_params: int,
                       chunk: int) -> jax.Array:
    """sum_k weights_k eps_k over k = 0 .. K-1 (``weights: [K]``): ``[num_params]`` float32.

    Counter mode regenerates ``chunk`` noise vectors per scan step (peak memory O(chunk x P)); table mode adds
    ``TABLE_SLICES_PER_STEP`` weighted slices per step in one fused loop (peak memory O(P) besides the table).
    The K noise vectors are never all held at once.
    """
    return source.weighted_sum(key, jnp.asarray(generation, jnp.int32), weights, num_params, chunk)
