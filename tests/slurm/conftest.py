"""Fixtures for the SLURM tests: one real single-node cluster per session, and hashes of undisturbed local runs
(helpers: tests/esrun_helpers/slurm.py).

When SLURM cannot be started the tests FAIL with the reason (daemon logs included); they never skip.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from esrun_helpers.slurm import (
    CARTPOLE,
    FAST,
    Cluster,
    ClusterError,
    esrun,
    start_cluster,
    summary,
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
