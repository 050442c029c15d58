"""Fixtures for the SLURM tests: one real single-node cluster per session, and the esrun command line.

When SLURM cannot be started the tests FAIL with the reason (daemon logs included); they never skip.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cluster import Cluster, ClusterError, start_cluster  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = REPO / "configs" / "cartpole.yaml"
ESRUN = str(Path(sys.executable).parent / "esrun")

#: A short CartPole run: a few generations of a small population, no early stop, a checkpoint every generation.
FAST = (
    "budget.generations=3", "budget.target_return=null", "strategy.population=32", "backend.chunk_size=16",
    "task.eval_episodes=2", "logging.progress=false", "logging.checkpoint_every=1",
)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Cluster:
    root = Path(f"/tmp/esrun-slurm-{os.getpid()}")  # short: slurmd's socket paths must stay short
    try:
        cluster = start_cluster(root)
    except ClusterError as exc:
        pytest.fail(f"could not start the test SLURM cluster: {exc}", pytrace=False)
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        _cancel_all(cluster)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _cancel_all(cluster: Cluster) -> None:
    """Cancel whatever a failed test left queued on our own cluster, so its job processes end before slurmd."""
    out = cluster.run("squeue", "-h", "-o", "%A", check=False).stdout.split()
    if out:
        cluster.run("scancel", *sorted(set(out)), check=False)
        import time

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and cluster.run("squeue", "-h", check=False).stdout.strip():
            time.sleep(1)


def esrun(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `esrun` console script of this venv."""
    return subprocess.run([ESRUN, *args], cwd=cwd, env=env or os.environ.copy(), capture_output=True, text=True,
                          timeout=timeout)


def parse_submit(stdout: str) -> tuple[str, list[Path]]:
    m = re.search(r"^submitted job (\d+)$", stdout, re.M)
    assert m, f"no job id in: {stdout!r}"
    run_dirs = [Path(p) for p in re.findall(r"^run directory: (.+)$", stdout, re.M)]
    assert run_dirs, f"no run directory in: {stdout!r}"
    return m.group(1), run_dirs


def summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    assert path.is_file(), f"{path} missing; job output:\n{job_output(run_dir)}"
    return json.loads(path.read_text())


def job_output(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(run_dir.glob("slurm-*.out")))


@pytest.fixture(scope="session")
def local_hashes(tmp_path_factory):
    """params_sha256 of undisturbed local runs (`esrun train CARTPOLE *FAST *overrides`), each computed once."""
    cache: dict[tuple[str, ...], str] = {}
    root = tmp_path_factory.mktemp("local")

    def get(*overrides: str) -> str:
        if overrides not in cache:
            name = f"local-{len(cache)}"
            r = esrun("train", str(CARTPOLE), *FAST, *overrides, f"name={name}", f"logging.dir={root}", cwd=root,
                      timeout=900)
            assert r.returncode == 0, r.stderr[-3000:]
            cache[overrides] = summary(root / name)["params_sha256"]
        return cache[overrides]

    return get
