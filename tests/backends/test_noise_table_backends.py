"""Table noise (issue 13) across processes: the same params_sha256 on local / Ray x2 / MPI x2, and one table per
host mapped by every Ray actor and MPI rank (same file and inode; total PSS of the mapping about one table while
the total RSS counts it once per process)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from esrun_helpers import processes, read_summary
from esrun_helpers.backends import start_cli

pytestmark = pytest.mark.timeout(600)

TABLE = 2**20  # 4 MiB


def _sphere(dim: int, tmp: Path, name: str, *extra: str) -> list[str]:
    return ["train", "configs/sphere.yaml", "task.type=synthetic", f"task.dim={dim}", "strategy.population=16",
            "backend.chunk_size=4", "backend.hash_every=1", "budget.target_return=null", "logging.progress=false",
            "logging.tensorboard=false", "strategy.noise=table", f"strategy.noise_table_size={TABLE}",
            f"logging.dir={tmp}", f"name={name}", "--quiet", *extra]


def _finish(proc, timeout: float = 300) -> None:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]


def test_table_mode_same_params_on_local_ray_and_mpi(tmp_path, monkeypatch):
    monkeypatch.setenv("ESRUN_NOISE_DIR", str(tmp_path))  # a private directory: this test's table only
    runs = {
        "local": start_cli(_sphere(2000, tmp_path, "local", "budget.generations=4")),
        "ray": start_cli(_sphere(2000, tmp_path, "ray", "budget.generations=4", "backend.type=ray",
                                 "backend.workers=2")),
        "mpi": start_cli(_sphere(2000, tmp_path, "mpi", "budget.generations=4", "backend.type=mpi"), mpi_ranks=2),
    }
    for proc in runs.values():
        _finish(proc)
    summaries = {k: read_summary(tmp_path / k) for k in runs}
    assert {k: (s["backend"], s["workers"], s["generations"]) for k, s in summaries.items()} == {
        "local": ("local", 1, 4), "ray": ("ray", 2, 4), "mpi": ("mpi", 2, 4)}
    assert len({s["params_sha256"] for s in summaries.values()}) == 1, summaries
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("esrun-noise")], "the last user removes the table"


def _mappers(path: str) -> dict[int, dict]:
    """pid -> {inode, rss_kib, pss_kib} of every process that maps ``path`` (from /proc/PID/smaps)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = Path(f"/proc/{pid}/smaps").read_text()
        except OSError:
            continue
        if path not in text:
            continue
        info, inside = {"rss_kib": 0, "pss_kib": 0}, False
        for line in text.splitlines():
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and ":" in head[3]:  # a mapping's header line
                inside = line.endswith(" " + path)
                if inside:
                    info["inode"] = int(head[4])
            elif inside and head[0] in ("Rss:", "Pss:"):
                info["rss_kib" if head[0] == "Rss:" else "pss_kib"] += int(head[1])
        found[int(pid)] = info
    return found


def _frozen_mappers(path: str, pids) -> dict[int, dict]:
    """:func:`_mappers` read while ``pids`` are stopped (SIGSTOP). A page's PSS share is its size over the number
    of processes mapping it at the moment its process is read; processes still touching pages between two reads
    make the shares of one snapshot add up to more than the pages (a run with three xdist workers saw 4,893 KiB
    for a 4,096 KiB table)."""
    stopped: list[int] = []
    try:
        found, todo = {}, set(pids)
        for _ in range(5):  # a process that began to map the table meanwhile is stopped too, and all read again
            stopped += processes.stop(todo)
            found = _mappers(path)
            todo = set(found) - set(stopped)
            if not todo:
                break
        return found
    finally:
        processes.cont(stopped)


def test_one_table_per_host_mapped_by_every_ray_actor_and_mpi_rank(tmp_path, monkeypatch):
    """A Ray run (coordinator + 2 actors) and an MPI run (2 ranks) with the same seed and table size share one file:
    every process maps the same inode, and the sum of their PSS for it is about one table (the pages exist once)."""
    monkeypatch.setenv("ESRUN_NOISE_DIR", str(tmp_path))
    dim = TABLE // 2  # every slice covers half the table: each process soon touches most of it
    # Ended by SIGINT below; the wall budget only bounds a run orphaned by a killed test, and outlasts the 300 s wait
    long = ("budget.generations=100000", "budget.wall_seconds=540")
    # Ray first: its node must register within Ray's fixed 30 s, which a busy machine can miss while two MPI ranks
    # import JAX beside it; the MPI run starts once the coordinator and both actors map the table.
    ray = start_cli(_sphere(dim, tmp_path, "ray", *long, "backend.type=ray", "backend.workers=2"))
    mpi = None
    try:
        deadline, seen = time.time() + 300, {}
        path = None
        while time.time() < deadline:
            tables = [p for p in tmp_path.iterdir() if p.name.startswith("esrun-noise") and ".tmp" not in p.name]
            if tables:
                path = str(tables[0])
                seen = _mappers(path)
                if mpi is None and len(seen) >= 3:
                    mpi = start_cli(_sphere(dim, tmp_path, "mpi", *long, "backend.type=mpi"), mpi_ranks=2)
                if len(seen) >= 5 and sum(m["rss_kib"] for m in seen.values()) > 2 * TABLE * 4 / 1024:
                    break
            for proc in (ray, mpi):
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"a run ended before every process mapped the table: {proc.stderr.read()}")
            time.sleep(1.0)
        assert path is not None and len(seen) >= 5, seen
        seen = _frozen_mappers(path, seen)
        assert len(tables) == 1, tables  # one file for both runs: built once on this host
        assert {m["inode"] for m in seen.values()} == {os.stat(path).st_ino}
        rss = sum(m["rss_kib"] for m in seen.values())
        pss = sum(m["pss_kib"] for m in seen.values())
        table_kib = TABLE * 4 / 1024
        print(f"{len(seen)} processes map {path}: total RSS {rss} KiB, total PSS {pss} KiB, table {table_kib:.0f} KiB")
        assert rss > 2 * table_kib  # counted in every process's RSS ...
        assert pss <= table_kib * 1.01  # ... but held once: the proportional shares add up to at most one table
    finally:
        # Stop by pid: the Ray coordinator and each MPI rank finish the generation in flight and exit (SIGINT).
        for pid in [ray.pid, *_ranks_of(tmp_path)]:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        for proc in (ray, mpi):
            if proc is None:
                continue
            try:
                proc.communicate(timeout=120)
            finally:
                proc.kill()


def _ranks_of(run_dir: Path) -> list[int]:
    """Pids of the esrun MPI ranks whose command line names ``run_dir`` (not mpiexec or its proxy)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"logging.dir={run_dir}".encode() in args and b"backend.type=mpi" in args and b"PMI_RANK=" in env:
            pids.append(int(pid))
    return pids
