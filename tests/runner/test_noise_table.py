"""The noise table (issue 13): offsets in range for every parameter count, the table identical in every process,
the update equal to the plain weighted sum of the same slices, refusal of a table smaller than the policy, and a
resumed table-mode run equal to an undisturbed one."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esrun.config import load_config
from esrun.runner import train
from esrun.runner.noise_table import fill, open_table, table_key
from esrun.strategies.noise import TableNoise, noise_rows, weighted_noise_sum

from esrun_helpers import CONFIGS, run_esrun

TABLE = 2**20
SPHERE = ["task.type=synthetic", "task.objective=sphere", "task.dim=3000", "strategy.population=16",
          "backend.chunk_size=4", "budget.target_return=null", "logging.progress=false", "logging.tensorboard=false",
          "strategy.noise=table", f"strategy.noise_table_size={TABLE}", "logging.checkpoint_every=1"]


@pytest.fixture
def noise_dir(tmp_path, monkeypatch):
    """Tables of this test in a private directory (a tmpfs is not needed for correctness)."""
    monkeypatch.setenv("ESRUN_NOISE_DIR", str(tmp_path))
    return tmp_path


def test_offsets_in_range_for_every_parameter_count():
    """o_k in [0, T - P] for P from 1 to T (P = T: the one slice is the whole table); slices have P entries."""
    for table_size in (7, 2**16 + 3):
        _check_offsets(table_size)


def _check_offsets(table_size: int) -> None:
    src = TableNoise(jnp.arange(table_size, dtype=jnp.float32))
    ps = sorted({1, table_size - 1, table_size})
    indices = jnp.arange(2048, dtype=jnp.int32)
    offsets = jax.jit(src.offsets, static_argnums=3)
    for p in ps:
        for g in (0, 2**31 - 1):
            offs = np.asarray(offsets(jax.random.PRNGKey(p), jnp.int32(g), indices, p))
            assert offs.min() >= 0 and offs.max() <= table_size - p, (p, g)
            if table_size - p + 1 <= 16:  # every admissible offset is drawn
                assert set(offs.tolist()) == set(range(table_size - p + 1)), (p, g)
    p = ps[-1] // 2 + 1
    rows = np.asarray(noise_rows(src, jax.random.PRNGKey(0), 5, indices[:8], p))
    assert rows.shape == (8, p)
    np.testing.assert_array_equal(rows[:, 1:] - rows[:, :-1], 1.0)  # contiguous slices of arange
    with pytest.raises(ValueError, match="smaller"):
        src.offsets(jax.random.PRNGKey(0), jnp.int32(0), indices, table_size + 1)


def test_table_is_standard_normal_and_identical_in_another_process(noise_dir):
    """The same (key, size) gives the same bytes when built by another interpreter, and N(0, 1) moments."""
    key = table_key(jax.random.PRNGKey(7))
    here = open_table(key, TABLE)
    assert here.built_here and not here.array.flags.writeable
    digest = hashlib.sha256(here.array.tobytes()).hexdigest()
    other_dir = noise_dir / "other"
    other_dir.mkdir()
    code = ("import hashlib, jax; from esrun.runner.noise_table import open_table, table_key; "
            f"t = open_table(table_key(jax.random.PRNGKey(7)), {TABLE}); "
            "print(t.built_here, hashlib.sha256(t.array.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ESRUN_NOISE_DIR": str(other_dir)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", digest]
    assert not list(other_dir.iterdir()), "the last process to unmap a table removes it"
    again = np.empty(TABLE, np.float32)
    fill(again, key)
    np.testing.assert_array_equal(again, here.array)
    assert abs(float(here.array.mean())) < 5 / TABLE**0.5 and abs(float(here.array.std()) - 1) < 5 / TABLE**0.5


def test_weighted_sum_equals_plain_sum_of_slices():
    table = jax.random.normal(jax.random.PRNGKey(3), (5000,))
    src, key, p = TableNoise(table), jax.random.PRNGKey(11), 777
    w = jax.random.normal(jax.random.PRNGKey(4), (37,))  # not a multiple of the 8 slices per step
    got, offs = jax.jit(lambda s, w: (weighted_noise_sum(s, key, 3, w, p, 16),
                                      s.offsets(key, jnp.int32(3), jnp.arange(37, dtype=jnp.int32), p)))(src, w)
    want = sum(float(wk) * np.asarray(table)[o:o + p] for wk, o in zip(np.asarray(w), np.asarray(offs)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


def test_table_smaller_than_the_policy_is_refused_with_one_line(runs):
    proc = run_esrun("train", str(CONFIGS / "sphere.yaml"), f"logging.dir={runs}", *SPHERE, "task.dim=5000",
                     "strategy.noise_table_size=4999", "budget.generations=1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "noise_table_size = 4999" in lines[0] and "5000" in lines[0], proc.stderr


def test_resumed_table_run_matches_undisturbed(runs, noise_dir):
    def cfg(name, gens, *extra):
        return load_config(CONFIGS / "sphere.yaml", [*SPHERE, f"logging.dir={runs}", f"name={name}",
                                                     f"budget.generations={gens}", *extra])

    whole = train(cfg("whole", 4))
    train(cfg("cut", 2))
    resumed = train(cfg("cut", 4), resume=runs / "cut")
    assert resumed.summary["generations"] == 4
    assert resumed.params_sha256 == whole.params_sha256


def test_estimator_es_with_a_table_uses_its_slices():
    """evolution_strategies(..., noise=TableNoise): eps_k are the table slices; for linear f(x) = a.x the antithetic
    per-pair estimate is (a.eps_k) eps_k exactly (up to rounding)."""
    from esrun.estimators.evolution_strategies import evolution_strategies

    src, key = TableNoise(jax.random.normal(jax.random.PRNGKey(5), (4096,))), jax.random.PRNGKey(6)
    a = jnp.linspace(-1.0, 1.0, 300)
    est = jax.jit(lambda s: evolution_strategies(key, lambda x: a @ x, jnp.ones(300), 0.1, 20, noise=s))(src)
    eps = np.asarray(noise_rows(src, key, 0, jnp.arange(20), 300))
    np.testing.assert_allclose(np.asarray(est.per_sample), (eps @ np.asarray(a))[:, None] * eps, rtol=1e-4, atol=1e-4)
    assert est.num_evals == 40
