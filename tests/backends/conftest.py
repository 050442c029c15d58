"""The module-scoped Ray session of the backend tests."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def ray_session():
    """One small local Ray instance for a whole test module, always shut down."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="warning")
    try:
        yield ray
    finally:
        ray.shutdown()
