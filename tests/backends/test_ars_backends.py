"""ARS V2-t on the mujoco engine (Hopper-v5, state normalization on): the same final parameters on the local
backend, on 2 Ray workers and on 2 MPI ranks — only seeds, fitness scalars and observation statistics cross."""
from __future__ import annotations

import pytest

from esrun.config import load_config
from esrun.runner import train

from esrun_helpers import read_summary
from esrun_helpers.backends import start_cli

pytestmark = pytest.mark.timeout(600)

ARS_OVERRIDES = [
    "budget.generations=3", "budget.wall_seconds=null", "budget.target_return=null", "strategy.population=8",
    "strategy.top_directions=2", "backend.chunk_size=2", "task.max_episode_steps=50", "task.eval_episodes=2",
    "task.eval_every=2", "task.workers=1", "logging.progress=false", "logging.tensorboard=false", "name=ars",
]


def test_ars_local_ray_and_mpi_give_the_same_params(ray_session, tmp_path):
    mpi = start_cli(["train", "configs/hopper.yaml", *ARS_OVERRIDES, f"logging.dir={tmp_path / 'mpi'}",
                     "backend.type=mpi", "--quiet"], mpi_ranks=2)
    try:
        local = train(load_config("configs/hopper.yaml", [*ARS_OVERRIDES, f"logging.dir={tmp_path / 'local'}"]))
        ray = train(load_config("configs/hopper.yaml", [*ARS_OVERRIDES, f"logging.dir={tmp_path / 'ray'}",
                                                        "backend.type=ray", "backend.workers=2"]))
        out, err = mpi.communicate(timeout=300)
    finally:
        mpi.kill()
    assert mpi.returncode == 0, err[-2000:]
    mpi_summary = read_summary(tmp_path / "mpi" / "ars")
    assert local.summary["strategy"] == "ars" and local.summary["generations"] == 3
    assert (ray.summary["workers"], mpi_summary["workers"]) == (2, 2)
    assert ray.params_sha256 == local.params_sha256
    assert mpi_summary["params_sha256"] == local.params_sha256
    assert local.summary["final_eval_return"] == mpi_summary["final_eval_return"]
    assert (local.mean != 0).any()  # the run moved M away from 0
