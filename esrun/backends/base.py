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
Backends that start processes live in their own modules and import ray / mpi4py there only.
"""
from __future__ import annotations

import abc
from typing import Any, Callable

BACKENDS: dict[str, Callable[..., "Backend"]] = {}


def register(name: str):
    def wrap(factory):
        BACKENDS[name] = factory
        return factory

    return wrap


class Backend(abc.ABC):
    is_coordinator: bool = True
    workers: int = 1

    @abc.abstractmethod
    def start(self, state): ...

    @abc.abstractmethod
    def evaluate(self, state) -> list: ...

    def tell(self, fitness, obs_delta, state) -> None:
        """Replicas apply the coordinator's update. In-process backends have no other replica."""

    def agree(self, value: Any) -> Any:
        return value

    def comm_metrics(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass
