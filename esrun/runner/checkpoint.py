"""Checkpoints: the whole RunState, written atomically (temp file + rename) and verified on load.

File layout: ``b"ESRUN-CKPT 1\n"``, then the SHA-256 of the payload in hex and a newline, then the pickled
payload ``{"state": RunState with numpy leaves, "config": resolved YAML}``. A truncated or altered file fails the
hash check and is reported as corrupt, never half-loaded.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import jax
import numpy as np

from esrun.errors import UserError

MAGIC = b"ESRUN-CKPT 1\n"
LATEST = "latest.ckpt"


class CheckpointError(UserError, RuntimeError):
    """A missing or corrupt checkpoint; the message is one line for the console."""


def _to_numpy(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, tree)


def save(run_dir: Path, state, config_yaml: str) -> Path:
    ckpt_dir = Path(run_dir) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps({"state": _to_numpy(state), "config": config_yaml}, protocol=pickle.HIGHEST_PROTOCOL)
    blob = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    path = ckpt_dir / LATEST
    tmp = ckpt_dir / f".{LATEST}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def load(run_dir: Path):
    path = Path(run_dir) / "checkpoints" / LATEST
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at '{path}' (is '{run_dir}' a run directory?)")
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise CheckpointError(f"checkpoint '{path}' is corrupt: not an esrun checkpoint")
    rest = blob[len(MAGIC):]
    digest, _, payload = rest.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(f"checkpoint '{path}' is corrupt: its checksum does not match (truncated or altered)")
    try:
        data = pickle.loads(payload)
        return data["state"], data["config"]
    except Exception as exc:  # noqa: BLE001 - any failure here means an unreadable file
        raise CheckpointError(f"checkpoint '{path}' is corrupt: {type(exc).__name__}") from None
