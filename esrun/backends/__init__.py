"""Backends by name. ``ray`` and ``mpi`` are imported lazily, on first use, so neither is needed locally."""
from __future__ import annotations

import importlib
from collections.abc import Callable

from esrun.backends import local as _local  # noqa: F401
from esrun.backends.base import BACKENDS, Backend

_LAZY = {"ray": "esrun.backends.ray_backend", "mpi": "esrun.backends.mpi_backend"}


def get_backend(name: str) -> Callable[..., Backend]:
    """``BACKENDS[name]`` (the ray / mpi module imported on first use): ``factory(cfg, replica, replica_factory)``."""
    if name not in BACKENDS and name in _LAZY:
        importlib.import_module(_LAZY[name])
    return BACKENDS[name]


__all__ = ["BACKENDS", "Backend", "get_backend"]
