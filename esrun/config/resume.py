"""Which config keys may change when a run is resumed: those that cannot change its trajectory.

A resumed run must end with the ``params_sha256`` of an undisturbed run, so ``esrun train --resume RUN_DIR``
accepts overrides only of keys that no number of the trajectory depends on:

    budget.*                      when to stop (the generations done so far are the same)
    logging.*  except dir         what is written, and how often (checkpoint_every, keep_checkpoints, ...)
    backend.*  except chunk_size  where members are evaluated: the hash is the same on every backend and
                                  worker count (docs/backends.md); chunk_size is refused because episode
                                  seeds are derived per chunk, fold_in(key, chunk index)
    task.max_failed_generations   when a run whose environment keeps failing gives up

Every other key -- ``seed``, ``task.*``, ``policy.*``, ``strategy.*``, ``backend.chunk_size`` -- is refused,
and so are ``name`` and ``logging.dir``, which name the run directory (that is RUN_DIR on resume). A key not
listed above (a new section, a new field) is refused until it is listed: refusing is the safe default.
"""
from __future__ import annotations

from typing import Any

from esrun.config.schema import Config
from esrun.errors import ConfigError

NEUTRAL_SECTIONS = ("budget", "logging", "backend")
REFUSED_IN_NEUTRAL = {"logging.dir": "it names the run directory, which is RUN_DIR on resume",
                      "backend.chunk_size": "episode seeds are drawn per chunk, so it changes the trajectory"}
NEUTRAL_KEYS = {"task.max_failed_generations"}
ALLOWED = "only budget.*, logging.* (not dir), backend.* (not chunk_size) and task.max_failed_generations may"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (lists are values)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def is_neutral(key: str) -> bool:
    """Whether ``key`` (dotted) may differ between a run and its resumption."""
    if key in REFUSED_IN_NEUTRAL:
        return False
    return key in NEUTRAL_KEYS or key.split(".", 1)[0] in NEUTRAL_SECTIONS and "." in key


def check_resume(saved: Config, new: Config) -> None:
    """Raise a one-line :class:`ConfigError` naming the first key whose change would alter the trajectory."""
    a, b = flatten(saved.model_dump(mode="json")), flatten(new.model_dump(mode="json"))
    for key in sorted(set(a) | set(b), key=lambda k: (k != "task.type", k)):  # a new task type says the most
        if a.get(key) == b.get(key) or is_neutral(key):
            continue
        why = REFUSED_IN_NEUTRAL.get(key, "it changes the run's trajectory")
        raise ConfigError(f"--resume: {key} cannot change from {a.get(key)!r} to {b.get(key)!r} ({why}); "
                          f"{ALLOWED} change")
