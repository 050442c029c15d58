"""Members of a chunk split evenly across all local JAX devices (``jax.sharding``), for the jitted rollout tasks.

A chunk ``params: [C, P]`` is placed with ``NamedSharding(Mesh(jax.local_devices(), ("members",)),
PartitionSpec("members"))``: device ``d`` of ``D`` holds rows ``d C/D .. (d+1) C/D - 1`` and runs the vmapped
rollout of those members only, so a node with 8 GPUs steps 8 slices of the chunk at once. Inside the jitted
program the per-member keys get the same sharding (``jax.lax.with_sharding_constraint``), and nothing reads
across rows, so member ``j``'s fitness is computed from ``(key, j, params[j])`` on whichever device holds row
``j``: the same numbers with 1 or D devices (tests/tasks/test_brax_env.py compares run hashes).

``C`` must be a multiple of ``D`` (one-line ``UserError`` otherwise; choose ``backend.chunk_size``). With a
single device nothing is sharded and the programs are exactly those of the unsharded code.
"""
from __future__ import annotations

from functools import cache

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike

from esrun.errors import UserError

MEMBER_AXIS = "members"


@cache
def _mesh_sharding(devices: tuple) -> NamedSharding:
    # One cached object per device set: the sharding is a static (hashed) argument of the jitted chunk programs.
    return NamedSharding(Mesh(np.array(devices), (MEMBER_AXIS,)), PartitionSpec(MEMBER_AXIS))


def member_sharding(members: int) -> NamedSharding | None:
    """The sharding of a ``[members, ...]`` chunk over ``jax.local_devices()``; ``None`` on a single device."""
    devices = tuple(jax.local_devices())
    if len(devices) == 1:
        return None
    if members % len(devices):
        raise UserError(f"an evaluation chunk of {members} members cannot be split evenly over {len(devices)} local "
                        f"JAX devices: set backend.chunk_size to a multiple of {len(devices)}")
    return _mesh_sharding(devices)


def place(x: ArrayLike, sharding: NamedSharding | None) -> jax.Array:
    """``x [C, ...]`` on the devices of ``sharding`` (row blocks), or as a plain array when it is ``None``."""
    return jax.numpy.asarray(x) if sharding is None else jax.device_put(x, sharding)


def constrain(x: jax.Array, sharding: NamedSharding | None) -> jax.Array:
    """Inside a jitted program: ``x [C, ...]`` split by rows like the chunk (identity when ``sharding`` is None)."""
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)
