"""Chunks split over local JAX devices (esrun.tasks.sharding), on 2 forced host devices in subprocesses: the
layout, the one-line error for a chunk that does not divide, and the JAX CartPole run's params_sha256 with 1 and
2 devices. (The Brax path's hashes: tests/tasks/test_brax_env.py.)"""
from __future__ import annotations

import os
import subprocess
import sys

import esrun

from esrun_helpers import CONFIGS, read_summary, run_esrun

TWO_DEVICES = {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {esrun.XLA_DEFAULTS}"}
ONE_DEVICE = {"XLA_FLAGS": esrun.XLA_DEFAULTS}

LAYOUT = """
import esrun, jax, numpy as np
from esrun.errors import UserError
from esrun.tasks.sharding import member_sharding, place
s = member_sharding(4)
x = place(np.arange(8.0).reshape(4, 2), s)
print(len(jax.local_devices()), sorted((d.id, i[0].start) for d, i in s.devices_indices_map((4, 2)).items()),
      len(x.addressable_shards))
try:
    member_sharding(3)
except UserError as e:
    print("ERR", e)
"""


def test_two_host_devices_split_a_chunk_by_rows():
    proc = subprocess.run([sys.executable, "-c", LAYOUT], env={**os.environ, **TWO_DEVICES}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    layout, err = proc.stdout.strip().splitlines()
    assert layout == "2 [(0, 0), (1, 2)] 2"  # rows 0-1 on device 0, rows 2-3 on device 1
    assert err.startswith("ERR ") and "backend.chunk_size" in err and "multiple of 2" in err


def test_jax_cartpole_hash_equal_with_one_and_two_devices(tmp_path):
    args = ["train", str(CONFIGS / "cartpole_jax.yaml"), "budget.generations=3", "budget.target_return=null",
            "strategy.population=64", "backend.chunk_size=16", "task.max_episode_steps=100", "task.eval_episodes=2",
            "logging.progress=false", "logging.tensorboard=false"]
    sums = {}
    for name, env in (("one", ONE_DEVICE), ("two", TWO_DEVICES)):
        run_esrun(*args, f"logging.dir={tmp_path / name}", env=env, timeout=300, check=True)
        sums[name] = read_summary(tmp_path / name / "cartpole_jax")
    assert sums["one"]["params_sha256"] == sums["two"]["params_sha256"]
    assert sums["one"]["env_steps"] == sums["two"]["env_steps"] > 0
