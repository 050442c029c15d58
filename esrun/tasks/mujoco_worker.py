"""The stepping side of ``task.engine: mujoco`` (:mod:`esrun.tasks.mujoco_pool`): shared buffers and slot stepping.

Run as a script (``python mujoco_worker.py XML FRAME_SKIP SHM SLOTS NQ NV NU WORKER WORKERS``) it is one worker
process: it owns slots ``WORKER, WORKER + WORKERS, ...``, answers ``k`` on stdout once built, then for every byte
``s`` read on stdin applies the slot flags (0 idle, 1 step, 2 reset to ``reset_qpos/qvel`` then step) and answers
``k``; EOF ends it. It imports numpy and mujoco only (no JAX, no esrun), so it starts fast and never inherits the
parent's threads.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from multiprocessing import shared_memory
from typing import Any

import numpy as np


def step_slots(model: Any, datas: dict[int, Any], slots: Iterable[int], flags: np.ndarray, action: np.ndarray,
               reset_qpos: np.ndarray, reset_qvel: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, failed: np.ndarray,
               frame_skip: int) -> None:
    """For each slot s in ``slots`` with ``flags[s] > 0``: (reset as Gymnasium's MujocoEnv.reset if 2), set
    ``ctrl = action[s]``, ``mj_step(nstep=frame_skip)``, write ``qpos[s], qvel[s]``; ``failed[s] = 1`` if it raised."""
    import mujoco

    for s in slots:
        f = flags[s]
        if f == 0:
            continue
        d = datas[s]
        try:
            if f == 2:
                mujoco.mj_resetData(model, d)
                d.qpos[:] = reset_qpos[s]
                d.qvel[:] = reset_qvel[s]
                mujoco.mj_forward(model, d)
            d.ctrl[:] = action[s]
            mujoco.mj_step(model, d, nstep=frame_skip)
            qpos[s] = d.qpos
            qvel[s] = d.qvel
            failed[s] = 0
        except Exception:  # noqa: BLE001 - a raising step fails the slot's episode, reported by the flag
            failed[s] = 1


class Buffers:
    """The arrays shared between the main process and the workers, in one shared-memory block:
    flags [S] int8, failed [S] int8, action [S, nu], reset_qpos / qpos [S, nq], reset_qvel / qvel [S, nv] float64."""

    FIELDS = ("flags", "failed", "action", "reset_qpos", "reset_qvel", "qpos", "qvel")
    flags: np.ndarray
    failed: np.ndarray
    action: np.ndarray
    reset_qpos: np.ndarray
    reset_qvel: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray

    def __init__(self, slots: int, nq: int, nv: int, nu: int, name: str | None = None):
        shapes = {"flags": ((slots,), np.int8), "failed": ((slots,), np.int8), "action": ((slots, nu), np.float64),
                  "reset_qpos": ((slots, nq), np.float64), "reset_qvel": ((slots, nv), np.float64),
                  "qpos": ((slots, nq), np.float64), "qvel": ((slots, nv), np.float64)}
        offsets, total = {}, 0
        for f in self.FIELDS:
            shape, dt = shapes[f]
            offsets[f] = total
            total += -(-int(np.prod(shape)) * np.dtype(dt).itemsize // 8) * 8
        if name is None:
            self.shm = shared_memory.SharedMemory(create=True, size=max(total, 8))
        else:  # attach; the creator alone unlinks it (Python < 3.13 registers attachments with the tracker too)
            self.shm = shared_memory.SharedMemory(name=name)
            from multiprocessing import resource_tracker

            resource_tracker.unregister(self.shm._name, "shared_memory")  # type: ignore[attr-defined]  # the name the tracker holds
        for f in self.FIELDS:
            shape, dt = shapes[f]
            setattr(self, f, np.ndarray(shape, dt, buffer=self.shm.buf, offset=offsets[f]))

    def close(self, unlink: bool) -> None:
        for f in self.FIELDS:
            setattr(self, f, None)
        self.shm.close()
        if unlink:
            self.shm.unlink()


def main(argv: list[str]) -> None:
    import signal

    import mujoco

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the parent decides, EOF ends us

    xml, frame_skip, shm_name = argv[0], int(argv[1]), argv[2]
    slots, nq, nv, nu, worker, workers = (int(a) for a in argv[3:9])
    buf = Buffers(slots, nq, nv, nu, name=shm_name)
    model = mujoco.MjModel.from_xml_path(xml)
    mine = list(range(worker, slots, workers))
    datas = {s: mujoco.MjData(model) for s in mine}
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    os.write(stdout, b"k")
    try:
        while os.read(stdin, 1) == b"s":
            step_slots(model, datas, mine, buf.flags, buf.action, buf.reset_qpos, buf.reset_qvel, buf.qpos,
                       buf.qvel, buf.failed, frame_skip)
            os.write(stdout, b"k")
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        buf.close(unlink=False)


if __name__ == "__main__":
    main(sys.argv[1:])
