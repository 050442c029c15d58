"""Every TensorBoard dashboard a researcher opens, served by a real TensorBoard on 127.0.0.1 (stopped by PID) and
read through the HTTP data API its pages call: scalars (also against environment steps), hparams, histograms,
text (the config) and images (the policy video of logging.video_every and of `esrun eval --video`)."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import esrun
from esrun.runner.evaluate import evaluate_run

from esrun_helpers import tensorboard_server

RUN = "dash"
HPARAMS = {"strategy", "sigma", "population", "learning_rate", "seed", "task", "backend"}


def _get(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return raw if resp.headers.get_content_type() != "application/json" else json.loads(raw.decode())


def _poll(fn, timeout: float = 120):
    """fn() until it returns a truthy value (the server loads runs in the background)."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            out = fn()
            if out:
                return out
        except Exception as exc:  # noqa: BLE001 - still starting or still loading
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"TensorBoard did not serve the data in {timeout} s: {last!r}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = esrun.train("configs/cartpole.yaml", "strategy.population=16", "backend.chunk_size=16",
                         "task.max_episode_steps=60", "task.eval_episodes=1", "task.eval_every=1",
                         "budget.generations=3", "budget.target_return=null", "logging.video_every=2",
                         f"logging.dir={runs}", f"name={RUN}", "logging.progress=false")
    evaluate_run(result.run_dir, episodes=1, video=str(tmp_path_factory.mktemp("vid") / "eval.gif"))
    with tensorboard_server(runs) as base:
        _poll(lambda: _loaded(base))
        yield base, result


def _loaded(base: str) -> bool:
    """True once the server has read both events files whole. It loads them in the background and serves what it
    has read so far, so a test that asserted on a half-read run would race that load."""
    def q(tag: str) -> str:
        return urllib.parse.urlencode({"run": RUN, "tag": tag})

    return (len(_get(f"{base}/data/plugin/scalars/scalars?{q('vs_env_steps/fitness/best')}")) == 3
            and len(_get(f"{base}/data/plugin/histograms/histograms?{q('fitness/population')}")) == 3
            and len(_get(f"{base}/data/plugin/images/images?{q('eval/video')}")) == 2  # the second file's
            and bool(_get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""}).get("metricInfos")))


def test_scalars_by_generation_and_by_env_steps(served):
    base, result = served
    tags = _poll(lambda: (t := _get(f"{base}/data/plugin/scalars/tags")).get(RUN) and t)
    assert {"fitness/best", "vs_env_steps/fitness/best", "vs_env_steps/eval/return_mean"} <= set(tags[RUN])
    q = urllib.parse.urlencode({"run": RUN, "tag": "vs_env_steps/fitness/best"})
    rows = _get(f"{base}/data/plugin/scalars/scalars?{q}")
    steps = [r[1] for r in rows]
    assert len(rows) == 3 and steps == sorted(steps) and steps[-1] == result.summary["env_steps"]
    assert max(r[2] for r in rows) == pytest.approx(result.summary["best_fitness"], rel=1e-6)


def test_hparams_dashboard_sorts_runs_by_final_return(served):
    base, result = served
    exp = _poll(lambda: _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""}).get("hparamInfos")
                and _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""}))
    assert HPARAMS <= {h["name"] for h in exp["hparamInfos"]}
    metrics = {m["name"]["tag"] for m in exp["metricInfos"]}
    assert {"hparams/final_eval_return", "hparams/best_fitness"} <= metrics
    groups = _get(f"{base}/data/plugin/hparams/session_groups",
                  {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_RUNNING"],
                   "colParams": [], "startIndex": 0, "sliceSize": 10})
    (group,) = groups["sessionGroups"]
    assert group["hparams"]["strategy"] == "openai_es" and group["hparams"]["population"] == 16
    values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
    assert values["hparams/final_eval_return"] == pytest.approx(result.summary["final_eval_return"], rel=1e-6)
    assert values["hparams/best_fitness"] == pytest.approx(result.summary["best_fitness"], rel=1e-6)


def test_fitness_histogram_each_generation(served):
    base, _ = served
    tags = _poll(lambda: (t := _get(f"{base}/data/plugin/histograms/tags")).get(RUN) and t)
    assert "fitness/population" in tags[RUN]
    q = urllib.parse.urlencode({"run": RUN, "tag": "fitness/population"})
    hist = _get(f"{base}/data/plugin/histograms/histograms?{q}")
    assert [h[1] for h in hist] == [1, 2, 3]
    assert all(sum(b[2] for b in h[2]) == pytest.approx(16) for h in hist)  # every member counted


def test_config_text_and_policy_videos(served):
    base, result = served
    tags = _poll(lambda: (t := _get(f"{base}/data/plugin/text/tags")).get(RUN) and t)
    assert "config/text_summary" in tags[RUN]  # tensorboardX's name for add_text("config")
    q = urllib.parse.urlencode({"run": RUN, "tag": "config/text_summary"})
    text = _get(f"{base}/data/plugin/text/text?{q}")
    assert "population: 16" in text[0]["text"] and "video_every: 2" in text[0]["text"]
    q = urllib.parse.urlencode({"run": RUN, "tag": "eval/video"})
    images = _poll(lambda: _get(f"{base}/data/plugin/images/images?{q}"))
    # generation 2 (the 2nd evaluation, video_every=2) from training; generation 3 from `esrun eval --video`
    assert sorted(i["step"] for i in images) == [2, 3]
    gif = _get(f"{base}/data/plugin/images/individualImage?{images[0]['query']}")
    assert gif[:6] in (b"GIF89a", b"GIF87a")
    acc = EventAccumulator(str(result.run_dir), size_guidance={"images": 0}).Reload()
    assert acc.Images("eval/video")[0].width == 600  # CartPole's rgb_array frames
