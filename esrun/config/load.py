"""YAML loading, dotted command-line overrides and validation into one-line errors.

``load_config(path, overrides)`` is the only way a run gets its configuration: it reads the YAML, applies
``section.key=value`` overrides (values parsed as YAML scalars / lists), validates with the schema and with the
registries (strategy names, objectives, environment ids), and raises :class:`ConfigError` with one line naming the
key, the value and what is allowed.

``apply_overrides``, ``format_error`` (with ``model_at``, ``lookup``, ``suggest``) and ``read_yaml`` are public:
``esrun compare`` loads its own config (``esrun.compare.config``) with the same functions.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from esrun.config.schema import BraxTaskConfig, Config, GymTaskConfig, JaxEnvTaskConfig, SyntheticTaskConfig
from esrun.errors import ConfigError  # defined in errors (policies raise it too); esrun.config re-exports it

_TASK_MODELS: dict[str, type[BaseModel]] = {"gym": GymTaskConfig, "jax_env": JaxEnvTaskConfig,
                                             "synthetic": SyntheticTaskConfig, "brax": BraxTaskConfig}


def suggest(name: str, allowed: Iterable[str]) -> str:
    """`` (did you mean 'x'?); allowed: a, b, c`` -- the tail of an unknown-name message."""
    allowed = list(allowed)
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed: {', '.join(allowed)}"


def lookup(raw: dict, loc: tuple) -> Any:
    """The raw value at the path ``loc`` (str keys, int list indices), or None where the path does not exist."""
    cur: Any = raw
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
        else:
            return None
    return cur


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: the annotation itself, or the one model inside ``list[M]`` / ``Optional[M]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def model_at(loc: tuple, raw: dict, root: type[BaseModel], task_models: Mapping[str, type[BaseModel]],
             default_task: str) -> type[BaseModel] | None:
    """The pydantic model that owns the path ``loc`` under ``root`` (used to suggest keys). ``task`` resolves by
    the raw ``task.type`` (``default_task`` when unset) through ``task_models``; a list index keeps the item model."""
    model: Any = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        if model is root and part == "task":
            task = raw.get("task")
            model = task_models.get(task.get("type", default_task) if isinstance(task, dict) else default_task)
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return model
        model = _submodel(field.annotation)
    return model


def format_error(err: ValidationError, raw: dict, root: type[BaseModel], task_models: Mapping[str, type[BaseModel]],
                 default_task: str) -> str:
    """The first error of a validation of ``raw`` against ``root`` as one line: the dotted key, the value given and
    what is allowed (the closest known key for a misspelt one)."""
    e = err.errors()[0]
    # Drop the discriminator tag pydantic inserts into task paths ("task.gym.env_id" -> "task.env_id").
    loc = tuple(p for i, p in enumerate(e["loc"]) if not (i > 0 and e["loc"][i - 1] == "task" and p in task_models))
    key = ".".join(str(p) for p in loc) or "config"
    if e["type"] == "extra_forbidden":
        owner = model_at(loc[:-1], raw, root, task_models, default_task)
        allowed = list(owner.model_fields) if owner is not None else []
        return f"unknown key '{key}'{suggest(str(loc[-1]), allowed)}"
    if e["type"] == "union_tag_invalid":
        return f"task.type = {lookup(raw, ('task', 'type'))!r}: must be one of {', '.join(task_models)}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if e["type"] == "missing":
        return f"{key}: required"
    return f"{key} = {lookup(raw, loc)!r}: {msg.lower()}"


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, value = text.split("=", 1)
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        parsed = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


SHORTHANDS = {"backend": "type", "task": "type", "policy": "type", "strategy": "name"}
"""``backend=mpi`` means ``backend.type=mpi``; ``strategy=cma_es`` means ``strategy.name=cma_es``."""


def _index(text: str, part: str, items: list) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"override '{text}': '{part}' is not an index below {len(items)}")
    return int(part)


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """``a.b=v`` into nested dicts (missing sections are created); an integer part indexes a list
    (``estimators.0.label=x``); ``SHORTHANDS`` expand a bare section name. Returns ``raw``, changed in place."""
    for text in overrides:
        path, value = parse_override(text)
        if len(path) == 1 and path[0] in SHORTHANDS and isinstance(value, str):
            path = [path[0], SHORTHANDS[path[0]]]
        cur: Any = raw
        for part in path[:-1]:
            if isinstance(cur, list):
                cur = cur[_index(text, part, cur)]
                continue
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, (dict, list)):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            cur = nxt
        if isinstance(cur, list):
            cur[_index(text, path[-1], cur)] = value
        else:
            cur[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file '{path}' is not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections")
    return raw


def validate(raw: dict) -> Config:
    """A Config from a raw mapping: keys, types and ranges (one-line ConfigError). The names a config refers to
    (strategy, objective, environment) are checked a layer up, by :mod:`esrun.runner.names`."""
    task = raw.get("task")
    if isinstance(task, dict) and "type" not in task:
        raw = {**raw, "task": {"type": "gym", **task}}
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_error(err, raw, Config, _TASK_MODELS, "gym")) from None
    return cfg


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> Config:
    """:func:`validate` of the YAML file at ``path`` (or ``{}``) with ``section.key=value`` overrides applied."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    return validate(raw)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
