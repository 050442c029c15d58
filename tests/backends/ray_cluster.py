"""A real two-node Ray cluster on this machine for the fault tests: two ``ray start --block`` processes (head and a
second node), each with its own logical CPUs and a custom resource naming it, in a private temp dir on free ports.

Nothing here calls ``ray stop`` (it would stop other Ray clusters on the machine): every process is stopped by PID,
the ``ray start`` process and its descendants (GCS, raylet, workers).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")

#: Node failure is detected by the GCS health check: 0.5 s x 4 misses instead of Ray's 3 s x 5.
FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                          "health_check_initial_delay_ms": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayNode:
    name: str
    proc: subprocess.Popen
    log: Path

    def raylet_pid(self, timeout: float = 300.0) -> int:
        """PID of this node's raylet (a child of the ``ray start --block`` process)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray node {self.name} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            for child in psutil.Process(self.proc.pid).children():
                if child.name() == "raylet":
                    return child.pid
            time.sleep(0.5)
        raise RuntimeError(f"ray node {self.name}: no raylet after {timeout:.0f} s:\n{self.log.read_text()}")

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
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return RayNode(name, proc, log)


def start_two_nodes(temp_dir: Path, cpus_per_node: int = 2) -> TwoNodeCluster:
    """Head (resource ``esrun_node1``) and a second node (``esrun_node2``), both with their raylet up."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = TwoNodeCluster(f"127.0.0.1:{port}", temp_dir)
    try:
        head = _start_node("node1", ["--head", f"--port={port}", f"--ray-client-server-port={free_port()}",
                                     f"--num-cpus={cpus_per_node}", '--resources={"esrun_node1": 100}',
                                     "--include-dashboard=false",
                                     f"--system-config={json.dumps(FAST_FAILURE_DETECTION)}"], temp_dir)
        cluster.nodes.append(head)
        head.raylet_pid()
        node2 = _start_node("node2", [f"--address={cluster.address}", f"--num-cpus={cpus_per_node}",
                                      '--resources={"esrun_node2": 100}'], temp_dir)
        cluster.nodes.append(node2)
        node2.raylet_pid()
    except BaseException:
        cluster.stop()
        raise
    return cluster
