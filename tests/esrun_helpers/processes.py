"""Processes stopped and continued by PID (SIGSTOP / SIGCONT), so that a test acts on a run at the moment it means,
however fast this machine is: a stopped process runs no generation, writes no checkpoint and sends no answer.

``kill(pid, SIGSTOP)`` returns before the process has stopped (it may be running on another core); :func:`stop`
waits until the kernel shows it stopped. A pending signal sent to a stopped process (SIGTERM, SIGUSR1) waits and
is handled once the process is continued.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable


def is_stopped(pid: int) -> bool:
    """True if the process is stopped (state T or t in /proc/PID/stat) or gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def stop(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGSTOP each process and wait until each is stopped; returns the PIDs that were there to stop."""
    stopped = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        stopped.append(pid)
    deadline = time.monotonic() + timeout
    while not all(is_stopped(pid) for pid in stopped):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {[p for p in stopped if not is_stopped(p)]} not stopped in {timeout} s")
        time.sleep(0.005)
    return stopped


def cont(pids: Iterable[int]) -> None:
    """SIGCONT each process still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
