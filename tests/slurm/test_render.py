"""`esrun slurm submit --dry-run` against the templates under slurm/, and the renderer's own rules (no cluster)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from esrun.slurm.render import (
    COMMON_TEMPLATE,
    TEMPLATES,
    JobSpec,
    RenderError,
    fill,
    parse_array,
    render_script,
    sbatch_directives,
)

from esrun_helpers.slurm import CARTPOLE, REPO, esrun

VENV = str(Path(sys.prefix).absolute())

#: backend -> (extra CLI options, the #SBATCH lines expected, in order; {out} is the output path)
CASES = {
    "mpi": (["--ntasks", "2", "--partition", "debug", "--time", "00:10:00", "--account", "acct", "--qos", "q",
             "--mem", "4G", "--cpus-per-task", "1", "--sbatch=--constraint=skylake"],
            ["--job-name=esrun-dry", "--nodes=1", "--ntasks=2", "--cpus-per-task=1", "--mem=4G", "--partition=debug",
             "--time=00:10:00", "--account=acct", "--qos=q", "--output={out}", "--open-mode=append", "--requeue",
             "--signal=B:USR1@120", "--constraint=skylake"]),
    "ray": (["--nodes", "2", "--cpus-per-task", "8", "--gpus-per-node", "1", "--signal-seconds", "300",
             "--sbatch", "#SBATCH --exclusive"],
            ["--job-name=esrun-dry", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=8", "--gpus-per-node=1",
             "--output={out}", "--open-mode=append", "--requeue", "--signal=B:USR1@300", "--exclusive"]),
    "local": (["--time", "1:00:00"],
              ["--job-name=esrun-dry", "--nodes=1", "--ntasks-per-node=1", "--time=1:00:00", "--output={out}",
               "--open-mode=append", "--requeue", "--signal=B:USR1@120"]),
}


def _template_lines(name: str) -> list[str]:
    """The lines of a template that carry no placeholder: they must appear verbatim, in order, in the script."""
    text = (REPO / "slurm" / name).read_text()
    return [line for line in text.splitlines() if line.strip() and "{{" not in line]


def _in_order(needles: list[str], haystack: list[str]) -> None:
    pos = 0
    for needle in needles:
        try:
            pos = haystack.index(needle, pos) + 1
        except ValueError:
            raise AssertionError(f"template line missing or out of order in the rendered script: {needle!r}") from None


@pytest.mark.parametrize("backend", sorted(CASES))
def test_dry_run_renders_the_backend_template(backend, tmp_path):
    options, expected = CASES[backend]
    r = esrun("slurm", "submit", str(CARTPOLE), "budget.generations=3", "name=dry", "logging.dir=out",
              "--backend", backend, *options, "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    run_dir = tmp_path / "out" / "dry"

    directives = [line[len("#SBATCH "):] for line in lines if line.startswith("#SBATCH ")]
    assert directives == [e.format(out=run_dir / "slurm-%j.out") for e in expected]
    assert lines[0] == "#!/bin/bash"

    # Every fixed line of the backend template and of the common prologue, verbatim and in order.
    _in_order(_template_lines(TEMPLATES[backend]), lines)
    _in_order(_template_lines(COMMON_TEMPLATE), lines)
    assert not re.search(r"\{\{|\}\}", r.stdout), "a placeholder was left unfilled"

    # The placeholders, filled with this request (shell-quoted values).
    assert f"ESRUN_VENV={shlex.quote(VENV)}" in lines
    assert f"ESRUN_CONFIG={shlex.quote(str(CARTPOLE))}" in lines
    assert f"ESRUN_LOG_DIR={shlex.quote(str(tmp_path / 'out'))}" in lines
    assert f"ESRUN_WORKDIR={shlex.quote(str(tmp_path))}" in lines
    assert "ESRUN_NAME=dry" in lines and "ESRUN_ARRAY=0" in lines
    assert "ESRUN_OVERRIDES=(budget.generations=3)" in lines  # name / logging.dir are set by the script itself

    # The sbatch command, and nothing created or submitted.
    assert lines[-2] == f"# run directories: {run_dir}"
    assert lines[-1] == f"# sbatch command: sbatch --parsable {run_dir / 'job.sbatch'}"
    assert not (tmp_path / "out").exists()

    script = tmp_path / "script.sh"
    script.write_text("\n".join(lines[:-2]) + "\n")
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_dry_run_array_has_one_run_directory_per_seed(tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), "name=sweep", "--array", "0-2", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    runs = tmp_path / "runs"
    assert "#SBATCH --array=0-2" in r.stdout.splitlines()
    assert f"#SBATCH --output={runs / 'sweep-seed%a' / 'slurm-%A_%a.out'}" in r.stdout.splitlines()
    assert "ESRUN_ARRAY=1" in r.stdout.splitlines()
    dirs = " ".join(str(runs / f"sweep-seed{s}") for s in range(3))
    assert f"# run directories: {dirs}" in r.stdout.splitlines()


def test_dry_run_quotes_overrides_and_places_setup_lines(tmp_path):
    r = esrun("slurm", "submit", str(CARTPOLE), "name=q", "policy.hidden=[8, 8]", "--setup", "module load cuda/12",
              "--setup", "export OMP_NUM_THREADS=1", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "ESRUN_OVERRIDES=('policy.hidden=[8, 8]')" in lines
    setup = lines.index("module load cuda/12")
    assert lines[setup + 1] == "export OMP_NUM_THREADS=1"
    assert setup < lines.index('export PATH="$ESRUN_VENV/bin:$PATH"')


def _spec(**kw) -> JobSpec:
    base = dict(config="/c.yaml", name="n", log_dir="/runs", workdir="/w", venv="/v")
    return JobSpec(**{**base, **kw})


def test_parse_array():
    assert parse_array("0-2") == [0, 1, 2]
    assert parse_array("1,5,7") == [1, 5, 7]
    assert parse_array("0-10:5%2") == [0, 5, 10]
    for bad in ("", "a", "3-1", "1,1", "-1", "0-4:0"):
        with pytest.raises(RenderError):
            parse_array(bad)


def test_render_rejects_what_cannot_run():
    with pytest.raises(RenderError, match="backend local runs on one node"):
        render_script(_spec(backend="local", nodes=2))
    with pytest.raises(RenderError, match="must be one of"):
        render_script(_spec(backend="spark"))
    with pytest.raises(RenderError, match="one sbatch option"):
        sbatch_directives(_spec(extra_sbatch=("constraint=x",)))
    with pytest.raises(RenderError, match="one task per node"):
        sbatch_directives(_spec(backend="ray", nodes=2, ntasks=4))


def test_fill_refuses_missing_and_unused_values():
    assert fill("a {{x}} b {{ x }}", {"x": "1"}, where="t") == "a 1 b 1"
    with pytest.raises(RenderError, match="has no value"):
        fill("{{x}} {{y}}", {"x": "1"}, where="t")
    with pytest.raises(RenderError, match="never used: y"):
        fill("{{x}}", {"x": "1", "y": "2"}, where="t")
