"""Every estimator config under configs/compare/ runs on a reduced budget; the variance orderings the issue asks
for hold on the Bernoulli toy (against the exact values) and on the noisy quadratic."""
from __future__ import annotations

import pytest

from esrun_helpers.compare import REDUCED, check_outputs, estimator_configs, read_csv

pytestmark = pytest.mark.timeout(900)

# Per-config additions to REDUCED: the toy gets many repeats (its variances are compared with exact values); the
# quadratic gets a budget long enough for the optimizers to separate.
EXTRA = {
    "bernoulli_toy": ["budget.evaluations=240", "diagnostics.repeats=2000"],
    "quadratic": ["budget.evaluations=4000", "diagnostics.repeats=200"],
}
DEFAULT_EXTRA = ["budget.evaluations=240"]


def overrides(name: str) -> list[str]:
    return REDUCED + EXTRA.get(name, DEFAULT_EXTRA)


@pytest.mark.parametrize("path", estimator_configs(), ids=lambda p: p.stem)
def test_config_runs_with_every_estimator(path, compare_runs):
    cfg, result = compare_runs(path, overrides(path.stem))
    rows = check_outputs(result.run_dir, cfg)
    assert all(float(r["final_objective_mean"]) == float(r["final_objective_mean"]) for r in rows)  # no NaN


def _by_label(rows):
    return {r["label"]: r for r in rows}


def test_bernoulli_toy_variances_order_as_the_exact_ones(compare_runs):
    from esrun_helpers.compare import COMPARE_CONFIGS

    cfg, result = compare_runs(COMPARE_CONFIGS / "bernoulli_toy.yaml", overrides("bernoulli_toy"))
    assert cfg.task.target == 0.45 and cfg.task.init_logit == 0.0
    per_seed = read_csv(result.run_dir / "results_per_seed.csv")
    t, delta = 0.45, 0.1
    # Exact per-estimate variances at p = 1/2, every estimate costing 2 calls of f (ORACLES.md / source):
    reinforce_single = (((1 - t) ** 2 / 2) ** 2 + (t**2 / 2) ** 2) / 2 - (delta / 4) ** 2
    exact = {"REINFORCE": reinforce_single / 2, "RLOO": (delta / 4) ** 2, "ARM": delta**2 / 48, "DisARM": 0.0}
    for r in per_seed:
        if r["label"] in exact:
            v = float(r["variance"])
            if exact[r["label"]] == 0:
                assert v < 1e-12, r
            else:  # 2000 repeats: the measured variance is within a few percent of the exact one
                assert abs(v / exact[r["label"]] - 1) < 0.15, (r["label"], v, exact[r["label"]])
    rows = _by_label(read_csv(result.run_dir / "results.csv"))
    var = {k: float(rows[k]["variance_mean"]) for k in exact}
    assert var["DisARM"] < var["ARM"] < var["RLOO"] < var["REINFORCE"], var
    assert {int(rows[k]["evals_per_estimate"]) for k in exact} == {2}


def test_quadratic_antithetic_es_and_pathwise_beat_the_score_function(compare_runs):
    from esrun_helpers.compare import COMPARE_CONFIGS

    cfg, result = compare_runs(COMPARE_CONFIGS / "quadratic.yaml", overrides("quadratic"))
    rows = _by_label(read_csv(result.run_dir / "results.csv"))
    per_seed = read_csv(result.run_dir / "results_per_seed.csv")
    for winner in ("ES-antithetic", "pathwise"):
        # lower per-estimate variance at the same cost (8 calls of f), on every seed
        assert float(rows[winner]["evals_per_estimate"]) == float(rows["score-function"]["evals_per_estimate"]) == 8
        assert float(rows[winner]["variance_mean"]) < 0.5 * float(rows["score-function"]["variance_mean"])
        # and a lower final objective at the same budget, seed by seed
        for seed in cfg.seed_list():
            mine = next(r for r in per_seed if r["label"] == winner and int(r["seed"]) == seed)
            sf = next(r for r in per_seed if r["label"] == "score-function" and int(r["seed"]) == seed)
            assert float(mine["final_objective"]) < float(sf["final_objective"]), (winner, seed, mine, sf)
