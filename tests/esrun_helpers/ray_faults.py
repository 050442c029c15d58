"""Faults injected into a running RayBackend at a chosen moment, without a race.

A test that kills (or stops) a worker "while it evaluates a chunk" reads the coordinator's view (``backend.busy``),
but the worker may have answered a moment before: the answer is then already on its way, and the kill lands
between chunks. :func:`freeze_mid_chunk` stops the workers first (SIGSTOP: a stopped process sends nothing), then
checks that each still has a chunk call without an answer; only then is the moment the test wants. Otherwise the
workers are continued and the caller polls again.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esrun_helpers import processes

#: seconds an answer sent just before SIGSTOP may take to reach the coordinator (one machine: milliseconds)
IN_TRANSIT_S = 0.2


def unanswered_chunks(b: Any, w: int, timeout: float = IN_TRANSIT_S) -> list:
    """Worker ``w``'s chunk calls that have no answer after ``timeout`` seconds (``b``: a RayBackend)."""
    refs = [ref for ref, call in list(b._calls.items()) if call[0] == "chunk" and call[1] == w]
    if not refs:
        return []
    _, pending = b.ray.wait(refs, num_returns=len(refs), timeout=timeout)
    return pending


def freeze_mid_chunk(b: Any, workers: Sequence[int]) -> list[int] | None:
    """SIGSTOP the processes of ``workers``; if every one of them still owes a chunk, return their pids (left
    stopped, for the caller to kill or continue), else SIGCONT them and return None."""
    pids = processes.stop([b.pids[w] for w in workers])
    if all(unanswered_chunks(b, w) for w in workers):
        return pids
    processes.cont(pids)
    return None
