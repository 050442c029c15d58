"""Fitness shaping: maps raw fitness ``[n]`` (maximized) to utilities ``[n]``; registry by name."""
from __future__ import annotations

import jax.numpy as jnp


def centered_rank(f: jnp.ndarray) -> jnp.ndarray:
    """Ranks scaled to [-0.5, 0.5]: u_i = rank(f_i) / (n - 1) - 0.5 (Salimans et al., 2017). Ties by index."""
    n = f.shape[0]
    ranks = jnp.argsort(jnp.argsort(f, stable=True), stable=True)
    return ranks.astype(jnp.float32) / jnp.maximum(n - 1, 1) - 0.5


def z_score(f: jnp.ndarray) -> jnp.ndarray:
    """u_i = (f_i - mean f) / (std f + 1e-8)."""
    f = f.astype(jnp.float32)
    return (f - f.mean()) / (f.std() + 1e-8)


def raw(f: jnp.ndarray) -> jnp.ndarray:
    """u_i = f_i."""
    return f.astype(jnp.float32)


SHAPING = {"centered_rank": centered_rank, "z_score": z_score, "raw": raw}
