"""YAML loading, dotted command-line overrides and validation into one-line errors.

``load_config(path, overrides)`` is the only way a run gets its configuration: it reads the YAML, applies
``section.key=value`` overrides (values parsed as YAML scalars / lists), validates with the schema and with the
registries (strategy names, objectives, environment ids), and raises :class:`ConfigError` with one line naming the
key, the value and what is allowed.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from esrun.config.schema import BraxTaskConfig, Config, GymTaskConfig, JaxEnvTaskConfig, SyntheticTaskConfig
from esrun.errors import ConfigError  # defined in errors (policies raise it too); esrun.config re-exports it


_TASK_MODELS = {"gym": GymTaskConfig, "jax_env": JaxEnvTaskConfig, "synthetic": SyntheticTaskConfig,
                "brax": BraxTaskConfig}


def _fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _suggest(name: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed: {', '.join(allowed)}"


def _model_at(loc: tuple, raw: dict) -> type[BaseModel] | None:
    """The pydantic model that owns the path ``loc`` (used to suggest keys)."""
    model: Any = Config
    for i, part in enumerate(loc):
        if model is None:
            return None
        if part == "task" and model is Config:
            ttype = (raw.get("task") or {}).get("type", "gym") if isinstance(raw.get("task"), dict) else "gym"
            model = _TASK_MODELS.get(ttype)
            continue
        if part in _TASK_MODELS and i > 0 and loc[i - 1] == "task":
            model = _TASK_MODELS[part]
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return model
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _lookup(raw: dict, loc: tuple) -> Any:
    cur: Any = raw
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
        else:
            return None
    return cur


def _format_error(err: ValidationError, raw: dict) -> str:
    e = err.errors()[0]
    # Drop the discriminator tag pydantic inserts into task paths ("task.gym.env_id" -> "task.env_id").
    loc = tuple(p for i, p in enumerate(e["loc"]) if not (i > 0 and e["loc"][i - 1] == "task" and p in _TASK_MODELS))
    key = ".".join(str(p) for p in loc) or "config"
    if e["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1], raw)
        allowed = _fields(owner) if owner is not None else []
        return f"unknown key '{key}'{_suggest(str(loc[-1]), allowed)}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    value = _lookup(raw, loc)
    if e["type"] == "union_tag_invalid":
        return f"task.type = {_lookup(raw, ('task', 'type'))!r}: must be one of {', '.join(_TASK_MODELS)}"
    return f"{key} = {value!r}: {msg.lower()}"


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


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        if len(path) == 1 and path[0] in SHORTHANDS and isinstance(value, str):
            path = [path[0], SHORTHANDS[path[0]]]
        cur = raw
        for part in path[:-1]:
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            cur = nxt
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
    task = raw.get("task")
    if isinstance(task, dict) and "type" not in task:
        raw = {**raw, "task": {"type": "gym", **task}}
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err, raw)) from None
    _check_registries(cfg)
    return cfg


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> Config:
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    return validate(raw)


def _check_registries(cfg: Config) -> None:
    from esrun.strategies import UnknownStrategyError, get_strategy
    from esrun.tasks import OBJECTIVES, env_exists

    try:
        get_strategy(cfg.strategy.name)
    except UnknownStrategyError as exc:
        raise ConfigError(str(exc)) from None
    task = cfg.task
    if task.type == "synthetic":
        if task.objective not in OBJECTIVES:
            raise ConfigError(f"task.objective = {task.objective!r}: unknown objective{_suggest(task.objective, OBJECTIVES)}")
    elif task.type == "brax":
        ok, known = env_exists(task.type, task.env_name)  # raises a one-line UserError without brax
        if not ok:
            raise ConfigError(f"task.env_name = {task.env_name!r}: no such Brax environment{_suggest(task.env_name, known)}")
    else:
        ok, known = env_exists(task.type, task.env_id)
        if not ok:
            close = difflib.get_close_matches(task.env_id, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            kind = "Gymnasium" if task.type == "gym" else "JAX-native (envs/)"
            raise ConfigError(f"task.env_id = {task.env_id!r}: no such {kind} environment{hint}")


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
