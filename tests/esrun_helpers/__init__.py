"""The one helpers package of the test suite (importable as ``esrun_helpers`` because pyproject's
``[tool.pytest.ini_options] pythonpath`` holds tests/): run the CLI as a user would, in a subprocess, read run
directories, free ports, a real TensorBoard. Topic modules: ``backends`` (esrun / mpiexec processes, the shared
CartPole and sphere overrides), ``compare`` (compare run outputs), ``oracles`` (exact-gradient checks of the
estimator tests), ``slurm`` (a real single-node SLURM cluster), ``ray_cluster`` (a real two-node Ray cluster),
``ray_local`` (the session's one local Ray, behind the ``ray_session`` fixture of tests/conftest.py),
``ray_faults`` (a worker stopped or killed mid-chunk without a race), ``processes`` (processes stopped and continued
by PID, the one SIGSTOP / SIGCONT of the fault tests).

(Kept out of conftest.py: several test folders have a conftest, and `from conftest import ...` would pick
whichever pytest imported last. No test module imports another test module: what two tests share lives here.)
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def esrun_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "esrun", *args]


def run_esrun(*args: str, timeout: float = 600, check: bool = False, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(esrun_cmd(*args), capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=cwd or ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"esrun {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tensorboard_server(logdir: Path) -> Iterator[str]:
    """A real `tensorboard` serving ``logdir`` on 127.0.0.1; yields its base URL and stops it by PID."""
    port = free_port()
    tb = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen([str(tb), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                             "--reload_interval", "1", "--load_fast", "false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
