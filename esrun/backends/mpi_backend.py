"""MPI backend: ``mpiexec -n N esrun train CONFIG backend.type=mpi`` — every rank is a replica (SPMD).

Every rank runs the same runner loop on its own copy of the state. In generation g rank r evaluates the chunks
``c`` with ``c % N == r`` (a fixed assignment), and one ``Allgatherv`` of the serialized ChunkResults gives every
rank the whole generation in chunk order; every rank then applies the same ``Replica.apply``. Only fitness
scalars, step counts and observation statistics travel — O(population) bytes per rank, independent of the number
of parameters. Rank 0 alone logs, checkpoints and prints (``is_coordinator``); its decisions (stop reason,
evaluation return) reach the other ranks through ``agree`` (a broadcast).

Replica integrity: at start and every ``backend.hash_every`` generations the ranks allgather the SHA-256 of their
mean; on a mismatch rank 0 broadcasts its full state once and the others adopt it (``start`` / ``tell`` return
the replacement state to the loop).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from esrun.backends.base import Backend, ReplicaLike, State, register
from esrun.backends.comm import (
    CommMeter,
    decode_results,
    dumps,
    encode_results,
    log,
    state_from_blob,
    state_to_blob,
)
from esrun.backends.mpi_connect import mpi_world
from esrun.digest import params_hash

HASH_BYTES = 64  # hex SHA-256
POLL_S = 0.0005  # sleep between tests of a pending collective


class MPIBackend(Backend):
    def __init__(self, cfg: Any, evaluator: ReplicaLike):
        self.MPI, self.comm = mpi_world()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.evaluator = evaluator
        self.workers = self.size
        self.is_coordinator = self.rank == 0
        self.hash_every = cfg.backend.hash_every
        self.meter = CommMeter(self.size)
        self.eval_seconds = 0.0

    # -- waiting --------------------------------------------------------------------------------------
    def _wait(self, request: Any) -> None:
        """Complete a nonblocking operation, sleeping between tests. A rank waiting in a blocking MPICH collective
        spins at 100% CPU; with ranks sharing cores that would take the CPU from the rank still evaluating."""
        while not request.Test():
            time.sleep(POLL_S)

    def _all_arrived(self) -> None:
        """Return once every rank has reached this point (a barrier that sleeps instead of spinning)."""
        self._wait(self.comm.Ibarrier())

    # -- replica integrity ----------------------------------------------------------------------------
    def _check_replicas(self, state: State, when: str) -> State | None:
        """Allgather the mean's hash; if the ranks disagree, rank 0's full state replaces every other's."""
        self._all_arrived()
        hashes = self.comm.allgather(params_hash(self.evaluator.mean(state)))
        for r in range(self.size):
            self.meter.worker_sent(r, HASH_BYTES * (self.size - 1))
            self.meter.worker_received(r, HASH_BYTES * (self.size - 1))
        if all(h == hashes[0] for h in hashes):
            return None
        blob = self.comm.bcast(state_to_blob(state) if self.is_coordinator else None, root=0)
        bad = [r for r, h in enumerate(hashes) if h != hashes[0]]
        self.meter.syncs += len(bad)
        self.meter.setup_bytes += len(blob) * len(bad)
        if self.is_coordinator:
            log(f"mpi: {when}: replica hash of ranks {bad} differs from rank 0; full state of {len(blob)} bytes sent")
        return None if self.is_coordinator else state_from_blob(blob)

    def start(self, state: State) -> State | None:
        """Ranks join: their states must agree (each built it from the seed or the checkpoint)."""
        synced = self._check_replicas(state, "start")
        if self.is_coordinator:
            log(f"mpi: {self.size} ranks joined")
        return synced

    # -- one generation ---------------------------------------------------------------------------------
    def evaluate(self, state: State) -> list:
        n = self.evaluator.num_chunks
        mine = [c for c in range(n) if c % self.size == self.rank]
        t0 = time.perf_counter()
        mine_results = self.evaluator.evaluate_chunks(state, mine)
        payload = np.frombuffer(encode_results(mine, mine_results, time.perf_counter() - t0), np.uint8)
        sizes = np.zeros(self.size, np.int64)
        self._wait(self.comm.Iallgather(np.array([payload.size], np.int64), sizes))
        gathered = np.empty(int(sizes.sum()), np.uint8)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._wait(self.comm.Iallgatherv(payload, [gathered, sizes, offsets, self.MPI.BYTE]))
        results: dict[int, object] = {}
        self.eval_seconds = 0.0  # longest time one rank spent evaluating this generation
        for r in range(self.size):
            blob = gathered[offsets[r]:offsets[r] + sizes[r]].tobytes()
            seconds, pairs = decode_results(blob)
            self.eval_seconds = max(self.eval_seconds, seconds)
            results.update(pairs)
            # rank r sends its payload (and its size) to the N-1 others and receives theirs
            self.meter.worker_sent(r, (int(sizes[r]) + 8) * (self.size - 1))
            self.meter.worker_received(r, int(sizes.sum() - sizes[r]) + 8 * (self.size - 1))
        return [results[c] for c in range(n)]

    def tell(self, fitness: Any, obs_delta: Any, state: State) -> State | None:
        """Every rank already applied the update in its own loop; every hash_every generations, compare."""
        synced = None
        if state.generation % self.hash_every == 0:
            synced = self._check_replicas(state, f"generation {state.generation}")
        self.meter.end()
        return synced

    def agree(self, value: Any) -> Any:
        """Rank 0's value on every rank (a broadcast)."""
        nbytes = len(dumps(value))
        for r in range(1, self.size):
            self.meter.worker_received(r, nbytes)
        self.meter.worker_sent(0, nbytes * (self.size - 1))
        self._all_arrived()  # rank 0 may still be evaluating the mean policy
        return self.comm.bcast(value, root=0)

    def comm_metrics(self) -> dict[str, float]:
        return self.meter.metrics()


@register("mpi")
def make_mpi(cfg: Any, evaluator: ReplicaLike,
             replica_factory: Callable[[Any], ReplicaLike] | None = None) -> MPIBackend:
    return MPIBackend(cfg, evaluator)
