"""A gym task dispatches every (method, seed) to esrun.compare.rl.run_rl_method (here a stand-in module that
honours the contract in esrun/compare/__init__.py) and writes the same outputs on the env-steps axis."""
from __future__ import annotations

import sys
import types

import pytest

from esrun.compare import load_compare_config, run_compare
from esrun.errors import UserError

from esrun_helpers.compare import read_csv, scalar_events

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fake_rl(monkeypatch):
    calls = []
    mod = types.ModuleType("esrun.compare.rl")

    def run_rl_method(method, options, env_id, policy_cfg, budget_env_steps, seed, backend, workers, log):
        calls.append((method, dict(options), env_id, policy_cfg.hidden, budget_env_steps, seed, backend, workers))
        ret = {"es": 100.0, "ppo": 200.0}[method] + seed
        for k in range(1, 5):
            log(k * budget_env_steps // 4, {"eval/return": ret * k / 4})
        return {"final_return": ret, "env_steps": budget_env_steps, "wall_seconds": 0.5, "bytes_per_iteration": 64.0}

    mod.run_rl_method = run_rl_method
    monkeypatch.setitem(sys.modules, "esrun.compare.rl", mod)
    import esrun.compare

    monkeypatch.setattr(esrun.compare, "rl", mod, raising=False)
    return calls


def _config(tmp_path, methods):
    path = tmp_path / "gym.yaml"
    ests = "\n".join(f"  - {{name: {m}, options: {{lr_scale: 2}}}}" for m in methods)
    path.write_text(f"name: gymcmp\nseeds: 2\ntask: {{type: gym, env_id: CartPole-v1, policy: {{hidden: [8]}}}}\n"
                    f"estimators:\n{ests}\nbudget: {{env_steps: 1000}}\n")
    return path


def test_gym_task_uses_run_rl_method_and_writes_outputs(fake_rl, tmp_path):
    cfg = load_compare_config(_config(tmp_path, ["es", "ppo"]), [f"logging.dir={tmp_path / 'runs'}"])
    result = run_compare(cfg)
    assert [c[0] for c in fake_rl] == ["es", "es", "ppo", "ppo"]
    assert fake_rl[0] == ("es", {"lr_scale": 2}, "CartPole-v1", [8], 1000, 0, "local", 1)
    rows = read_csv(result.run_dir / "results.csv")
    assert [r["label"] for r in rows] == ["es", "ppo"]
    assert float(rows[1]["final_objective_mean"]) == 200.5 and float(rows[1]["evaluations_mean"]) == 1000
    per_seed = read_csv(result.run_dir / "results_per_seed.csv")
    assert {r["bytes_per_iteration"] for r in per_seed} == {"64.0"}
    events = scalar_events(result.run_dir / "ppo" / "seed1")
    assert events["eval/return"] == [(250, 201 / 4), (500, 201 / 2), (750, 201 * 3 / 4), (1000, 201.0)]
    assert (result.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_gym_task_refuses_an_estimator_name_before_running(fake_rl, tmp_path):
    cfg = load_compare_config(_config(tmp_path, ["es", "disarm"]), [f"logging.dir={tmp_path / 'runs'}"])
    with pytest.raises(UserError, match=r"estimators\[disarm\].name = 'disarm': a gym task runs one of es, "):
        run_compare(cfg)
    assert fake_rl == [] and not (tmp_path / "runs").exists()
