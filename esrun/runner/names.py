"""Names a config refers to, checked against the registries that define them.

The schema (:mod:`esrun.config`) checks types, ranges and keys and sits below every other layer, so it cannot know
which strategies, objectives or environments exist: those are registered by :mod:`esrun.strategies` and
:mod:`esrun.tasks`, two layers up (docs/design.md, "Layers"). This module, above both, adds that check; the
entry points that start work (the CLI, ``esrun.train``, ``esrun slurm submit``, ``esrun eval``) load configs
through :func:`load_config` / :func:`validate` here, so an unknown name is one line before anything runs.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from esrun.config import Config
from esrun.config import load as _load
from esrun.config.load import suggest
from esrun.errors import ConfigError
from esrun.strategies import UnknownStrategyError, get_strategy
from esrun.tasks import OBJECTIVES, env_exists


def check_names(cfg: Config) -> Config:
    """``cfg`` unchanged if ``strategy.name`` and the task's objective / environment are registered; else a
    one-line :class:`ConfigError` naming the closest registered name."""
    try:
        get_strategy(cfg.strategy.name)
    except UnknownStrategyError as exc:
        raise ConfigError(str(exc)) from None
    task = cfg.task
    if task.type == "synthetic":
        if task.objective not in OBJECTIVES:
            raise ConfigError(f"task.objective = {task.objective!r}: unknown objective"
                              f"{suggest(task.objective, OBJECTIVES)}")
    elif task.type == "brax":
        ok, known = env_exists(task.type, task.env_name)  # raises a one-line UserError without brax
        if not ok:
            raise ConfigError(f"task.env_name = {task.env_name!r}: no such Brax environment"
                              f"{suggest(task.env_name, known)}")
    else:
        ok, known = env_exists(task.type, task.env_id)
        if not ok:
            close = difflib.get_close_matches(task.env_id, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            kind = "Gymnasium" if task.type == "gym" else "JAX-native (envs/)"
            raise ConfigError(f"task.env_id = {task.env_id!r}: no such {kind} environment{hint}")
    return cfg


def validate(raw: dict) -> Config:
    """The schema's :func:`esrun.config.validate`, then :func:`check_names`."""
    return check_names(_load.validate(raw))


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> Config:
    """The schema's :func:`esrun.config.load_config`, then :func:`check_names`."""
    return check_names(_load.load_config(path, overrides))
