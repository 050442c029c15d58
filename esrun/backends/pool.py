"""One worker pool, implemented once per transport (``local``, ``ray``, ``mpi``), for everything that is not
``esrun train``'s chunk queue: esrun compare's independent jobs and the data-parallel replicas of the
policy-gradient baselines. Backends never import their callers: the work comes in as module-level callables.

Independent jobs (esrun compare's estimator entries):

    map_jobs(kind, fn, items, workers, address=None, hint=...) -> list | None
        [fn(item) for item in items], in item order. ``fn`` must be picklable by reference (a module-level
        function, or a ``functools.partial`` of one with picklable arguments).
        local   in this process, one after another
        ray     one remote task per item (1 CPU, retried once), at most ``workers`` in flight
        mpi     rank r runs the items i with i % size == r; one ``gather`` brings the results to rank 0, which
                returns them; every other rank returns None

A replica group (data-parallel training, e.g. policy gradients with an all-reduced gradient):

    pool = make_replica_pool(kind, factory, spec, workers, address=None, hint=...)
        W worker replicas ``factory(spec, w)``, w = 0..W-1, built where the work runs (Ray: one actor each;
        MPI: W = the world size, rank r's replica is factory(spec, r) and is also its driver), plus the
        coordinator's own replica ``pool.driver = factory(spec, -1)`` (local and Ray) that follows every update
        without collecting data. ``factory`` is a module-level callable (a class is one).
    pool.gather(method, *args) -> list           [replica_w.method(*args) for w in workers], worker order
    pool.all_reduce_mean(method, *args) -> [P]   g = 1/W sum_w replica_w.method(*args) (float32 [P] each)
                                                 local / Ray: float64 accumulation in worker order, float32
                                                 result; MPI: ``Allreduce(SUM)`` of the float32 buffers, / W
    pool.broadcast(method, value) -> None        replica.method(value) on every replica and the driver (Ray:
                                                 ``ray.put`` once; MPI: ``value`` is already equal on every
                                                 rank, e.g. an all_reduce_mean, so each rank applies its own)
    pool.hashes() -> list[str]                   replica_w.params_hash() of every worker replica, worker order
    pool.meter                                   CommMeter: bytes each worker sent / received, measured from
                                                 the pickled messages (Ray) or the MPI buffers; the caller
                                                 closes an iteration with ``pool.meter.end()``
    pool.workers, pool.is_coordinator (False on MPI ranks other than 0), pool.driver, pool.close()

A replica needs ``params_hash() -> str`` and ``close() -> None`` besides the methods named in calls; Ray replicas
answer through :class:`WireReplica`, which pickles every answer, so the bytes counted are the bytes sent.
Per-message byte counts (worker's point of view, W workers):

    gather           Ray: receives pickle(args), sends pickle(answer)   MPI: sends its pickled answer to the W-1
                                                                        others and receives theirs (allgather)
    all_reduce_mean  Ray: receives pickle(args), sends pickle(g_w)      MPI: sends and receives 4P bytes
    broadcast        Ray: receives pickle(value)                        MPI: 0 (already reduced)
    local            0 bytes (nothing is serialized)
"""
from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from esrun.backends.comm import CommMeter, dumps, loads
from esrun.backends.mpi_connect import mpi_world
from esrun.backends.ray_connect import connect, cpus_per_worker, ray_options
from esrun.errors import UserError

MPI_HINT = "launch it with: mpiexec -n N esrun compare CONFIG backend.type=mpi"
ReplicaFactory = Callable[[dict, int], Any]
"""``factory(spec, worker) -> replica``; worker -1 is the coordinator's driver replica."""


# -- independent jobs ------------------------------------------------------------------------------------------
def _map_local(fn: Callable[[Any], Any], items: Sequence, workers: int, address: str | None, hint: str) -> list:
    return [fn(item) for item in items]


def _run_job(fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of a Ray task of :func:`map_jobs`."""
    return fn(item)


def _map_ray(fn: Callable[[Any], Any], items: Sequence, workers: int, address: str | None, hint: str) -> list:
    ray, owned = connect(address)
    try:
        remote = ray.remote(_run_job).options(**ray_options(1, max_retries=1))
        pending = list(range(len(items)))
        results: dict[int, Any] = {}
        in_flight: dict[Any, int] = {}
        while pending or in_flight:
            while pending and len(in_flight) < workers:
                i = pending.pop(0)
                in_flight[remote.remote(fn, items[i])] = i
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                results[in_flight.pop(ref)] = ray.get(ref)
        return [results[i] for i in range(len(items))]
    finally:
        if owned:
            ray.shutdown()


def _map_mpi(fn: Callable[[Any], Any], items: Sequence, workers: int, address: str | None,
             hint: str) -> list | None:
    _, comm = mpi_world(hint)
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = [(i, fn(items[i])) for i in range(len(items)) if i % size == rank]
    gathered = comm.gather(mine, root=0)
    if rank != 0:
        return None
    done = dict(pair for part in gathered for pair in part)
    return [done[i] for i in range(len(items))]


JOB_MAPS: dict[str, Callable[..., list | None]] = {"local": _map_local, "ray": _map_ray, "mpi": _map_mpi}


def _lookup(registry: dict, kind: str, what: str) -> Any:
    if kind not in registry:
        raise UserError(f"backend.type = {kind!r}: {what} runs on one of {', '.join(sorted(registry))}")
    return registry[kind]


def map_jobs(kind: str, fn: Callable[[Any], Any], items: Sequence, workers: int, address: str | None = None,
             hint: str = MPI_HINT) -> list | None:
    """``[fn(item) for item in items]`` on the ``kind`` transport, in item order; None on MPI ranks other than 0.
    See the module docstring. ``hint`` ends the one-line error of a process mpiexec did not start."""
    return _lookup(JOB_MAPS, kind, "a job map")(fn, list(items), int(workers), address, hint)


def is_coordinator(kind: str, hint: str = MPI_HINT) -> bool:
    """Whether this process writes the outputs: always, except on MPI ranks other than 0. On ``mpi`` this refuses
    (one line ending with ``hint``) a process that mpiexec did not start, before any work."""
    if kind != "mpi":
        return True
    return mpi_world(hint)[1].Get_rank() == 0


# -- replica groups --------------------------------------------------------------------------------------------
def average(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """1/W sum_w a_w in worker order (float64 accumulation, float32 result): the same bytes on every replica."""
    acc = np.zeros_like(arrays[0], np.float64)
    for a in arrays:
        acc += a
    return (acc / len(arrays)).astype(np.float32)


class ReplicaPool(abc.ABC):
    """W replicas of one model on a transport, and the coordinator's driver replica; see the module docstring."""

    workers: int = 1
    is_coordinator: bool = True
    driver: Any

    def __init__(self, spec: dict, workers: int):
        self.spec = spec
        self.workers = workers
        self.meter = CommMeter(workers)

    @abc.abstractmethod
    def gather(self, method: str, *args: Any) -> list: ...

    @abc.abstractmethod
    def all_reduce_mean(self, method: str, *args: Any) -> np.ndarray: ...

    @abc.abstractmethod
    def broadcast(self, method: str, value: Any) -> None: ...

    @abc.abstractmethod
    def hashes(self) -> list[str]: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class LocalReplicaPool(ReplicaPool):
    """``workers`` replicas in this process, called one after the other; nothing is serialized (0 bytes)."""

    def __init__(self, factory: ReplicaFactory, spec: dict, workers: int, address: str | None = None,
                 hint: str = MPI_HINT):
        super().__init__(spec, workers)
        self.replicas = [factory(spec, w) for w in range(workers)]
        self.driver = factory(spec, -1)

    def gather(self, method: str, *args: Any) -> list:
        return [getattr(r, method)(*args) for r in self.replicas]

    def all_reduce_mean(self, method: str, *args: Any) -> np.ndarray:
        return average(self.gather(method, *args))

    def broadcast(self, method: str, value: Any) -> None:
        for r in (*self.replicas, self.driver):
            getattr(r, method)(value)

    def hashes(self) -> list[str]:
        return [r.params_hash() for r in self.replicas]

    def close(self) -> None:
        for r in self.replicas:
            r.close()
        self.driver.close()


class WireReplica:
    """A Ray actor's body: a replica whose answers and inputs are pickled bytes (so their sizes are measured)."""

    def __init__(self, factory: ReplicaFactory, spec: dict, worker: int):
        self.replica = factory(spec, worker)

    def call(self, method: str, *args: Any) -> bytes:
        return dumps(getattr(self.replica, method)(*args))

    def apply(self, method: str, blob: bytes) -> None:
        getattr(self.replica, method)(loads(blob))

    def params_hash(self) -> str:
        return self.replica.params_hash()


class RayReplicaPool(ReplicaPool):
    """One Ray actor (:class:`WireReplica`) per worker. ``all_reduce_mean`` gathers the pickled arrays and
    averages them in worker order on the coordinator; ``broadcast`` puts the pickled value once in the object
    store and every actor applies it (calls to one actor run in order, so the next call sees the update). The
    broadcasts are not waited for; an error in one surfaces at the next ``gather``."""

    def __init__(self, factory: ReplicaFactory, spec: dict, workers: int, address: str | None = None,
                 hint: str = MPI_HINT):
        super().__init__(spec, workers)
        self.ray, self._owns = connect(address)
        actor = self.ray.remote(WireReplica).options(**ray_options(cpus_per_worker(self.ray, workers)))
        self.actors = [actor.remote(factory, spec, w) for w in range(workers)]
        self.driver = factory(spec, -1)
        self._pending: list = []  # broadcast calls not yet confirmed

    def _call_all(self, method: str, args: tuple) -> list[bytes]:
        for w in range(self.workers):
            self.meter.worker_received(w, len(dumps(args)))
        blobs = self.ray.get([a.call.remote(method, *args) for a in self.actors])
        for w, blob in enumerate(blobs):
            self.meter.worker_sent(w, len(blob))
        return blobs

    def gather(self, method: str, *args: Any) -> list:
        self.ray.get(self._pending)
        self._pending = []
        return [loads(b) for b in self._call_all(method, args)]

    def all_reduce_mean(self, method: str, *args: Any) -> np.ndarray:
        return average([loads(b) for b in self._call_all(method, args)])

    def broadcast(self, method: str, value: Any) -> None:
        blob = dumps(value)
        ref = self.ray.put(blob)
        self._pending += [a.apply.remote(method, ref) for a in self.actors]
        for w in range(self.workers):
            self.meter.worker_received(w, len(blob))
        getattr(self.driver, method)(value)

    def hashes(self) -> list[str]:
        return self.ray.get([a.params_hash.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(a, no_restart=True)
        self.actors = []
        if self._owns:
            self.ray.shutdown()
        self.driver.close()


class MPIReplicaPool(ReplicaPool):
    """Every rank is a worker and its own driver (SPMD, ``mpiexec -n W``; ``workers`` is the world size):
    ``gather`` by ``allgather`` (pickled, measured), ``all_reduce_mean`` by ``Allreduce(SUM)`` of the float32
    buffer, then / W."""

    def __init__(self, factory: ReplicaFactory, spec: dict, workers: int, address: str | None = None,
                 hint: str = MPI_HINT):
        self.MPI, self.comm = mpi_world(hint)
        super().__init__(spec, self.comm.Get_size())
        self.rank = self.comm.Get_rank()
        self.is_coordinator = self.rank == 0
        self.driver = factory(spec, self.rank)

    def gather(self, method: str, *args: Any) -> list:
        out = self.comm.allgather(getattr(self.driver, method)(*args))
        for w, answer in enumerate(out):  # each rank sends its answer and receives the others'
            n = len(dumps(answer))
            self.meter.worker_sent(w, n)
            for v in range(self.workers):
                if v != w:
                    self.meter.worker_received(v, n)
        return out

    def all_reduce_mean(self, method: str, *args: Any) -> np.ndarray:
        mine = getattr(self.driver, method)(*args)
        total = np.empty_like(mine)
        self.comm.Allreduce(mine, total, op=self.MPI.SUM)
        for w in range(self.workers):
            self.meter.worker_sent(w, mine.nbytes)
            self.meter.worker_received(w, total.nbytes)
        return (total / self.workers).astype(np.float32)

    def broadcast(self, method: str, value: Any) -> None:
        getattr(self.driver, method)(value)

    def hashes(self) -> list[str]:
        return self.comm.allgather(self.driver.params_hash())

    def close(self) -> None:
        self.driver.close()


REPLICA_POOLS: dict[str, Callable[..., ReplicaPool]] = {
    "local": LocalReplicaPool, "ray": RayReplicaPool, "mpi": MPIReplicaPool}


def make_replica_pool(kind: str, factory: ReplicaFactory, spec: dict, workers: int, address: str | None = None,
                      hint: str = MPI_HINT) -> ReplicaPool:
    """W replicas ``factory(spec, w)`` on the ``kind`` transport; see the module docstring."""
    return _lookup(REPLICA_POOLS, kind, "a replica pool")(factory, spec, int(workers), address, hint)
