"""evosax strategies behind esrun's interface: replayable populations, the fitness sign, convergence, the CLI.

Every test iterates the registered evosax names (``esrun.strategies.evosax_adapter.BUILDERS``), so a new entry
is tested by default. Shapes are shared across tests (P = 10, population 32, chunks of 8) so each strategy
compiles member_params and tell once per session.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import esrun
from esrun.config.schema import StrategyConfig
from esrun.errors import UserError
from esrun.strategies import STRATEGIES
from esrun.strategies.evosax_adapter import BUILDERS, EvosaxStrategy

from esrun_helpers import ROOT

NAMES = sorted(BUILDERS)
P, POP, CHUNK = 10, 32, 8
X0 = jnp.full((P,), 3.0, jnp.float32)
KEY = jax.random.PRNGKey(7)


class Compiled:
    """A strategy with its jitted member_params (chunks of CHUNK members) and tell, as the runner uses them."""

    def __init__(self, name: str):
        cfg = StrategyConfig(name=name, population=POP, sigma=1.0, learning_rate=0.1)
        self.strategy = STRATEGIES[name](P, POP, cfg)
        self.member_params = jax.jit(self.strategy.member_params)
        self.tell = jax.jit(self.strategy.tell)

    def population(self, state) -> jax.Array:
        """All members, gathered chunk by chunk like the runner does: [POP, P]."""
        chunks = [self.member_params(state, jnp.arange(c, c + CHUNK, dtype=jnp.int32)) for c in range(0, POP, CHUNK)]
        return jnp.concatenate(chunks)

    def run(self, fitness_fn, generations: int, x0=X0):
        state = self.strategy.init(KEY, x0)
        for _ in range(generations):
            x = self.population(state)
            state, metrics = self.tell(state, fitness_fn(x))
        return state, metrics


_CACHE: dict[str, Compiled] = {}


@pytest.fixture(params=NAMES)
def compiled(request) -> Compiled:
    if request.param not in _CACHE:
        _CACHE[request.param] = Compiled(request.param)
    return _CACHE[request.param]


def sphere_fitness(x):
    """esrun fitness of the sphere: -||x||^2 (maximized), [n, P] -> [n]."""
    return -jnp.sum(x**2, axis=-1)


def sha(x) -> str:
    return hashlib.sha256(np.asarray(x, np.float32).tobytes()).hexdigest()


def test_registry_holds_the_required_names():
    for name in ("pgpe", "snes", "cma_es", "open_es_evosax", "sep_cma_es", "xnes"):
        assert name in STRATEGIES and STRATEGIES[name] is not STRATEGIES["openai_es"]
    assert isinstance(Compiled("cma_es").strategy, EvosaxStrategy)


def test_member_params_slices_equal_the_full_ask_rows(compiled):
    s = compiled.strategy
    state = s.init(KEY, X0)
    # A generation > 0 so that a state that has been told (CMA-ES: a non-identity covariance) is replayed.
    state, _ = compiled.tell(state, sphere_fitness(compiled.population(state)))
    ask_key = jax.random.fold_in(jax.random.fold_in(state.key, state.generation), 0)
    full, _ = s.algorithm.ask(ask_key, state.es_state, state.es_params)  # evosax's own ask, [POP, P]
    assert full.shape == (POP, P)
    gathered = compiled.population(state)
    np.testing.assert_allclose(gathered, full, rtol=1e-6, atol=1e-6)
    # Any member set of the chunk shape, in any order, gives bitwise the same rows (replicas agree exactly).
    members = jnp.array([31, 0, 17, 5, 5, 22, 9, 30], jnp.int32)
    np.testing.assert_array_equal(compiled.member_params(state, members), gathered[np.asarray(members)])
    # Different generations give different populations; the same state always gives the same one.
    assert not np.allclose(gathered, compiled.population(s.init(KEY, X0)))
    np.testing.assert_array_equal(gathered, compiled.population(state))


def test_tell_is_jittable_and_deterministic(compiled):
    s = compiled.strategy
    state = s.init(KEY, X0)
    fitness = sphere_fitness(compiled.population(state))
    a, metrics = compiled.tell(state, fitness)
    b, _ = compiled.tell(state, fitness)
    assert sha(s.mean(a)) == sha(s.mean(b))
    assert int(a.generation) == 1 and int(state.generation) == 0  # a new state; the old one is untouched
    assert sha(s.mean(state)) == sha(X0)
    assert not np.array_equal(s.mean(a), X0)
    for k, v in metrics.items():
        assert jnp.shape(v) == (), k
        assert np.isfinite(float(v)), k
    # A second strategy object built from the same config replays the same update bit for bit.
    other = Compiled(s.name)
    c, _ = other.tell(other.strategy.init(KEY, X0), fitness)
    assert sha(other.strategy.mean(c)) == sha(s.mean(a))


SPHERE_GENERATIONS = 40


def test_improves_the_sphere(compiled):
    """From x0 = 3 (f = 90) every strategy gets f(mean) below 0.5 within 40 generations."""
    state, metrics = compiled.run(sphere_fitness, SPHERE_GENERATIONS)
    f = float(jnp.sum(compiled.strategy.mean(state) ** 2))
    assert f < 0.5, (compiled.strategy.name, f)
    assert int(state.generation) == SPHERE_GENERATIONS


def test_fitness_is_maximized(compiled):
    """Linear fitness c.x: the mean must move along +c (a flipped sign would move it along -c)."""
    c = jnp.where(jnp.arange(P) % 2 == 0, 1.0, -1.0)
    state, _ = compiled.run(lambda x: x @ c, 5, x0=jnp.zeros((P,), jnp.float32))
    step = np.asarray(compiled.strategy.mean(state), np.float64)
    cosine = step @ np.asarray(c) / (np.linalg.norm(step) * np.linalg.norm(c))
    assert cosine > 0.5, (compiled.strategy.name, cosine)


def test_sign_flip_happens_once_inside_tell(compiled):
    """evosax sees -fitness: its best-so-far (a minimum) is minus the best esrun fitness of the generation."""
    s = compiled.strategy
    state = s.init(KEY, X0)
    fitness = sphere_fitness(compiled.population(state))
    new, _ = compiled.tell(state, fitness)
    assert float(new.es_state.best_fitness) == pytest.approx(-float(jnp.max(fitness)), rel=1e-6)


def test_full_covariance_strategies_refuse_huge_parameter_counts():
    cfg = StrategyConfig(name="cma_es", population=16)
    with pytest.raises(UserError, match="cma_es"):
        STRATEGIES["cma_es"](1_000_000, 16, cfg)


def test_pgpe_needs_an_even_population():
    cfg = StrategyConfig(name="pgpe", population=15, antithetic=False)
    with pytest.raises(UserError, match="even"):
        STRATEGIES["pgpe"](P, 15, cfg)


def test_cli_train_with_cma_es(tmp_path):
    """`esrun train configs/rastrigin.yaml strategy.name=cma_es ...` exits 0, writes summary.json, resumes exactly."""
    esrun_bin = Path(sys.executable).parent / "esrun"
    cmd = [str(esrun_bin), "train", str(ROOT / "configs/rastrigin.yaml"), "strategy.name=cma_es",
           f"logging.dir={tmp_path}", "budget.generations=5", "logging.tensorboard=false", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "rastrigin" / "summary.json").read_text())
    assert summary["strategy"] == "cma_es"
    assert summary["generations"] == 5
    assert summary["evaluations"] == 5 * summary["population"]
    assert summary["best_fitness"] <= 0.0 and summary["final_eval_return"] <= 0.0
    assert len(summary["params_sha256"]) == 64
    # The checkpointed evosax state resumes exactly: 5 (CLI) + 3 (resumed) generations = 8 in one go. Both runs go
    # through the CLI in fresh processes: the pytest process may carry JAX settings of earlier tests (the compare
    # tests' fast-compile switch), which change the last bits of compiled programs.
    run_dir = tmp_path / "rastrigin"
    resume = [str(esrun_bin), "train", "--resume", str(run_dir), "budget.generations=8", "--quiet"]
    proc = subprocess.run(resume, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    straight_cmd = cmd[:-2] + [f"logging.dir={tmp_path / 'b'}", "budget.generations=8", "--quiet"]
    proc = subprocess.run(straight_cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = json.loads((run_dir / "summary.json").read_text())
    straight = json.loads((tmp_path / "b" / "rastrigin" / "summary.json").read_text())
    assert resumed["generations"] == straight["generations"] == 8
    assert resumed["params_sha256"] == straight["params_sha256"]


RASTRIGIN_SEEDS = (0, 1, 2)


def test_rastrigin_config_reaches_below_one(tmp_path):
    """configs/rastrigin.yaml (CMA-ES) gets f(mean) < 1 on 10-d Rastrigin on any CPU, not on one lucky seed.

    Three seeds; at least two must stop at the target (f(mean) <= 0.01) before the generation budget. A run trapped
    in a neighbouring basin ends at f ~ 0.995 (one coordinate off by one) or 1.99 (two); the config's success rate
    was measured on more seeds under two instruction sets (docs/BENCHMARKS.md, "Any CPU (issue 9)"), and
    tests/runner/test_any_cpu.py reruns this test with XLA pinned to another one.
    """
    summaries = []
    for seed in RASTRIGIN_SEEDS:
        result = esrun.train(ROOT / "configs/rastrigin.yaml", f"seed={seed}", f"logging.dir={tmp_path}",
                             f"name=s{seed}", "logging.tensorboard=false", progress=False)
        summaries.append(result.summary)
    assert all(s["strategy"] == "cma_es" for s in summaries)
    finals = [-s["final_eval_return"] for s in summaries]
    reached = [s["stop_reason"].startswith("target_return") for s in summaries]  # f(mean) <= 0.01
    assert sum(reached) >= 2, [(f, s["generations"], s["stop_reason"]) for f, s in zip(finals, summaries)]
