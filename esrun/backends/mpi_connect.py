"""The MPI world: the one helper every MPI user (the train backend, the job map, the replica pool) starts from.

Processes are started by ``mpiexec -n N`` (or ``srun``); every rank runs the same program (SPMD).
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from esrun.errors import UserError

LAUNCH_HINT = "launch it with: mpiexec -n N esrun train CONFIG backend.type=mpi"


def launched_by_mpiexec() -> bool:
    """Whether a process manager (mpiexec / srun) started this process, even as a single rank."""
    return any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"))


def mpi_world(hint: str = LAUNCH_HINT) -> tuple[ModuleType, Any]:
    """``(MPI module, COMM_WORLD)`` for a process that mpiexec (or srun) started.

    The only import of mpi4py (docs/design.md, "Layers": cluster imports live in backends/). A single process that
    no process manager started is a user mistake: one line ending with ``hint`` (how to launch).
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1 and not launched_by_mpiexec():
        raise UserError(f"backend.type=mpi needs processes started by mpiexec, but this is a single process; {hint}")
    return MPI, comm
