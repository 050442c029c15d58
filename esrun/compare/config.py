"""Loading a compare config: YAML, dotted overrides (``estimators.2.num_samples=4`` indexes the list), validation.

Reuses ``esrun.config.load`` for reading YAML, parsing ``key=value`` and suggesting keys; errors are one-line
:class:`esrun.config.load.ConfigError` (a UserError: the CLI prints it and exits 2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from esrun.compare.schema import TASK_MODELS, CompareConfig, EstimatorEntry
from esrun.config.load import ConfigError, _lookup, _suggest, parse_override, read_yaml


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """``a.b=v`` into nested dicts; an integer part indexes a list (``estimators.0.label=x``)."""
    for text in overrides:
        path, value = parse_override(text)
        cur: Any = raw
        for part in path[:-1]:
            if isinstance(cur, list):
                if not part.isdigit() or int(part) >= len(cur):
                    raise ConfigError(f"override '{text}': '{part}' is not an index below {len(cur)}")
                cur = cur[int(part)]
                continue
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, (dict, list)):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            cur = nxt
        last = path[-1]
        if isinstance(cur, list):
            if not last.isdigit() or int(last) >= len(cur):
                raise ConfigError(f"override '{text}': '{last}' is not an index below {len(cur)}")
            cur[int(last)] = value
        else:
            cur[last] = value
    return raw


def _model_at(loc: tuple, raw: dict) -> type[BaseModel] | None:
    model: Any = CompareConfig
    for i, part in enumerate(loc):
        if model is CompareConfig and part == "task":
            task = raw.get("task") if isinstance(raw.get("task"), dict) else {}
            model = TASK_MODELS.get(task.get("type", "bernoulli_toy"))
            continue
        if part in TASK_MODELS and i > 0 and loc[i - 1] == "task":
            continue
        if model is CompareConfig and part == "estimators":
            model = EstimatorEntry
            continue
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return model
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return None
    return model


def _format_error(err: ValidationError, raw: dict) -> str:
    e = err.errors()[0]
    loc = tuple(p for i, p in enumerate(e["loc"]) if not (i > 0 and e["loc"][i - 1] == "task" and p in TASK_MODELS))
    key = ".".join(str(p) for p in loc) or "config"
    if e["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1], raw)
        allowed = list(owner.model_fields) if owner is not None else []
        return f"unknown key '{key}'{_suggest(str(loc[-1]), allowed)}"
    if e["type"] == "union_tag_invalid":
        return f"task.type = {_lookup(raw, ('task', 'type'))!r}: must be one of {', '.join(TASK_MODELS)}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if e["type"] == "missing":
        return f"{key}: required"
    return f"{key} = {_lookup(raw, loc)!r}: {msg.lower()}"


def validate(raw: dict) -> CompareConfig:
    task = raw.get("task")
    if isinstance(task, dict) and "type" not in task:
        raise ConfigError(f"task.type: required; one of {', '.join(TASK_MODELS)}")
    try:
        return CompareConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err, raw)) from None


def load_compare_config(path: str | Path, overrides: Iterable[str] = ()) -> CompareConfig:
    return validate(apply_overrides(read_yaml(path), overrides))


def dump(cfg: CompareConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
