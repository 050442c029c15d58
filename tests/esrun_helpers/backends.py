"""Helpers of the backend tests: the small CartPole run every backend must reproduce bit for bit, the synthetic
runs of the bytes-per-generation test, and helpers to launch ``esrun`` / ``mpiexec`` as processes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from esrun_helpers import ROOT as REPO

VENV_BIN = Path(sys.executable).parent
ESRUN = str(VENV_BIN / "esrun")
MPIEXEC = str(VENV_BIN / "mpiexec")

# configs/cartpole.yaml with a fixed generation budget, shrunk for speed (4 chunks of 16 members).
CARTPOLE_OVERRIDES = [
    "budget.generations=3", "budget.target_return=null", "strategy.population=64", "backend.chunk_size=16",
    "task.max_episode_steps=100", "task.eval_episodes=2", "logging.progress=false",
]


def synthetic_overrides(dim: int) -> list[str]:
    """A sphere of ``dim`` parameters, population 16 in 4 chunks; every generation compares replica hashes."""
    return [
        "task.type=synthetic", "task.objective=sphere", f"task.dim={dim}", "strategy.population=16",
        "backend.chunk_size=4", "backend.hash_every=1", "budget.generations=3", "budget.target_return=null",
        "logging.progress=false", "logging.tensorboard=false", "name=bytes",
    ]


def run_cli(args: list[str], mpi_ranks: int | None = None, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    cmd = ([MPIEXEC, "-n", str(mpi_ranks)] if mpi_ranks else []) + [ESRUN, *args]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, **kw)


def start_cli(args: list[str], mpi_ranks: int | None = None) -> subprocess.Popen:
    cmd = ([MPIEXEC, "-n", str(mpi_ranks)] if mpi_ranks else []) + [ESRUN, *args]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
