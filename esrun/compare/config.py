"""Loading a compare config: YAML, dotted overrides (``estimators.2.num_samples=4`` indexes the list), validation.

The reading, the overrides and the one-line error messages are ``esrun.config.load``'s (the same as for
``esrun train``); errors are :class:`esrun.errors.ConfigError` (a UserError: the CLI prints it and exits 2).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from esrun.config.compare_schema import TASK_MODELS, CompareConfig
from esrun.config.load import apply_overrides, format_error, read_yaml
from esrun.errors import ConfigError


def validate(raw: dict) -> CompareConfig:
    """``raw`` (a dict as read from YAML) as a CompareConfig, or a one-line ConfigError."""
    task = raw.get("task")
    if isinstance(task, dict) and "type" not in task:
        raise ConfigError(f"task.type: required; one of {', '.join(TASK_MODELS)}")
    try:
        return CompareConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_error(err, raw, CompareConfig, TASK_MODELS, "bernoulli_toy")) from None


def load_compare_config(path: str | Path, overrides: Iterable[str] = ()) -> CompareConfig:
    return validate(apply_overrides(read_yaml(path), overrides))


def dump(cfg: CompareConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
