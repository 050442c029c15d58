"""Length-prefixed pickles over pipes: the messages between :mod:`esrun.tasks.mujoco_pool` and its workers.

Each message is ``len (8 bytes, little endian) + pickle``; one per request and one per answer.
"""
from __future__ import annotations

import os
import pickle
import struct
from typing import Any


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, obj: Any) -> None:
    """Write one length-prefixed pickle to ``fd``."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, struct.pack("<Q", len(data)) + data)


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        b = os.read(fd, min(left, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def receive(fd: int) -> Any:
    """Read one length-prefixed pickle from ``fd``; ``EOFError`` at end of stream."""
    head = _read_exact(fd, 8)
    body = None if head is None else _read_exact(fd, struct.unpack("<Q", head)[0])
    if body is None:
        raise EOFError
    return pickle.loads(body)


class JobQueue:
    """Job indices shared by the worker processes through one pipe: ``fill`` writes 0 .. n-1, then one -1 per worker;
    a worker's ``claim`` reads one index (4-byte reads from a pipe are atomic, so each index goes to exactly one
    worker) and stops claiming at its -1. Workers pass the read end's number on their command line."""

    def __init__(self, read_fd: int, write_fd: int | None = None):
        self.read_fd, self.write_fd = read_fd, write_fd

    @classmethod
    def create(cls) -> JobQueue:
        r, w = os.pipe()
        return cls(r, w)

    def fill(self, n: int, workers: int) -> None:
        """Queue jobs 0 .. n-1 and ``workers`` ends (written from a thread when they may not fit in the pipe)."""
        import threading

        import numpy as np

        assert self.write_fd is not None  # the main process's end
        data = np.concatenate([np.arange(n), np.full(workers, -1)]).astype("<i4").tobytes()
        if len(data) <= 4096:  # under PIPE_BUF: never blocks on an empty pipe
            _write_all(self.write_fd, data)
        else:
            threading.Thread(target=_write_all, args=(self.write_fd, data), daemon=True).start()

    def claim(self) -> int:
        """The next job index, or -1 (this worker is done for this call)."""
        return struct.unpack("<i", os.read(self.read_fd, 4))[0]

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd is not None:
                os.close(fd)
