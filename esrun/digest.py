"""The parameter digest every replica check and ``summary.json: params_sha256`` uses.

A bottom-layer module (it imports only numpy) so that the runner, the backends and compare share one definition
without importing each other.
"""
from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import ArrayLike


def params_hash(params: ArrayLike) -> str:
    """SHA-256 (hex) of ``params`` as C-ordered float32 bytes.

    Args:
        params: a parameter vector ``[D]`` (any array-like; converted to float32 first, so a float64 copy of the
            same values hashes the same).

    Returns:
        64 hex characters; equal digests mean bitwise-equal float32 parameters.
    """
    return hashlib.sha256(np.asarray(params, np.float32).tobytes()).hexdigest()
