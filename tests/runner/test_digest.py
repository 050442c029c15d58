"""esrun.digest.params_hash: the bytes behind every recorded params_sha256 must not change."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from esrun.digest import params_hash

VECTOR = [0.0, 1.0, -2.5, 3.25]
# SHA-256 of the four float32 values above in little-endian C order (x86 / ARM): computed once, fixed here.
VECTOR_SHA256 = "9c9dea73dcc6b359f387cf55606c36a12c12c39e6ffcb596a3990f63ab3ae5e8"


def test_hash_is_sha256_of_the_float32_bytes():
    assert params_hash(np.asarray(VECTOR, np.float32)) == VECTOR_SHA256


def test_same_values_hash_the_same_whatever_the_container():
    for x in (VECTOR, np.asarray(VECTOR, np.float64), jnp.asarray(VECTOR, jnp.float32)):
        assert params_hash(x) == VECTOR_SHA256


def test_one_bit_changes_the_hash():
    x = np.asarray(VECTOR, np.float32)
    y = x.copy()
    y.view(np.uint32)[2] ^= 1  # the last mantissa bit of -2.5
    assert params_hash(y) != params_hash(x)
