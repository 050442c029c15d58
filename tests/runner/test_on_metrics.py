"""``train(..., on_metrics=fn)``: live metrics. The callback sees every generation on the coordinator, whatever
``logging.log_every``, with the values the sinks write (TensorBoard: the same, rounded to float32) and the summary
reports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from esrun import load_config
from esrun.runner import train

from esrun_helpers.compare import scalar_events

ROOT = Path(__file__).resolve().parents[2]
GENERATIONS = 6
OVERRIDES = ["task.dim=20", "strategy.population=20", "strategy.tell_chunk=10", "backend.chunk_size=10",
             f"budget.generations={GENERATIONS}", "budget.target_return=null", "logging.log_every=2",
             "logging.progress=false"]


def test_callback_sees_every_generation_with_the_logged_values(tmp_path):
    seen: list[dict] = []
    cfg = load_config(ROOT / "configs/sphere.yaml", *OVERRIDES, f"logging.dir={tmp_path}")
    result = train(cfg, on_metrics=seen.append)
    assert [m["generation"] for m in seen] == list(range(1, GENERATIONS + 1))
    summary = json.loads((result.run_dir / "summary.json").read_text())
    last = seen[-1]
    assert summary["generations"] == GENERATIONS
    assert last["perf/evaluations"] == summary["evaluations"]
    assert last["perf/env_steps"] == summary["env_steps"]
    assert last["eval/return_mean"] == summary["final_eval_return"]
    assert last.get("comm/bytes_per_generation", 0.0) == summary["bytes_per_generation"]
    # TensorBoard holds the generations of log_every = 2 only; there its values are the callback's, as float32
    events = scalar_events(result.run_dir)
    by_generation = {m["generation"]: m for m in seen}
    for tag in ("fitness/mean", "fitness/best", "eval/return_mean", "perf/evaluations"):
        logged = events[tag]
        assert [step for step, _ in logged] == [2, 4, 6], tag
        for step, value in logged:
            assert np.float32(by_generation[step][tag]) == np.float32(value), (tag, step)


def test_without_a_callback_the_run_is_unchanged(tmp_path):
    cfg = load_config(ROOT / "configs/sphere.yaml", *OVERRIDES, f"logging.dir={tmp_path}")
    with_cb = train(cfg, on_metrics=lambda m: None).params_sha256
    cfg = load_config(ROOT / "configs/sphere.yaml", *OVERRIDES, f"logging.dir={tmp_path / 'b'}")
    assert train(cfg).params_sha256 == with_cb
