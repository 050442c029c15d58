"""Connecting to Ray, and the options every esrun actor or task is started with (one place for all three users:
the train backend, the job map and the replica pool of ``esrun.backends.pool``).

    backend.address   unset: a local ``ray.init`` sized to this machine;  ``auto`` or ``host:port``: an existing
                      cluster (``host:port`` is probed first, so an unreachable address fails in seconds, with one
                      line, instead of Ray's own long retry)

Workers must compile the same programs as the coordinator, or their floating-point results (and so the run's
``params_sha256``) differ: the environment variables that change XLA's numerics travel with every actor and task
(:data:`FORWARDED_ENV`).
"""
from __future__ import annotations

import math
import os
import socket
import threading
from types import ModuleType
from typing import Any

from esrun.errors import UserError

CONNECT_TIMEOUT_S = 20.0  # with the 5 s probe, an unreachable cluster fails well within 30 s
FORWARDED_ENV = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DISABLE_MOST_OPTIMIZATIONS")
"""Environment variables copied from the coordinator to every Ray worker: jit numerics must match."""


def forwarded_env() -> dict[str, str]:
    """The variables of :data:`FORWARDED_ENV` set in this process, to be set in every worker."""
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def cpus_per_worker(ray: ModuleType, workers: int) -> float:
    """``min(1, CPUs / workers)`` (rounded down to 1e-4, at least 1e-4): ``workers`` actors always fit the cluster."""
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return min(1.0, math.floor(cpus / workers * 1e4) / 1e4) or 0.0001


def ray_options(num_cpus: float, **extra: Any) -> dict[str, Any]:
    """Options for ``ray.remote(...).options(**)``: ``num_cpus``, the forwarded environment and ``extra``."""
    opts: dict[str, Any] = {"num_cpus": num_cpus, **extra}
    env = forwarded_env()
    if env:
        opts["runtime_env"] = {"env_vars": env}
    return opts


def _probe(address: str) -> None:
    """Fail fast with one line when ``host:port`` does not accept connections."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"backend.address = '{address}': expected 'auto' or host:port (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5.0).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at backend.address = '{address}': {exc.strerror or exc}") \
            from None


def _init_with_timeout(ray: ModuleType, address: str, **kwargs: Any) -> None:
    """``ray.init(address)`` that gives up after CONNECT_TIMEOUT_S with one line naming the address."""
    box: dict = {}

    def target() -> None:
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the user's address
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(CONNECT_TIMEOUT_S)
    if t.is_alive():
        raise UserError(f"cannot connect to the Ray cluster at backend.address = '{address}': "
                        f"no answer within {CONNECT_TIMEOUT_S:.0f} s")
    if "error" in box:
        first = (str(box["error"]).strip().splitlines() or [type(box["error"]).__name__])[0]
        raise UserError(f"cannot connect to the Ray cluster at backend.address = '{address}': {first}")


LOCAL_START_ATTEMPTS = 3
"""Tries of a local ``ray.init``: Ray gives its new node a fixed 30 s to register with the GCS, which a loaded
machine (several processes importing JAX beside it) can miss; the node start is then tried again."""


def init_local(ray: ModuleType, **kwargs: Any) -> None:
    """``ray.init(**kwargs)`` of a new local node, tried again (LOCAL_START_ATTEMPTS in all) when only the node's
    registration timed out ("timed out during startup"); any other error is raised at once."""
    for attempt in range(LOCAL_START_ATTEMPTS):
        try:
            ray.init(**kwargs)
            return
        except Exception as exc:
            ray.shutdown()
            if attempt == LOCAL_START_ATTEMPTS - 1 or "timed out during startup" not in str(exc):
                raise


def connect(address: str | None) -> tuple[ModuleType, bool]:
    """The ray module, initialized; returns (ray, owned) where owned says whether this call started Ray
    (the caller then shuts it down when done)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "warning"}
    if address is None:
        init_local(ray, **kwargs)  # local, sized to the machine
    else:
        if address != "auto":
            _probe(address)
        _init_with_timeout(ray, address, **kwargs)
    return ray, True
