"""The shared noise table: built once per host in OS shared memory, mapped read-only by every process on it.

    key   = fold_in(PRNGKey(seed), 4)                               (the run seed's table key; evaluator.py)
    name  = esrun-noise-v{esrun version}-{key hex}-{T}-f32           in $ESRUN_NOISE_DIR, default /dev/shm
    block b of 2^22 floats = PCG64(SeedSequence([key0, key1, b])).standard_normal(float32)   (numpy ziggurat)

Every process of a run (the coordinator, each Ray actor, each MPI rank) builds its replica from the config and
calls :func:`open_table`. The first process on the host to arrive takes an ``flock`` on the directory, writes the
table to a temporary file (``posix_fallocate`` first, so a full tmpfs is an error and not a SIGBUS), fills it with
``os.cpu_count()`` threads and renames it into place; the others find the finished file (rename is atomic, a
partial table is never visible) and map it. The pages live once in the host's page cache / tmpfs and are shared
by every mapping, so a process's RSS counts the table but the host holds it once (PSS splits it between the
mappers). Nothing of it crosses the network: each host builds its own, bitwise identical for the same esrun and
numpy versions (integer PCG64 and a float32 ziggurat — no transcendental functions of the platform libm on the
fast path, no XLA).

Lifetime: every mapping process holds a shared ``flock`` on the file; at exit a process that can upgrade to an
exclusive lock is the last user and removes the file. A process killed with SIGKILL (or a Ray actor torn down
with its cluster) leaves the file behind: the next run with the same seed and size reuses it, and its last
process removes it. Removing ``$ESRUN_NOISE_DIR/esrun-noise-*`` by hand is always safe: running processes keep
their mapping, new ones rebuild the (identical) table.
"""
from __future__ import annotations

import atexit
import fcntl
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from esrun.errors import UserError

if TYPE_CHECKING:
    import jax

    from esrun.strategies.noise import TableNoise

BLOCK = 2**22  # floats per independently seeded block (16 MiB): the unit of the parallel fill
DIR_ENV = "ESRUN_NOISE_DIR"
DEFAULT_DIR = "/dev/shm"


@dataclass(frozen=True)
class SharedTable:
    """A mapped table: ``array`` [T] float32 (read-only view of the mapping), its file path and inode."""

    array: np.ndarray
    path: str
    inode: int
    built_here: bool  # this process filled it (False: mapped a table another process built)


_OPEN: dict[str, SharedTable] = {}  # path -> table mapped by this process (one mapping per process)


def table_dir() -> str:
    return os.environ.get(DIR_ENV, DEFAULT_DIR)


def segment_name(key: tuple[int, int], size: int) -> str:
    from esrun import __version__

    return f"esrun-noise-v{__version__}-{key[0]:08x}{key[1]:08x}-{size}-f32"


def fill(out: np.ndarray, key: tuple[int, int], start_block: int = 0) -> None:
    """Write N(0, 1) float32 into ``out`` block by block: block b from PCG64(SeedSequence([key0, key1, b]))."""
    n = out.shape[0]

    def one(b: int) -> None:
        lo = b * BLOCK
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([key[0], key[1], start_block + b])))
        rng.standard_normal(out=out[lo:min(lo + BLOCK, n)], dtype=np.float32)

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(-(-n // BLOCK))))


def _build(path: str, key: tuple[int, int], size: int) -> None:
    nbytes = size * 4
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as exc:
            free = os.statvfs(os.path.dirname(path))
            raise UserError(
                f"strategy.noise=table: cannot reserve {nbytes / 2**20:.0f} MiB in {os.path.dirname(path)} "
                f"({exc.strerror}; {free.f_bavail * free.f_frsize / 2**20:.0f} MiB free): lower "
                f"strategy.noise_table_size or set {DIR_ENV} to a larger tmpfs") from None
        with mmap.mmap(fd, nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            arr = np.frombuffer(mm, np.float32)
            fill(arr, key)
            del arr
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        os.close(fd)


def _release(path: str, fd: int, inode: int) -> None:
    """At exit: the last process holding the table (exclusive lock granted) removes it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another process still maps it; it (or a later run) removes it
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def open_table(key: tuple[int, int], size: int) -> SharedTable:
    """Map the host's table for ``(key, size)``, building it first if no process on this host has."""
    directory = table_dir()
    path = os.path.join(directory, segment_name(key, size))
    if path in _OPEN:
        return _OPEN[path]
    if not os.path.isdir(directory):
        raise UserError(f"strategy.noise=table: {directory} is not a directory (set {DIR_ENV} to a tmpfs)")
    built = False
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            lock = os.open(directory, os.O_RDONLY)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per host; the others wait, then map its table
                if not os.path.exists(path):
                    _build(path, key, size)
                    built = True
            finally:
                os.close(lock)  # closing the descriptor releases the lock
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)
        st = os.fstat(fd)
        if st.st_nlink == 0:  # removed by its last user between our open and our lock: open the new one
            os.close(fd)
            continue
        if st.st_size != size * 4:
            os.close(fd)
            raise UserError(f"noise table {path} has {st.st_size} bytes, expected {size * 4}: remove it")
        break
    mm = mmap.mmap(fd, size * 4, mmap.MAP_SHARED, mmap.PROT_READ)
    table = SharedTable(np.frombuffer(mm, np.float32), path, st.st_ino, built)
    _OPEN[path] = table
    atexit.register(_release, path, fd, st.st_ino)
    return table


def table_key(root: jax.Array) -> tuple[int, int]:
    """The run's table key ``fold_in(root, 4)`` as two Python ints (root = PRNGKey(seed))."""
    import jax

    k = np.asarray(jax.random.fold_in(root, 4), np.uint32).reshape(-1)
    return int(k[0]), int(k[1])


def table_source(root: jax.Array, size: int, num_params: int) -> tuple[TableNoise, SharedTable]:
    """TableNoise over the host's shared table; the jax array aliases the mapping (no per-process copy)."""
    import jax

    from esrun.strategies.noise import TableNoise

    if size < num_params:
        raise UserError(table_too_small(size, num_params))
    shared = open_table(table_key(root), size)
    return TableNoise(jax.device_put(shared.array)), shared


def table_too_small(size: int, num_params: int) -> str:
    return (f"strategy.noise_table_size = {size} is smaller than the policy's {num_params} parameters: "
            f"a noise vector is one slice of the table (use >= {num_params}, e.g. 2**26)")


def aliases(source: TableNoise, shared: SharedTable) -> bool:
    """Whether the jax array of ``source`` is the shared mapping itself (XLA:CPU zero-copy) and not a copy."""
    try:
        return source.table.unsafe_buffer_pointer() == shared.array.ctypes.data
    except Exception:  # noqa: BLE001 - a backend without raw pointers (GPU): the table was copied to the device
        return False
