"""XLA without most optimizations, for tests whose small runs are dominated by compile time.

``jax_disable_most_optimizations`` is read when a program is compiled, but JAX's in-process jit cache is not keyed
on it: an executable compiled with the switch on would keep running after it is turned off (and the other way
round), so a later test's in-process run would silently use other numerics than the esrun / mpiexec / Ray processes
it is compared with. :func:`fast_compile` therefore clears JAX's caches when it turns the switch on and again when
it turns it off. The session's local Ray starts without the variable (esrun_helpers.ray_local); runs that want it
forward it to their actors (esrun.backends.ray_connect.FORWARDED_ENV).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: the environment form of the switch, read by every JAX process at import (subprocesses, Ray actors)
FAST_COMPILE_ENV = "JAX_DISABLE_MOST_OPTIMIZATIONS"


@contextlib.contextmanager
def fast_compile(subprocesses: bool) -> Iterator[None]:
    """The switch on in this process (and, with ``subprocesses``, in the environment the processes started inside
    inherit), JAX's caches cleared on the way in and out; the previous state is restored."""
    import jax

    old_env, old_cfg = os.environ.get(FAST_COMPILE_ENV), jax.config.read("jax_disable_most_optimizations")
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", True)
    if subprocesses:
        os.environ[FAST_COMPILE_ENV] = "1"
    try:
        yield
    finally:
        jax.clear_caches()
        jax.config.update("jax_disable_most_optimizations", old_cfg)
        if subprocesses:
            if old_env is None:
                os.environ.pop(FAST_COMPILE_ENV, None)
            else:
                os.environ[FAST_COMPILE_ENV] = old_env
