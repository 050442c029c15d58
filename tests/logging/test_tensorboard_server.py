"""A real TensorBoard server on 127.0.0.1 serves the scalars esrun wrote (HTTP API), stopped by PID."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

import esrun

from esrun_helpers import tensorboard_server


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read().decode())


@pytest.fixture
def tb_server(runs):
    r = esrun.train(None, "task.type=synthetic", "task.objective=sphere", "task.dim=4", "strategy.population=10",
                    "budget.generations=6", f"logging.dir={runs}", "name=served", "logging.progress=false")
    with tensorboard_server(runs) as base:
        yield base, r


def test_scalar_through_http_api(tb_server):
    base, result = tb_server
    deadline = time.time() + 120
    data, last_err = None, None
    while time.time() < deadline:
        try:
            q = urllib.parse.urlencode({"run": "served", "tag": "fitness/best"})
            data = _get(f"{base}/data/plugin/scalars/scalars?{q}")
            if len(data) == 6:
                break
        except Exception as exc:  # server still starting or still loading the run
            last_err = exc
        time.sleep(0.5)
    assert data is not None and len(data) == 6, last_err
    steps = [row[1] for row in data]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert max(row[2] for row in data) == pytest.approx(result.summary["best_fitness"], rel=1e-6)
    tags = _get(f"{base}/data/plugin/scalars/tags")
    assert {"fitness/best", "es/sigma", "perf/steps_per_second"} <= set(tags["served"])
