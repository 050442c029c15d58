"""The transports of the data-parallel policy-gradient baselines: local, Ray and MPI pools of PGReplicas.

The replica (episodes, the method's gradient, Adam) is ``esrun.runner.pg_replica.PGReplica``; the methods are
``esrun.estimators.policy_gradient``. A pool holds one replica per worker plus the driver's, all-reduces the
gradients (``average``, in worker order) and measures the bytes of the serialized messages (Ray: the pickled
arrays; MPI: the Allreduce buffers plus the pickled statistics).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from esrun.estimators.policy_gradient import (  # noqa: F401 (tests)
    METHODS,
    resolve_options,
    updates_per_iteration,
)
from esrun.runner.pg_replica import PGReplica, average


# -- worker pools: the all-reduce ------------------------------------------------------------------------------
class WireReplica:
    """A Ray actor's body: a PGReplica whose answers and inputs are pickled bytes (so their sizes are measured)."""

    def __init__(self, spec: dict, worker: int):
        self.replica = PGReplica(spec, worker)

    def collect(self, iteration: int) -> bytes:
        from esrun.backends.comm import dumps

        return dumps(self.replica.collect(iteration))

    def grad(self, update: int) -> bytes:
        from esrun.backends.comm import dumps

        return dumps(self.replica.grad(update))

    def apply(self, blob: bytes) -> None:
        from esrun.backends.comm import loads

        self.replica.apply(loads(blob))

    def params_hash(self) -> str:
        return self.replica.params_hash()


class Pool:
    """Where episodes are collected and gradients all-reduced. ``driver`` is the replica the coordinator
    evaluates; after ``step(u)`` every replica (workers and driver) has applied update ``u``'s average."""

    workers: int = 1
    is_coordinator: bool = True
    driver: PGReplica

    def __init__(self, spec: dict, workers: int):
        from esrun.backends.comm import CommMeter

        self.spec = spec
        self.workers = workers
        self.meter = CommMeter(workers)

    def collect(self, iteration: int) -> list[dict]:
        raise NotImplementedError

    def step(self, update: int) -> None:
        raise NotImplementedError

    def hashes(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        self.driver.close()


class LocalPool(Pool):
    """``workers`` replicas in this process, stepped one after the other; nothing is serialized (0 bytes)."""

    def __init__(self, spec: dict, workers: int):
        super().__init__(spec, workers)
        self.replicas = [PGReplica(spec, w) for w in range(workers)]
        self.driver = PGReplica(spec, -1)

    def collect(self, iteration):
        return [r.collect(iteration) for r in self.replicas]

    def step(self, update):
        g = average([r.grad(update) for r in self.replicas])
        for r in (*self.replicas, self.driver):
            r.apply(g)

    def hashes(self):
        return [r.params_hash() for r in self.replicas]

    def close(self):
        for r in self.replicas:
            r.close()
        super().close()


class RayPool(Pool):
    """One Ray actor per worker. The driver gathers the pickled gradients, averages them in worker order and
    puts the average once in the object store; each actor then applies it (calls to one actor run in order, so
    the next ``grad`` sees the updated parameters). Bytes per worker: the pickled gradient it sends and the
    pickled average (and statistics, and the small call arguments) it receives."""

    def __init__(self, spec: dict, workers: int, address=None):
        import math
        import os

        from esrun.backends.ray_backend import FORWARDED_ENV, connect

        super().__init__(spec, workers)
        self.ray, self._owns = connect(address)
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        per_worker = min(1.0, math.floor(cpus / workers * 1e4) / 1e4) or 0.0001
        opts = {"num_cpus": per_worker}
        env = {k: os.environ[k] for k in (*FORWARDED_ENV, "JAX_DISABLE_MOST_OPTIMIZATIONS") if k in os.environ}
        if env:  # the actors' jitted numerics must match the driver's replica
            opts["runtime_env"] = {"env_vars": env}
        actor = self.ray.remote(WireReplica).options(**opts)
        self.actors = [actor.remote(spec, w) for w in range(workers)]
        self.driver = PGReplica(spec, -1)
        self._pending: list = []  # apply calls not yet confirmed (errors surface at the next collect)

    def _msg(self, w: int, *args) -> None:
        from esrun.backends.comm import dumps

        self.meter.worker_received(w, len(dumps(args)))

    def collect(self, iteration):
        from esrun.backends.comm import loads

        self.ray.get(self._pending)
        self._pending = []
        for w in range(self.workers):
            self._msg(w, iteration)
        blobs = self.ray.get([a.collect.remote(iteration) for a in self.actors])
        for w, blob in enumerate(blobs):
            self.meter.worker_sent(w, len(blob))
        return [loads(b) for b in blobs]

    def step(self, update):
        from esrun.backends.comm import dumps, loads

        for w in range(self.workers):
            self._msg(w, update)
        blobs = self.ray.get([a.grad.remote(update) for a in self.actors])
        for w, blob in enumerate(blobs):
            self.meter.worker_sent(w, len(blob))
        g = average([loads(b) for b in blobs])
        blob = dumps(g)
        ref = self.ray.put(blob)
        self._pending += [a.apply.remote(ref) for a in self.actors]
        for w in range(self.workers):
            self.meter.worker_received(w, len(blob))
        self.driver.apply(g)

    def hashes(self):
        return self.ray.get([a.params_hash.remote() for a in self.actors])

    def close(self):
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._owns:
            self.ray.shutdown()
        super().close()


class MPIPool(Pool):
    """Every rank is a worker and its own driver (SPMD, launched with ``mpiexec -n W``): statistics by
    ``allgather`` (pickled, measured), gradients by ``Allreduce(SUM)`` of the float32 [P] buffer, then / W."""

    def __init__(self, spec: dict, workers: int):
        from esrun.backends.mpi_backend import mpi_world

        self.MPI, self.comm = mpi_world("launch it with: mpiexec -n N esrun compare CONFIG backend.type=mpi")
        size = self.comm.Get_size()
        super().__init__(spec, size)
        self.rank = self.comm.Get_rank()
        self.is_coordinator = self.rank == 0
        self.driver = PGReplica(spec, self.rank)

    def collect(self, iteration):
        from esrun.backends.comm import dumps

        stats = self.driver.collect(iteration)
        out = self.comm.allgather(stats)
        for w, s in enumerate(out):  # each rank sends its stats and receives the others'
            n = len(dumps(s))
            self.meter.worker_sent(w, n)
            for v in range(self.workers):
                if v != w:
                    self.meter.worker_received(v, n)
        return out

    def step(self, update):
        g = self.driver.grad(update)
        total = np.empty_like(g)
        self.comm.Allreduce(g, total, op=self.MPI.SUM)
        for w in range(self.workers):
            self.meter.worker_sent(w, g.nbytes)
            self.meter.worker_received(w, total.nbytes)
        self.driver.apply((total / self.workers).astype(np.float32))

    def hashes(self):
        return self.comm.allgather(self.driver.params_hash())


POOLS: dict[str, Callable[..., Pool]] = {"local": LocalPool, "ray": RayPool, "mpi": MPIPool}
