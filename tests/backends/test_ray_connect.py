"""``esrun.backends.ray_connect.init_local``: a local Ray whose node missed Ray's fixed 30 s registration window (a
loaded machine) is started again; any other failure is raised at once. A stand-in ``ray`` module counts the calls
(a real timed-out start needs a machine too busy to reproduce on demand)."""
from __future__ import annotations

import pytest

from esrun.backends.ray_connect import LOCAL_START_ATTEMPTS, init_local

TIMED_OUT = "The current node timed out during startup. This could happen because some of the raylet failed"


class FakeRay:
    def __init__(self, errors: list[Exception]):
        self.errors = list(errors)
        self.inits: list[dict] = []
        self.shutdowns = 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)

    def shutdown(self):
        self.shutdowns += 1


def test_node_start_timeout_is_tried_again_with_the_same_options():
    ray = FakeRay([Exception(TIMED_OUT)] * (LOCAL_START_ATTEMPTS - 1))
    init_local(ray, num_cpus=2, include_dashboard=False)
    assert ray.inits == [{"num_cpus": 2, "include_dashboard": False}] * LOCAL_START_ATTEMPTS
    assert ray.shutdowns == LOCAL_START_ATTEMPTS - 1  # each failed start is cleaned up before the next


def test_node_start_timeout_every_time_is_raised_after_the_last_attempt():
    ray = FakeRay([Exception(TIMED_OUT)] * LOCAL_START_ATTEMPTS)
    with pytest.raises(Exception, match="timed out during startup"):
        init_local(ray)
    assert len(ray.inits) == LOCAL_START_ATTEMPTS


def test_other_errors_are_raised_at_once():
    ray = FakeRay([ValueError("object_store_memory is too small")])
    with pytest.raises(ValueError, match="too small"):
        init_local(ray)
    assert len(ray.inits) == 1 and ray.shutdowns == 1
