"""Where compare jobs run: ``backend.type`` local | ray | mpi, the same switch as ``esrun train``.

The unit of work is one estimator entry with all of its seeds (:func:`esrun.compare.run.run_entries`): a pure
JAX loop, compiled once and reused by the seeds. Only the config (as JSON) goes to a worker and only the results
(learning curve points and a few scalars) come back; the driver (Ray) or rank 0 (MPI) writes every file.

    local   entries run one after another in this process
    ray     one remote task per entry, at most ``backend.workers`` in flight (``ray.init`` local, or
            ``backend.address``: 'auto' / host:port, through ``esrun.backends.ray_backend.connect``)
    mpi     ``mpiexec -n N esrun compare ... backend.type=mpi``: rank r runs entries i with i % N == r, and one
            ``gather`` brings the results to rank 0

A job's results depend only on (config, entry, seed), not on which process ran it.
"""
from __future__ import annotations

import os
from typing import Any

from esrun.compare.run import run_entries

FORWARDED_ENV = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DISABLE_MOST_OPTIMIZATIONS")  # same numerics on workers


def _local(cfg) -> list[dict]:
    return run_entries(cfg, list(range(len(cfg.estimators))))


def _ray_entry(cfg_json: dict, index: int) -> list[dict]:
    from esrun.compare.schema import CompareConfig

    return run_entries(CompareConfig.model_validate(cfg_json), [index])


def _ray(cfg) -> list[dict]:
    from esrun.backends.ray_backend import connect

    ray, owned = connect(cfg.backend.address)
    try:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        opts: dict[str, Any] = {"num_cpus": 1, "max_retries": 1}
        if env:
            opts["runtime_env"] = {"env_vars": env}
        remote = ray.remote(_ray_entry).options(**opts)
        cfg_json = cfg.model_dump(mode="json")
        pending, results = list(range(len(cfg.estimators))), {}
        in_flight: dict = {}
        while pending or in_flight:
            while pending and len(in_flight) < cfg.backend.workers:
                i = pending.pop(0)
                in_flight[remote.remote(cfg_json, i)] = i
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                results[in_flight.pop(ref)] = ray.get(ref)
        return [r for i in sorted(results) for r in results[i]]
    finally:
        if owned:
            ray.shutdown()


def mpi_world():
    """(comm, rank, size) of MPI.COMM_WORLD; refuses a process that mpiexec did not start."""
    from esrun.backends.mpi_backend import mpi_world as world

    _, comm = world("launch it with: mpiexec -n N esrun compare CONFIG backend.type=mpi")
    return comm, comm.Get_rank(), comm.Get_size()


def _mpi(cfg) -> list[dict] | None:
    comm, rank, size = mpi_world()
    mine = [i for i in range(len(cfg.estimators)) if i % size == rank]
    gathered = comm.gather(run_entries(cfg, mine) if mine else [], root=0)
    if rank != 0:
        return None
    return sorted((r for part in gathered for r in part), key=lambda r: (r["entry"], r["seed"]))


DISTRIBUTORS = {"local": _local, "ray": _ray, "mpi": _mpi}
"""backend.type -> cfg -> every job's result in (entry, seed) order, or None on MPI ranks other than 0."""


def run_jobs(cfg) -> list[dict] | None:
    return DISTRIBUTORS[cfg.backend.type](cfg)
