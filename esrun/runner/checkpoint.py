"""Checkpoints: the whole RunState as plain arrays plus JSON, never code; the last K kept, written atomically.

A checkpoint is ``RUN_DIR/checkpoints/gen_GGGGGG.ckpt.npz``, an uncompressed NumPy ``.npz`` (a zip archive of
``.npy`` members) holding

    meta.npy          uint8 [n]: UTF-8 JSON -- format, format_version, esrun_version, generation, the RunState
                      scalars, the config (YAML), and one entry per array leaf: member name, tree path, shape,
                      dtype, SHA-256 of its bytes
    leaf_00000.npy    the leaves of ``(state.strategy, state.obs_stats)`` in ``jax.tree_util`` order

Loading never unpickles: members are read with ``allow_pickle=False`` (object arrays are refused), and nothing
of the file decides the pytree's structure. The structure comes from ``reference``, a freshly initialized state of
the same config (``Replica(cfg).init_state()``); the file must match it leaf for leaf -- count, shape, dtype --
before any array is read (each member's ``.npy`` header is checked first, so a file cannot make esrun allocate
what it declares), and each array must match its SHA-256. A truncated or altered file fails the zip CRC or the
checksum and is refused with one line.

Writing: a temporary file in the same directory, fsync, ``os.replace``, fsync of the directory; then all but the
newest ``keep`` checkpoints (and any of a later generation than the one written: the remains of a run that was
resumed from an older checkpoint) are removed. A failed write (full disk) removes its temporary file, leaves
the existing checkpoints untouched and raises :class:`CheckpointWriteError`.

``load`` takes the newest checkpoint that reads back intact and reports each newer one it skipped and why.
Checkpoints of esrun <= 0.1.0 (``latest.ckpt``, a pickle behind ``ESRUN-CKPT 1``) are refused as the old format.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from esrun.errors import UserError

if TYPE_CHECKING:
    from esrun.runner.replica import RunState

FORMAT = "esrun-checkpoint"
FORMAT_VERSION = 2
OLD_MAGIC = b"ESRUN-CKPT 1\n"
OLD_NAME = "latest.ckpt"
PATTERN = re.compile(r"^gen_(\d{6,})\.ckpt\.npz$")
META = "meta.npy"
MAX_META_BYTES = 64 << 20  # the config plus a few lines per leaf; anything larger is not ours
SCALARS = {"generation": "int", "env_steps": "int", "evaluations": "int", "nonfinite": "int", "best_fitness": "float",
           "eval_return": "float or None", "eval_generation": "int", "wall_seconds": "float"}
"""The RunState fields stored in the JSON metadata, and their kinds."""


class CheckpointError(UserError, RuntimeError):
    """A missing, corrupt, foreign or old-format checkpoint; the message is one line for the console."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (full disk, permissions); the previous checkpoints are intact."""


def checkpoint_name(generation: int) -> str:
    return f"gen_{generation:06d}.ckpt.npz"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoint files, newest generation first."""
    d = Path(run_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in d.glob("gen_*.ckpt.npz") if (m := PATTERN.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


# -- writing -----------------------------------------------------------------------------------------------------
def _leaves(state) -> list:
    return jax.tree_util.tree_flatten_with_path((state.strategy, state.obs_stats))[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(state, config_yaml: str) -> tuple[list[tuple[str, np.ndarray]], bytes]:
    arrays, entries = [], []
    for i, (path, leaf) in enumerate(_leaves(state)):
        arr = np.asarray(leaf, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        name = f"leaf_{i:05d}"
        arrays.append((name, arr))
        entries.append({"name": name, "path": jax.tree_util.keystr(path), "shape": list(arr.shape),
                        "dtype": arr.dtype.str, "sha256": hashlib.sha256(arr.tobytes()).hexdigest()})
    from esrun import __version__

    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "esrun_version": __version__,
            "scalars": {k: getattr(state, k) for k in SCALARS}, "leaves": entries, "config": config_yaml}
    return arrays, json.dumps(meta, sort_keys=True).encode()


def save(run_dir: Path, state: RunState, config_yaml: str, keep: int = 3) -> Path:
    """Write ``state`` as ``checkpoints/gen_<generation>.ckpt.npz`` atomically and keep the newest ``keep``."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    path = ckpt_dir / checkpoint_name(int(state.generation))
    tmp = ckpt_dir / f".{path.name}.{os.getpid()}.tmp"
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".gen_*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        arrays, meta = _encode(state, config_yaml)
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
                for name, arr in [("meta", np.frombuffer(meta, np.uint8)), *arrays]:
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(ckpt_dir)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise CheckpointWriteError(f"cannot write checkpoint '{path}': {exc.strerror or exc}") from None
    _prune(ckpt_dir, int(state.generation), keep)
    return path


def _prune(ckpt_dir: Path, generation: int, keep: int) -> None:
    kept = 0
    for p in list_checkpoints(ckpt_dir.parent):
        m = PATTERN.match(p.name)
        assert m is not None  # list_checkpoints lists only names PATTERN matches
        g = int(m.group(1))
        if g <= generation and kept < keep:
            kept += 1
            continue
        try:
            p.unlink()
        except OSError:  # pruning is housekeeping: a file we cannot remove now goes next time
            pass


# -- reading -----------------------------------------------------------------------------------------------------
def _read_member(zf: zipfile.ZipFile, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An ``.npy`` member, after checking its header declares ``shape`` and ``dtype`` (no pickle, ever)."""
    with zf.open(name) as fh:
        version = np.lib.format.read_magic(fh)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        got_shape, _, got_dtype = header(fh)
    if tuple(got_shape) != tuple(shape) or got_dtype != dtype:
        raise CheckpointError(f"member {name} holds {got_dtype.str}{list(got_shape)}, "
                              f"expected {dtype.str}{list(shape)}")
    with zf.open(name) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _read_meta(zf: zipfile.ZipFile) -> dict:
    try:
        info = zf.getinfo(META)
    except KeyError:
        raise CheckpointError("no meta.npy member: not an esrun checkpoint") from None
    if info.file_size > MAX_META_BYTES:
        raise CheckpointError("meta.npy is too large")
    with zf.open(META) as fh:
        version = np.lib.format.read_magic(fh)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(fh)
    if dtype != np.uint8 or len(shape) != 1:
        raise CheckpointError("meta.npy is not a byte string")
    meta = json.loads(_read_member(zf, META, shape, np.dtype(np.uint8)).tobytes().decode())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("not an esrun checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"format version {meta.get('format_version')!r} is not supported (this esrun reads "
                              f"version {FORMAT_VERSION}; written by esrun {meta.get('esrun_version', '?')})")
    return meta


def _check_scalars(values: Any) -> dict:
    if not isinstance(values, dict) or set(values) != set(SCALARS):
        raise CheckpointError("its run counters are missing or unexpected")
    for key, kind in SCALARS.items():
        v = values[key]
        ok = (v is None and kind == "float or None") or (
            isinstance(v, (int, float)) and not isinstance(v, bool) and (kind != "int" or isinstance(v, int)))
        if not ok or (kind == "int" and v < (-1 if key == "eval_generation" else 0)):
            raise CheckpointError(f"run counter {key} = {v!r} is invalid")
    return {k: (None if v is None else (int(v) if SCALARS[k] == "int" else float(v))) for k, v in values.items()}


def _like(ref, arr: np.ndarray):
    """A loaded array in the container type of the reference leaf (JAX array, NumPy array, Python scalar)."""
    if isinstance(ref, jax.Array):
        import jax.numpy as jnp

        return jnp.asarray(arr)
    if isinstance(ref, (bool, int, float)):
        return type(ref)(arr.item())
    return arr


def read(path: Path, reference: RunState) -> RunState:
    """The RunState stored in ``path``, validated against ``reference`` (same config, freshly initialized)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(OLD_MAGIC))
        if head == OLD_MAGIC:
            raise CheckpointError(f"checkpoint '{path}' is in the old format (ESRUN-CKPT 1, a pickle), which this "
                                  "esrun refuses to load because loading it can run code; start the run again")
        if not head.startswith(b"PK\x03\x04"):
            raise CheckpointError("not an esrun checkpoint (not an .npz archive)")
        ref_leaves, treedef = jax.tree_util.tree_flatten((reference.strategy, reference.obs_stats))
        with zipfile.ZipFile(path) as zf:
            meta = _read_meta(zf)
            entries = meta.get("leaves")
            if not isinstance(entries, list) or len(entries) != len(ref_leaves):
                n = len(entries) if isinstance(entries, list) else "no"
                raise CheckpointError(f"it holds {n} arrays, this config's state has {len(ref_leaves)}")
            expected = {e.get("name") for e in entries if isinstance(e, dict)}
            if set(zf.namelist()) != {META} | {f"{n}.npy" for n in expected if isinstance(n, str)}:
                raise CheckpointError("its members do not match its index")
            leaves = []
            for i, (entry, ref) in enumerate(zip(entries, ref_leaves)):
                want = np.asarray(ref)
                shape, dtype = tuple(entry.get("shape", ())), np.dtype(want.dtype)
                where = f"array {i} {entry.get('path', '')}".rstrip()
                if shape != want.shape or entry.get("dtype") != dtype.str:
                    raise CheckpointError(f"{where} is {entry.get('dtype')}{list(shape)}, this config's state "
                                          f"needs {dtype.str}{list(want.shape)}")
                arr = _read_member(zf, f"{entry['name']}.npy", shape, dtype)
                if hashlib.sha256(np.asarray(arr, order="C").tobytes()).hexdigest() != entry.get("sha256"):
                    raise CheckpointError(f"{where}: checksum does not match (altered)")
                leaves.append(_like(ref, arr))
            scalars = _check_scalars(meta.get("scalars"))
    except CheckpointError as exc:
        msg = str(exc)
        raise CheckpointError(msg if msg.startswith("checkpoint '") else f"checkpoint '{path}' is refused: {msg}") \
            from None
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError, AttributeError,
            UnicodeDecodeError, NotImplementedError, OverflowError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint '{path}' is corrupt (truncated or altered): {detail}") from None
    strategy, obs_stats = jax.tree_util.tree_unflatten(treedef, leaves)
    return reference._replace(strategy=strategy, obs_stats=obs_stats, **scalars)


def load(run_dir: Path, reference: RunState, warn: Callable[[str], None] | None = None
         ) -> tuple[RunState, Path]:
    """``(state, path)`` of the newest intact checkpoint of ``run_dir``; ``warn`` hears of each one skipped."""
    run_dir = Path(run_dir)
    candidates = list_checkpoints(run_dir)
    old = run_dir / "checkpoints" / OLD_NAME
    if not candidates:
        if old.is_file():
            read(old, reference)  # refuses, saying which format it is
        raise CheckpointError(f"no checkpoint in '{run_dir / 'checkpoints'}' (is '{run_dir}' a run directory?)")
    errors = []
    for path in candidates:
        try:
            state = read(path, reference)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        for msg in errors:
            if warn is not None:
                warn(f"skipped: {msg}")
        return state, path
    if len(errors) == 1:
        raise CheckpointError(errors[0])
    raise CheckpointError(f"no intact checkpoint in '{run_dir / 'checkpoints'}': " + "; ".join(errors))


def latest_generation(run_dir: Path) -> int | None:
    """The generation of the newest checkpoint whose metadata reads back (no arrays are loaded), or None."""
    for path in list_checkpoints(run_dir):
        try:
            with zipfile.ZipFile(path) as zf:
                return int(_read_meta(zf)["scalars"]["generation"])
        except Exception:  # noqa: BLE001 - status reporting must not fail on a half-written or foreign file
            continue
    return None
