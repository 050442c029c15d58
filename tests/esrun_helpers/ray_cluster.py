"""A real two-node Ray cluster on this machine for the fault tests: two ``ray start --block`` processes (head and a
second node), each with its own logical CPUs and a custom resource naming it, in a private temp dir on free ports.

Nothing here calls ``ray stop`` (it would stop other Ray clusters on the machine): every process is stopped by PID,
the ``ray start`` process and its descendants (GCS, raylet, workers).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from esrun_helpers import free_port

RAY = str(Path(sys.executable).parent / "ray")

#: Printed by ``ray start`` once its node has registered with the GCS (stdout unbuffered).
READY = "Ray runtime started."
#: ``ray start`` gives a node 30 s to register (a constant in ray/_private/node.py); a loaded machine can miss that,
#: so a node that exits before it is ready is started again, at most this many times in all.
ATTEMPTS = 3

#: Node failure is detected by the GCS health check: 0.5 s x 4 misses instead of Ray's 3 s x 5.
FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                          "health_check_initial_delay_ms": 0}


@dataclass
class RayNode:
    name: str
    proc: subprocess.Popen
    log: Path

    def raylet_pid(self) -> int:
        """PID of this node's raylet (a child of the ``ray start --block`` process)."""
        for child in psutil.Process(self.proc.pid).children():
            if child.name() == "raylet":
                return child.pid
        raise RuntimeError(f"ray node {self.name} has no raylet:\n{self.log.read_text()}")

    def wait_ready(self, timeout: float = 180.0) -> bool:
        """True once ``ray start`` says the node is up; False if it exited or stopped trying (timed out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if READY in text:
                return True
            if self.proc.poll() is not None or "timed out during startup" in text:
                return False
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        """SIGKILL the ``ray start`` process and every descendant, by PID."""
        try:
            root = psutil.Process(self.proc.pid)
            procs = root.children(recursive=True) + [root]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=15)


@dataclass
class TwoNodeCluster:
    address: str
    temp_dir: Path
    nodes: list[RayNode] = field(default_factory=list)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _start_node(name: str, args: list[str], temp_dir: Path) -> RayNode:
    log = temp_dir.parent / f"{temp_dir.name}-{name}.log"
    ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
             "--runtime-env-agent-port"]
    cmd = [RAY, "start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}",
           "--object-store-memory=80000000", *[f"{p}={free_port()}" for p in ports], *args]
    # a slow GCS (a loaded machine) answers the node's registration check late rather than never
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1",
           "RAY_gcs_server_request_timeout_seconds": "240"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return RayNode(name, proc, log)


def start_two_nodes(temp_dir: Path, cpus_per_node: int = 2) -> TwoNodeCluster:
    """Head (resource ``esrun_node1``) and a second node (``esrun_node2``), both with their raylet up."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = TwoNodeCluster(f"127.0.0.1:{port}", temp_dir)
    head_args = ["--head", f"--port={port}", f"--ray-client-server-port={free_port()}", f"--num-cpus={cpus_per_node}",
                 '--resources={"esrun_node1": 100}', "--include-dashboard=false",
                 f"--system-config={json.dumps(FAST_FAILURE_DETECTION)}"]
    node2_args = [f"--address={cluster.address}", f"--num-cpus={cpus_per_node}", '--resources={"esrun_node2": 100}']
    try:
        for name, args in (("node1", head_args), ("node2", node2_args)):
            for attempt in range(ATTEMPTS):
                node = _start_node(f"{name}-{attempt}", args, temp_dir)
                if node.wait_ready():
                    node.name = name
                    cluster.nodes.append(node)
                    break
                log = node.log.read_text(errors="replace")
                node.stop()
            else:
                raise RuntimeError(f"ray {name} did not start in {ATTEMPTS} attempts; last log:\n{log}")
    except BaseException:
        cluster.stop()
        raise
    return cluster
