"""Helpers for the top-level tests: run the CLI as a user would, in a subprocess, and read run directories.

(Kept out of conftest.py: several test folders have a conftest, and `from conftest import ...` would pick
whichever pytest imported last.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
