"""esrun: Evolution Strategies and every Monte Carlo gradient estimator, from a laptop to a cluster.

    import esrun
    result = esrun.train("configs/cartpole.yaml", "strategy.sigma=0.05")   # or a Config / dict
    result.summary["final_eval_return"]

Submodules are imported lazily so that ``from esrun import estimators`` does not load the runner.
"""
from __future__ import annotations

import os as _os
import sys as _sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from esrun.config import Config
    from esrun.runner import Result

__version__ = "0.1.0"

# Small jitted calls (a policy step for a few dozen members) are latency-bound: XLA's multi-threaded Eigen costs
# ~3x per call on a CPU (bench/eval_throughput.py). Applied only when JAX is not yet imported and the user set no
# XLA_FLAGS of their own; set ESRUN_XLA_DEFAULTS=0 to keep JAX's defaults.
# Only --flags belong here: XLA stops reading XLA_FLAGS at the first word that is not one, so a bare token would
# silently swallow every flag after it (an earlier "intra_op_parallelism_threads=1" did exactly that, and was
# itself never read by XLA).
XLA_DEFAULTS = "--xla_cpu_multi_thread_eigen=false"
if "jax" not in _sys.modules and "XLA_FLAGS" not in _os.environ and _os.environ.get("ESRUN_XLA_DEFAULTS", "1") != "0":
    _os.environ["XLA_FLAGS"] = XLA_DEFAULTS


def load_config(config: str | os.PathLike | dict | Config | None = None, *overrides: str) -> Config:
    """A validated Config from a path, a dict or a Config, with ``section.key=value`` overrides."""
    from pathlib import Path

    from esrun.config import Config
    from esrun.config.load import apply_overrides
    from esrun.runner.names import load_config as _load
    from esrun.runner.names import validate

    if isinstance(config, Config):
        raw = config.model_dump(mode="json")
        return validate(apply_overrides(raw, overrides))
    if isinstance(config, dict):
        return validate(apply_overrides(dict(config), overrides))
    return _load(Path(config) if config is not None else None, overrides)


def train(config: str | os.PathLike | dict | Config | None = None, *overrides: str,
          resume: str | os.PathLike | None = None, progress: bool | None = None,
          on_metrics: Callable[[dict], None] | None = None) -> Result:
    """Train from a config (path, dict or Config) and return an ``esrun.runner.Result``. ``on_metrics(dict)`` is
    called after every generation with its metrics (``esrun.runner.loop``)."""
    from pathlib import Path

    from esrun.runner import train as _train

    return _train(load_config(config, *overrides), resume=None if resume is None else Path(resume), progress=progress,
                  on_metrics=on_metrics)


def __getattr__(name):
    import importlib

    if name in {"estimators", "strategies", "policies", "tasks", "backends", "config", "runner", "compare"}:
        return importlib.import_module(f"esrun.{name}")
    raise AttributeError(name)
