"""Every user mistake exits 2 with one line naming the key, the value and what is allowed — no traceback."""
from __future__ import annotations

import pytest

from esrun.errors import ConfigError
from esrun.runner.names import load_config

from esrun_helpers import CONFIGS, run_esrun

CARTPOLE = str(CONFIGS / "cartpole.yaml")

CASES = [
    # (overrides, substrings the one-line message must contain)
    (["strategy.sigam=0.02"], ["unknown key 'strategy.sigam'", "did you mean 'sigma'"]),
    (["strategy.population=0"], ["strategy.population = 0", "greater than 0"]),
    (["strategy.population=-4"], ["strategy.population = -4", "greater than 0"]),
    (["strategy.sigma=0"], ["strategy.sigma = 0", "greater than 0"]),
    (["strategy.sigma=-0.1"], ["strategy.sigma = -0.1", "greater than 0"]),
    (["strategy.population=255"], ["strategy.population = 255", "even with antithetic"]),
    (["strategy.population=abc"], ["strategy.population = 'abc'", "valid integer"]),
    (["task.env_id=CartPol-v1"], ["task.env_id = 'CartPol-v1'", "no such Gymnasium environment",
                                  "did you mean 'CartPole-v1'"]),
    (["strategy.name=open_es"], ["strategy.name = 'open_es'", "unknown strategy", "openai_es"]),
    (["task.type=foo"], ["task.type = 'foo'", "gym, jax_env, synthetic"]),
    (["optimizer.lr=1"], ["unknown key 'optimizer'", "allowed: name, seed"]),
    (["backend.type=spark"], ["backend.type = 'spark'", "'local', 'ray' or 'mpi'"]),
    (["backend.chunk_size=48"], ["backend.chunk_size = 48", "must divide strategy.population = 256"]),
    (["policy.activation=swish"], ["policy.activation = 'swish'"]),
    (["budget.generations=null", "budget.target_return=null"], ["budget: set at least one of"]),
    (["strategy"], ["not of the form section.key=value"]),
]


@pytest.mark.parametrize("overrides,needles", CASES, ids=[c[0][0] for c in CASES])
def test_load_config_message(overrides, needles):
    with pytest.raises(ConfigError) as err:
        load_config(CARTPOLE, overrides)
    msg = str(err.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg


@pytest.mark.parametrize("overrides,needles", CASES[:4] + CASES[7:9], ids=[c[0][0] for c in CASES[:4] + CASES[7:9]])
def test_cli_exit_code_and_one_line(overrides, needles, runs):
    proc = run_esrun("train", CARTPOLE, f"logging.dir={runs}", *overrides, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("esrun: error: ")
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0]
    assert not any(runs.iterdir()), "nothing may be written before validation passes"


def test_missing_config_file(runs):
    proc = run_esrun("train", str(runs / "nope.yaml"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"esrun: error: config file '{runs / 'nope.yaml'}' does not exist"


def test_invalid_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: [unclosed\n")
    proc = run_esrun("train", str(bad), timeout=60)
    assert proc.returncode == 2
    assert "is not valid YAML" in proc.stderr and "Traceback" not in proc.stderr


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(CARTPOLE, ["strategy.sigma=0.02", "policy.hidden=[8, 8]"])
    assert cfg.strategy.sigma == 0.02 and cfg.policy.hidden == [8, 8]
    from esrun.config import dump_config

    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_section_shorthands():
    cfg = load_config(CARTPOLE, ["backend=ray", "strategy=cma_es"])
    assert cfg.backend.type == "ray" and cfg.strategy.name == "cma_es"
    with pytest.raises(ConfigError, match="backend.type = 'spark'"):
        load_config(CARTPOLE, ["backend=spark"])
