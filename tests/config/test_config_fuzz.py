"""Config fuzzing (hypothesis): random YAML trees, random YAML text and random override strings through the CLI's
config path (``esrun.runner.names.load_config``: schema and registered names, and the resume check) give a valid
Config or a one-line UserError -- never a traceback. Deterministic (``derandomize``) so CI is stable; in-process,
a few hundred examples."""
from __future__ import annotations

import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esrun.config import Config
from esrun.config.resume import check_resume, flatten
from esrun.errors import UserError
from esrun.runner.names import load_config

KEYS = sorted(flatten(Config().model_dump(mode="json"))) + [
    "task.type", "task.objective", "task.dim", "task.env_id", "backend", "strategy", "task", "policy",
    "budget.evaluations", "budget.wall_seconds", "task.init_scale", "nosuch", "task.nosuch.deeper", "seed.x",
]
SECTIONS = ["name", "seed", "task", "policy", "strategy", "backend", "budget", "logging", "extra"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["gym", "jax_env", "synthetic", "sphere", "openai_es", "cma_es",
                                           "CartPole-v1", "esrun/CartPole-v1", "ray", "mpi", "local", "adam"]),
)
trees = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS + SECTIONS), st.text(max_size=6), st.integers(-3, 3)), inner,
                    max_size=5)), max_leaves=20)
configs = st.dictionaries(st.sampled_from(SECTIONS), trees, max_size=8)
values = st.one_of(st.text(alphabet=string.printable, max_size=16),
                   scalars.map(
                       lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()),
                   st.sampled_from(["[1, 2]", "{a: 1}", "null", "", "[", "{", "!!python/object:os.system",
                                    "&a [*a]", "1e999", "-0", "0x10"]))
overrides = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), values),
    st.text(alphabet=string.printable, max_size=20)), max_size=4)

FUZZ = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _one_line_or_config(path, ovs) -> None:
    try:
        cfg = load_config(path, ovs)
    except UserError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, repr(msg)
        return
    assert isinstance(cfg, Config)
    try:  # the --resume check over the same pair never raises anything but a one-line UserError
        check_resume(load_config(None, ["budget.generations=1"]), cfg)
    except UserError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(tree=configs, ovs=overrides)
def test_random_yaml_trees_and_overrides(tmp_path, tree, ovs):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True))
    _one_line_or_config(path, ovs)


@FUZZ
@given(text=st.text(alphabet=string.printable + "äé{}[]:-&*!|>%@`", max_size=120), ovs=overrides)
def test_random_yaml_text_and_overrides(tmp_path, text, ovs):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    _one_line_or_config(path, ovs)


@FUZZ
@given(ovs=overrides)
def test_overrides_alone(ovs):
    _one_line_or_config(None, ovs)
