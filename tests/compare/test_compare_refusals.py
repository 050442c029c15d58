"""Bad input is refused before any work starts with one line (exit code 2): estimators that do not apply to the
task, unknown keys, options and values."""
from __future__ import annotations

import subprocess
import sys

import pytest

from esrun.cli import main

from esrun_helpers.compare import COMPARE_CONFIGS, ROOT

pytestmark = pytest.mark.timeout(300)

TOY = str(COMPARE_CONFIGS / "bernoulli_toy.yaml")
QUAD = str(COMPARE_CONFIGS / "quadratic.yaml")


def _refused(capsys, tmp_path, *args):
    rc = main(["compare", *args, f"logging.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("esrun: error: "), err
    assert not any(tmp_path.iterdir())  # nothing written: refused before any work
    return err[0]


@pytest.mark.parametrize("args, expected", [
    ((TOY, "estimators.0.name=pathwise"),
     "estimators[REINFORCE]: pathwise applies to gaussian distributions, but task bernoulli_toy(t=0.45) samples "
     "Bernoulli variables"),
    ((QUAD, "estimators.2.name=arm"),
     "estimators[score-function]: arm applies to bernoulli distributions, but task noisy_quadratic samples "
     "a Gaussian over x"),
    ((QUAD, "task.objective=quantized_sphere"),
     "estimators[pathwise]: pathwise needs the gradient of f, but quantized_sphere is piecewise constant"),
    ((str(COMPARE_CONFIGS / "topk.yaml"), "estimators.0.name=score_function"),
     "score_function applies to gaussian, bernoulli, categorical, poisson distributions, but task topk(5 of 20) "
     "samples z = topk(theta + Gumbel)"),
    ((TOY, "estimators.0.name=disarn"), "unknown estimator (did you mean 'disarm'?)"),
    ((TOY, "estimators.0.options.baselin=mean"), "estimators[REINFORCE].options.baselin: unknown option"),
    ((TOY, "estimators.0.options.baseline=median"), "baseline must be one of"),
    ((TOY, "estimators.2.num_samples=1"), "estimators[RLOO] (leave_one_out, num_samples=1"),
    ((TOY, "budget.evals=5"), "unknown key 'budget.evals' (did you mean 'evaluations'?)"),
    ((TOY, "task.target=2"), "task.target = 2: input should be less than or equal to 1"),
    ((TOY, "task.type=ising"), "task.type = 'ising': must be one of"),
    ((TOY, "estimators.1.label=REINFORCE"), "label 'REINFORCE' is used twice"),
    ((TOY, "budget.env_steps=100"), "budget.env_steps: only gym tasks"),
    ((TOY, "backend.type=slurm"), "backend.type = 'slurm'"),
    ((TOY, "estimators.0.label=.."), "estimators.0.label = '..': string should match pattern"),
    ((TOY, "name=.."), "name = '..': string should match pattern"),
    ((TOY, "budget.evaluations=2"), "budget.evaluations = 2: less than one estimate of estimators[REBAR] (3 calls"),
])
def test_refused_with_one_line(capsys, tmp_path, args, expected):
    line = _refused(capsys, tmp_path, *args)
    assert expected in line, line


def test_cli_exit_code_two_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, "-m", "esrun", "compare", TOY, "estimators.3.name=pathwise",
                        f"logging.dir={tmp_path}"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert lines == ["esrun: error: estimators[ARM]: pathwise applies to gaussian distributions, but task "
                     "bernoulli_toy(t=0.45) samples Bernoulli variables"], p.stderr[-2000:]


def test_mpi_backend_without_mpiexec_is_refused(capsys, tmp_path):
    line = _refused(capsys, tmp_path, str(COMPARE_CONFIGS / "topk.yaml"), "backend.type=mpi")
    assert "mpiexec -n N esrun compare" in line
