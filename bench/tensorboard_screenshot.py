"""Screenshots of TensorBoard's dashboards for a fresh run, taken by headless Chromium (a real browser).

    .venv/bin/python bench/tensorboard_screenshot.py --out /tmp/tb_shots [--chromium chromium]

Trains a short CartPole run (histograms, hparams, config text, a policy video), starts `tensorboard` on
127.0.0.1, waits until its HTTP data API serves the run, then loads each dashboard page in headless Chromium and
writes one PNG per dashboard. Prints the PNG paths and sizes; the server and browser are stopped by PID.
The CI check of the same dashboards is tests/logging/test_tensorboard_dashboards.py (data API, no browser).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import esrun

# the test suite's helpers (free_port, a real TensorBoard stopped by PID): one copy, shared with the CI check
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from esrun_helpers import tensorboard_server  # noqa: E402

DASHBOARDS = ("scalars", "hparams", "histograms", "text", "images")


def _wait_for_run(base: str, run: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=5) as r:
                if run in json.loads(r.read()):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"TensorBoard did not serve run {run!r} within {timeout} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tb_screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="tb_runs_"))
    esrun.train("configs/cartpole.yaml", "task.eval_every=1", "budget.generations=4", "budget.target_return=null",
                "logging.video_every=2", f"logging.dir={runs}", "name=shot", "logging.progress=false")
    with tensorboard_server(runs) as base:
        _wait_for_run(base, "shot")
        for board in DASHBOARDS:
            png = out / f"{board}.png"
            cmd = [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--window-size=1400,900", "--virtual-time-budget=15000", f"--screenshot={png}",
                   f"{base}/#{board}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, start_new_session=True)
            size = png.stat().st_size if png.exists() else 0
            print(f"{board:10s} {png} {size} bytes (chromium exit {proc.returncode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
