"""Where fitness is evaluated: one small interface, three implementations (local, ray, mpi).

The runner holds the coordinator's replica of the run state and drives every generation through a backend:

    state = backend.start(state) or state      once: workers receive the full state (a fresh or restarted worker
                                         too); may return a replacement state (an MPI rank adopting rank 0's)
    results = backend.evaluate(state)    fitness of every chunk of generation ``state.generation``:
                                         a list of ChunkResult in chunk order (workers get only (g, chunk ids))
    state = backend.tell(fitness, obs_delta, state) or state
                                         the replicas apply the same update the coordinator applied (only the
                                         fitness vector and merged observation statistics travel); a replacement
                                         state is returned after a replica-hash mismatch resync
    backend.agree(value)                 the coordinator's decision (stop reason) seen by every process (MPI)
    backend.close()

``is_coordinator`` is False on MPI ranks other than 0: they run the same loop but neither log nor checkpoint.
``comm_metrics()`` reports the measured bytes each worker sent and received in the last generation.
Backends that start processes live in their own modules and import ray / mpi4py there only (through
``ray_connect`` / ``mpi_connect``). A backend is made by ``BACKENDS[name](cfg, replica, replica_factory=None)``:
``replica`` is the coordinator's replica (``ReplicaLike``), ``replica_factory(cfg)`` builds one on a worker (default
``type(replica)``), so backends never import the runner (docs/design.md, "Layers").
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

State = Any
"""The runner's replica state (``esrun.runner.replica.RunState``): opaque here, backends only move it."""

BACKENDS: dict[str, Callable[..., Backend]] = {}
F = TypeVar("F", bound=Callable[..., "Backend"])


class ReplicaLike(Protocol):
    """What a backend needs of the runner's replica (``esrun.runner.replica.Replica``).

    ``evaluate_chunks(state, chunk ids)`` -> one ChunkResult per chunk; ``apply(state, fitness [population], steps,
    obs_delta)`` -> (state', metrics), the pure generation update; ``mean(state)`` -> [P]. A backend that starts
    processes builds their replicas with a ``replica_factory(cfg)``, by default the coordinator's replica's class.
    """

    num_chunks: int

    def evaluate_chunks(self, state: State, chunk_ids: Sequence[int]) -> list: ...

    def apply(self, state: State, fitness: Any, steps: int, obs_delta: Any) -> tuple[State, dict]: ...

    def mean(self, state: State) -> Any: ...


def register(name: str) -> Callable[[F], F]:
    """Class decorator / function decorator: ``BACKENDS[name] = factory(cfg, replica, replica_factory=None)``."""

    def wrap(factory: F) -> F:
        BACKENDS[name] = factory
        return factory

    return wrap


class Backend(abc.ABC):
    is_coordinator: bool = True
    workers: int = 1

    @abc.abstractmethod
    def start(self, state: State) -> State | None:
        """Workers receive the full state; may return a replacement state (an MPI rank adopting rank 0's)."""

    @abc.abstractmethod
    def evaluate(self, state: State) -> list:
        """Every chunk's ChunkResult of generation ``state.generation``, in chunk order."""

    def tell(self, fitness: Any, obs_delta: Any, state: State) -> State | None:
        """Replicas apply the coordinator's update (in-process backends have no other replica). Returns a
        replacement state after a replica-hash mismatch (MPI), else None."""
        return None

    def agree(self, value: Any) -> Any:
        return value

    def comm_metrics(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        return None
