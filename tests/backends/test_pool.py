"""esrun.backends.pool: the job map and the replica pool, in process and on two MPI ranks (the Ray pools run in
tests/compare: test_rl.py and test_compare_backends.py)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from esrun.backends.comm import dumps
from esrun.backends.pool import average, make_replica_pool, map_jobs
from esrun.errors import UserError

from esrun_helpers.backends import MPIEXEC

P = 5

TOY = '''
import hashlib
import numpy as np

P = 5


class Toy:
    """A replica: parameters [P]; worker w's gradient of update u is (w + 1) * [0.1, 0.2, ...] + u."""

    def __init__(self, spec, worker):
        self.worker, self.params, self.closed = worker, np.zeros(P, np.float32), False

    def grad(self, u):
        return ((self.worker + 1) * 0.1 * np.arange(1, P + 1) + u).astype(np.float32)

    def stats(self, k):
        return {"worker": self.worker, "k": k}

    def apply(self, g):
        self.params = self.params - g

    def params_hash(self):
        return hashlib.sha256(self.params.tobytes()).hexdigest()

    def close(self):
        self.closed = True


def square(x):
    return x * x
'''
namespace: dict = {}
exec(compile(TOY, "toy_replica", "exec"), namespace)
Toy, square = namespace["Toy"], namespace["square"]


def test_local_map_keeps_item_order():
    assert map_jobs("local", square, range(5), 2) == [0, 1, 4, 9, 16]


def test_unknown_transport_is_one_user_error():
    with pytest.raises(UserError, match="local, mpi, ray"):
        map_jobs("slurm", square, [1], 1)


def test_local_replica_pool_reduces_in_worker_order_and_updates_every_replica():
    pool = make_replica_pool("local", Toy, {}, 3)
    assert pool.gather("stats", 7) == [{"worker": w, "k": 7} for w in range(3)]
    grads = [Toy({}, w).grad(1) for w in range(3)]
    g = pool.all_reduce_mean("grad", 1)
    assert g.dtype == np.float32 and np.array_equal(g, average(grads))
    expected = ((np.float64(grads[0]) + grads[1] + grads[2]) / 3).astype(np.float32)  # float64, worker order
    assert np.array_equal(g, expected)
    pool.broadcast("apply", g)
    assert np.array_equal(pool.driver.params, -g)
    assert pool.hashes() == [pool.driver.params_hash()] * 3
    pool.meter.end()
    assert pool.meter.metrics()["comm/bytes_per_generation"] == 0.0  # nothing serialized in process
    replicas = pool.replicas
    pool.close()
    assert all(r.closed for r in replicas) and pool.driver.closed


MPI_SCRIPT = TOY + '''
import json
import sys
from pathlib import Path

from esrun.backends.pool import make_replica_pool, map_jobs

jobs = map_jobs("mpi", square, range(5), 2)
pool = make_replica_pool("mpi", Toy, {}, 2)
stats = pool.gather("stats", 3)
g = pool.all_reduce_mean("grad", 1)
pool.broadcast("apply", g)
hashes = pool.hashes()
pool.meter.end()
# one file per rank: two ranks printing at once can interleave their lines
(Path(sys.argv[1]) / f"rank{pool.driver.worker}.json").write_text(json.dumps({
    "rank": pool.driver.worker, "jobs": jobs, "stats": stats, "g": g.tolist(),
    "same": hashes == [pool.driver.params_hash()] * 2, "workers": pool.workers,
    "bytes": pool.meter.metrics()["comm/bytes_per_generation"]}))
'''


def test_two_mpi_ranks_map_jobs_and_all_reduce(tmp_path):
    script = tmp_path / "pool_mpi.py"
    script.write_text(MPI_SCRIPT)
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert out[0]["jobs"] == [0, 1, 4, 9, 16] and out[1]["jobs"] is None  # gathered to rank 0 only
    # MPI's all-reduce: Allreduce(SUM) of the float32 buffers, then / W
    total = np.float32(Toy({}, 0).grad(1)) + np.float32(Toy({}, 1).grad(1))
    expected = (total / 2).astype(np.float32)
    for r in out:
        assert r["workers"] == 2 and r["same"]
        assert r["stats"] == [{"worker": 0, "k": 3}, {"worker": 1, "k": 3}]
        assert np.array_equal(np.asarray(r["g"], np.float32), expected)
        # per rank: its pickled stats to the other rank and theirs back, and 4P bytes each way for the gradient
        stats_bytes = sum(len(dumps({"worker": w, "k": 3})) for w in range(2))
        assert r["bytes"] == stats_bytes + 2 * 4 * P
