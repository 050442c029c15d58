"""What crosses the wire between replicas, and how many bytes it takes.

Messages of the seed protocol (docs/design.md), all pickled here so their sizes are measured, not estimated:

    coordinator -> worker   evaluate   (generation g, chunk ids)                       O(1)
    worker -> coordinator   results    [(chunk id, ChunkResult)]: fitness [C], steps [C],
                                       obs_delta (count, mean [obs_dim], m2 [obs_dim])  O(C + obs_dim)
    coordinator -> worker   tell       (g, fitness [population], steps, obs_delta)     O(population + obs_dim)
    worker -> coordinator   hash       hex SHA-256 of the replica's mean (every hash_every generations)
    coordinator -> worker   full state RunState with numpy leaves                       O(num_params), only when a
                                       worker (re)joins or its hash disagrees

None of the per-generation messages grows with ``num_params``: bytes per generation per worker are O(population).
"""
from __future__ import annotations

import pickle
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

PROTOCOL = pickle.HIGHEST_PROTOCOL


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=PROTOCOL)


def loads(blob: bytes) -> Any:
    return pickle.loads(blob)


def state_to_blob(state: Any) -> bytes:
    """The full replica state (RunState with numpy leaves): sent once to a (re)joining or drifted worker."""
    import jax

    return dumps(jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, state))


def state_from_blob(blob: bytes) -> Any:
    """Inverse of :func:`state_to_blob`; the strategy leaves become device arrays again (bitwise equal)."""
    import jax
    import jax.numpy as jnp

    state = loads(blob)
    return state._replace(strategy=jax.tree_util.tree_map(jnp.asarray, state.strategy))


def encode_results(chunk_ids: Sequence[int], results: Sequence[Any], seconds: float) -> bytes:
    """A worker's answer: the seconds it spent evaluating (for the overhead figures) and
    ``[(chunk id, (fitness [C] float64, steps [C] int64, obs_delta or None))]``."""
    return dumps((float(seconds), [(int(c), (np.asarray(r.fitness, np.float64), np.asarray(r.steps, np.int64),
                                             r.obs_delta)) for c, r in zip(chunk_ids, results)]))


def decode_results(blob: bytes) -> tuple[float, list]:
    """``(seconds, [(chunk id, ChunkResult)])`` from :func:`encode_results`."""
    from esrun.tasks.base import ChunkResult

    seconds, pairs = loads(blob)
    return seconds, [(c, ChunkResult(*r)) for c, r in pairs]


def encode_tell(generation: int, fitness: Any, steps: int, obs_delta: Any) -> bytes:
    """The update every replica applies to the state of ``generation``: fitness [population], steps, obs_delta."""
    return dumps((int(generation), np.asarray(fitness, np.float64), int(steps), obs_delta))


def log(text: str) -> None:
    """One line on the coordinator's stderr (state syncs, restarts): rare events worth seeing in a job log."""
    print(f"esrun: {text}", file=sys.stderr, flush=True)


class CommMeter:
    """Bytes each worker sent and received per generation, from the sizes of the serialized messages.

    A generation's window runs from one ``end()`` (called by the backend's ``tell``) to the next.

    ``sent`` / ``received`` are from the worker's point of view. ``metrics()`` reports the mean over workers:

        comm/bytes_per_generation = mean_w (sent_w + received_w)      (the figure in summary.json)
        comm/bytes_sent, comm/bytes_received                          (mean per worker)
        comm/bytes_setup            full-state bytes sent outside a generation (start, resync), cumulative
        comm/worker_restarts        workers that died and were restarted, cumulative
        comm/state_syncs            full states sent (joins and hash mismatches), cumulative
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.restarts = 0
        self.syncs = 0
        self.setup_bytes = 0
        self._sent: dict[int, int] = defaultdict(int)
        self._received: dict[int, int] = defaultdict(int)
        self._last: dict[str, float] | None = None

    def worker_sent(self, worker: int, nbytes: int) -> None:
        self._sent[worker] += int(nbytes)

    def worker_received(self, worker: int, nbytes: int) -> None:
        self._received[worker] += int(nbytes)

    def end(self) -> None:
        """Close a generation: everything counted since the previous ``end`` becomes what ``metrics()`` reports."""
        n = max(self.workers, 1)
        sent = sum(self._sent.values()) / n
        received = sum(self._received.values()) / n
        self._last = {
            "comm/bytes_per_generation": float(sent + received),
            "comm/bytes_sent": float(sent),
            "comm/bytes_received": float(received),
        }
        self._sent.clear()
        self._received.clear()

    def metrics(self) -> dict[str, float]:
        out = dict(self._last or {"comm/bytes_per_generation": 0.0})
        out.update({
            "comm/worker_restarts": float(self.restarts),
            "comm/state_syncs": float(self.syncs),
            "comm/bytes_setup": float(self.setup_bytes),
        })
        return out
