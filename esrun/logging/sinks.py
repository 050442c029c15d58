"""Sinks for per-generation metrics."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from esrun.logging.tensorboard import TensorBoardSink  # noqa: F401  (re-exported: the sink of every dashboard)


class ConsoleSink:
    """The live progress line: generation, best / mean fitness, eval return, steps/s (tqdm)."""

    def __init__(self, total: int | None, initial: int = 0, name: str = ""):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=name or "esrun", unit="gen", file=sys.stderr,
                        mininterval=0.25, dynamic_ncols=True, leave=True)
        self._eval: float | None = None

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if "eval/return_mean" in metrics:
            self._eval = metrics["eval/return_mean"]
        post = {
            "best": f"{metrics.get('fitness/best', float('nan')):.4g}",
            "mean": f"{metrics.get('fitness/mean', float('nan')):.4g}",
            "eval": "-" if self._eval is None else f"{self._eval:.4g}",
            "steps/s": f"{metrics.get('perf/steps_per_second', 0.0):.3g}",
        }
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(step - self.bar.n)

    def message(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class MetricLogger:
    """Fans one metrics dict out to every sink."""

    def __init__(self, sinks: list):
        self.sinks = sinks

    def write(self, step: int, metrics: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.write(step, metrics)

    def histogram(self, tag: str, values, step: int) -> None:
        """An array (e.g. the population's fitness) to the sinks that draw distributions; scalar sinks ignore it."""
        self._each("histogram", tag, values, step)

    def video(self, tag: str, frames, step: int) -> None:
        """``frames: [T, H, W, 3]`` uint8 to the sinks that show videos."""
        self._each("video", tag, frames, step)

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's summary, once at the end of a session (TensorBoard's HParams metrics)."""
        self._each("finish", summary)

    def _each(self, method: str, *args) -> None:
        for sink in self.sinks:
            if hasattr(sink, method):
                getattr(sink, method)(*args)

    def message(self, text: str) -> None:
        for sink in self.sinks:
            if hasattr(sink, "message"):
                sink.message(text)
                return
        print(text, file=sys.stderr)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """summary.json, written atomically."""
    path = Path(run_dir) / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({k: _clean(v) for k, v in summary.items()}, indent=2) + "\n")
    os.replace(tmp, path)
    return path
