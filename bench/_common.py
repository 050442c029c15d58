"""Helpers shared by the issue-2 benchmarks: the machine header, peak-memory probes, fresh-process runs.

Benchmarks are plain scripts that print their figures; ratios are measured side by side in one run. Memory is
measured per variant in a fresh subprocess (``run_child``) so that one variant's allocations never hide
another's: the child resets its high-water mark (``/proc/self/clear_refs`` = 5) after imports and set-up, runs
the measured call, and reports ``VmHWM - VmRSS(before)``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MIB = 2**20


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    return _meminfo("MemTotal") / 2**30


def mem_available_gib() -> float:
    return _meminfo("MemAvailable") / 2**30


def _meminfo(field: str) -> int:
    for line in open("/proc/meminfo"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "absent"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_header(command: str) -> None:
    """Print the machine, library versions and the command, as docs/BENCHMARKS.md records them."""
    print(f"# command: {command}")
    print(f"# machine: nproc={os.cpu_count()} cpu='{cpu_model()}' mem_total={mem_total_gib():.1f} GiB "
          f"mem_available={mem_available_gib():.1f} GiB gpu=none")
    print(f"# python {platform.python_version()}  jax {version('jax')}  jaxlib {version('jaxlib')}  "
          f"evosax {version('evosax')}  gymnasium {version('gymnasium')}  mujoco {version('mujoco')}")
    print(f"# load average at start: {load_average()} (the machine is shared; side-by-side ratios are the figures)")
    sys.stdout.flush()


def _status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def hwm_mib() -> float:
    return _status_kib("VmHWM") / 1024


def reset_hwm() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """``with PeakRSS() as p: ...`` -> ``p.increase_mib``: peak RSS during the block minus RSS before it."""

    def __enter__(self):
        self.reset_ok = reset_hwm()
        self.before = rss_mib()
        return self

    def __exit__(self, *exc):
        self.peak = hwm_mib()
        self.increase_mib = self.peak - self.before


def timed(fn, *args):
    """(result, seconds) of one call; ``fn`` must block until its result is ready."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def run_child(script: str, args: list[str], timeout: float = 600) -> dict:
    """Run ``bench/<script> args`` in a fresh interpreter; it prints one line ``RESULT {json}``."""
    proc = subprocess.run([PYTHON, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{script} {' '.join(args)} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A markdown table: ``columns`` = [(key, header, format)]."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for r in rows:
        cells = []
        for k, _, fmt in columns:
            v = r.get(k)
            cells.append("n/a" if v is None else (format(v, fmt) if fmt else str(v)))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])
