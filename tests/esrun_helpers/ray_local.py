"""The test session's one local Ray: 2 CPUs, no dashboard, a 100 MiB object store.

Started by the first test that asks for the ``ray_session`` fixture (tests/conftest.py) and shut down after the last
one, or earlier by :func:`stop` when a test must attach this process to another cluster (an initialized Ray is
reused by ``esrun.backends``' connect, so a local one left running would silently take the place of that cluster).
A later ``ray_session`` user then starts it again. Tests that start Ray in a subprocess (``esrun train
backend.type=ray``) start their own, as a user's run does.
"""
from __future__ import annotations

import os
from types import ModuleType

from esrun.backends.ray_connect import init_local

from esrun_helpers.fast_compile import FAST_COMPILE_ENV


def start() -> ModuleType:
    """The ray module, initialized with the local test instance (started here unless it is already up)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if ray.is_initialized():
        return ray
    # the node (and every worker it starts) inherits this process's environment: start it without the fast-compile
    # switch a test may have on now, which a later test with it off would then run with too (runs that want it
    # forward it to their actors; esrun_helpers.fast_compile)
    fast = os.environ.pop(FAST_COMPILE_ENV, None)
    try:
        init_local(ray, num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="warning")
    finally:
        if fast is not None:
            os.environ[FAST_COMPILE_ENV] = fast
    return ray


def stop() -> None:
    """Shut the local Ray down if this process has one (a no-op otherwise, and before Ray was ever imported)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
