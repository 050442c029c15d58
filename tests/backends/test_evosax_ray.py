"""evosax algorithms by name on real Ray x2: the same final parameters (params_sha256) as the local backend.

One distribution-based (CMA-ES) and one population-based (particle swarm) algorithm: Ray workers rebuild
each generation's population from the replicated state and return fitness scalars only, so the run must match
the local one bit for bit.
"""
from __future__ import annotations

import pytest

from esrun.config import load_config
from esrun.runner import train

from esrun_helpers.backends import synthetic_overrides

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("name", ["evosax/CMA_ES", "evosax/PSO"])
def test_evosax_on_ray_matches_local(ray_session, tmp_path, name):
    base = [*synthetic_overrides(6), f"strategy.name={name}", "name=evo", "backend.hash_every=1"]
    local = train(load_config(None, [*base, f"logging.dir={tmp_path / 'local'}"]))
    ray = train(load_config(None, [*base, f"logging.dir={tmp_path / 'ray'}", "backend.type=ray",
                                   "backend.workers=2"]))
    assert (ray.summary["backend"], ray.summary["workers"]) == ("ray", 2)
    assert ray.summary["generations"] == local.summary["generations"] == 3
    assert ray.summary["strategy"] == name
    assert ray.params_sha256 == local.params_sha256
