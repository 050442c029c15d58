"""The TensorBoard sink: every dashboard a researcher opens, written through tensorboardX into the run directory.

    SCALARS     every metric at step = generation; fitness/* and eval/* again under ``vs_env_steps/<tag>`` at
                step = environment steps (the RL convention: compare runs of different population sizes)
    HPARAMS     strategy, sigma, population, learning_rate, seed, task, backend (+ num_params), with the metrics
                ``hparams/final_eval_return`` and ``hparams/best_fitness`` written when the run ends
    TEXT        ``config``: the resolved config.yaml
    HISTOGRAMS  ``fitness/population``: the fitness of every member, each generation
    IMAGES      ``eval/video``: an animated GIF of one episode of the mean policy (``logging.video_every``)

The HParams records follow TensorBoard's hparams plugin: an experiment and a session-start summary at the start
of each session, a session-end summary and the metric scalars at the end.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

ENV_STEP_GROUPS = ("fitness/", "eval/")
"""Tag groups also written against environment steps, under ``vs_env_steps/``."""
ENV_STEPS_TAG = "perf/env_steps"
HPARAM_METRICS = ("hparams/final_eval_return", "hparams/best_fitness")


def hparams_of(cfg) -> dict[str, Any]:
    """The run's hyperparameters as the HParams dashboard shows them (str / float values)."""
    task = cfg.task
    return {
        "strategy": cfg.strategy.name,
        "sigma": float(cfg.strategy.sigma),
        "population": float(cfg.strategy.population),
        "learning_rate": float(cfg.strategy.learning_rate),
        "seed": float(cfg.seed),
        "task": str(getattr(task, "env_id", None) or getattr(task, "env_name", None)
                    or getattr(task, "objective", None) or task.type),
        "backend": cfg.backend.type,
    }


def gif_bytes(frames: np.ndarray, fps: int = 30) -> bytes:
    """An animated GIF of ``frames: [T, H, W, 3]`` uint8."""
    import imageio.v2 as imageio

    buf = io.BytesIO()
    imageio.mimsave(buf, list(frames), format="GIF", duration=1 / fps, loop=0)
    return buf.getvalue()


class TensorBoardSink:
    """Scalars, env-step curves, histograms, hparams, the config text and policy videos (tensorboardX writer)."""

    def __init__(self, run_dir: Path, hparams: dict[str, Any] | None = None, config_text: str | None = None):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(run_dir), flush_secs=5)
        self._hparams = hparams
        if hparams:
            from tensorboardX.summary import hparams as hparams_summary

            exp, ssi, _ = hparams_summary(hparams, {tag: 0.0 for tag in HPARAM_METRICS})
            self.writer.file_writer.add_summary(exp)
            self.writer.file_writer.add_summary(ssi)
        if config_text:
            # Four-space indent: TensorBoard's text dashboard renders markdown, this keeps the YAML verbatim.
            self.writer.add_text("config", "\n".join("    " + line for line in config_text.splitlines()), 0)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        env_steps = metrics.get(ENV_STEPS_TAG)
        for tag, value in metrics.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            self.writer.add_scalar(tag, float(value), step)
            if env_steps is not None and tag.startswith(ENV_STEP_GROUPS):
                self.writer.add_scalar(f"vs_env_steps/{tag}", float(value), int(env_steps))

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        values = np.asarray(values, np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            self.writer.add_histogram(tag, values, step)

    def video(self, tag: str, frames: np.ndarray, step: int, fps: int = 30) -> None:
        """``frames: [T, H, W, 3]`` uint8 as an animated GIF in the images dashboard."""
        from tensorboardX.proto.summary_pb2 import Summary

        frames = np.asarray(frames, np.uint8)
        _, h, w, c = frames.shape
        image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=gif_bytes(frames, fps))
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def finish(self, summary: dict[str, Any]) -> None:
        """The HParams metrics (final evaluation return, best fitness) and the session end, once per session."""
        if not self._hparams or not summary:
            return
        from tensorboardX.summary import hparams as hparams_summary

        step = int(summary.get("generations") or 0)
        for tag, key in zip(HPARAM_METRICS, ("final_eval_return", "best_fitness")):
            value = summary.get(key)
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, float(value), step)
        _, _, sei = hparams_summary(self._hparams, {tag: 0.0 for tag in HPARAM_METRICS})
        self.writer.file_writer.add_summary(sei)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
