"""A real single-node SLURM cluster for the tests: slurm.conf in a temp dir, daemons stopped by PID; and the
helpers of the SLURM tests (the `esrun` command line, a short CartPole run, reading submitted jobs back).

Debian's ``slurmctld`` / ``slurmd`` (installed by scripts/install_slurm.sh) run as the current user (root in CI) with
``auth/none`` and ``cred/none``; every port is a free one on 127.0.0.1 and all state lives under ``root``, so nothing
outside the temp dir is touched and several test sessions cannot see each other.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from esrun.runner import checkpoint

from esrun_helpers import ROOT, free_port, processes

PARTITION = "esrun"

#: A requeued job may start again this many seconds after it is PENDING (SLURM's own hold is two minutes). Not at
#: once: slurmd refuses to launch a job it is still tearing down ("already killed"). The test cluster's schedulers
#: run every second (SchedulerParameters below; SLURM's defaults, 60 s and 30 s, left a released job waiting for
#: the next pass).
REQUEUE_DELAY_S = 3


class ClusterError(RuntimeError):
    """SLURM could not be started; the message says why (the tests fail with it, never skip)."""


def _real_memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


SLURM_CONF = """\
ClusterName=esruntest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=30
KillWait=60
InactiveLimit=0
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Cluster:
    """A running single-node cluster; ``env`` holds SLURM_CONF for every client command."""

    root: Path
    conf: Path
    cpus: int
    partition: str = PARTITION
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def logs(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.root / name
            if p.exists():
                out.append(f"--- {name} (tail) ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)

    def stop(self) -> None:
        """Stop both daemons by the PIDs we started (SIGTERM, then SIGKILL after 15 s)."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()


def start_cluster(root: Path, timeout: float = 60.0) -> Cluster:
    """Write slurm.conf under ``root``, start slurmctld then slurmd, and wait until the node is idle."""
    for exe in ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo"):
        if shutil.which(exe) is None:
            raise ClusterError(f"{exe} not found on PATH: run scripts/install_slurm.sh")
    root.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    (root / "spool").mkdir(exist_ok=True)
    cpus = os.cpu_count() or 1
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            ctld_port=free_port(),
            slurmd_port=free_port(),
            user=getpass.getuser(),
            root=root,
            cpus=cpus,
            mem_mb=_real_memory_mb(),
            partition=PARTITION,
        )
    )
    cluster = Cluster(root=root, conf=conf, cpus=cpus)
    env = cluster.env
    try:
        # -D: stay in the foreground so the Popen PID is the daemon's; -i: ignore stale state.
        cluster.procs.append(
            subprocess.Popen(["slurmctld", "-D", "-i"], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(root / "slurmctld.stderr", "w"))
        )
        _wait(lambda: cluster.run("scontrol", "ping", check=False).stdout.count("UP") > 0, timeout,
              "slurmctld did not answer scontrol ping", cluster)
        cluster.procs.append(
            subprocess.Popen(["slurmd", "-D", "-N", "localhost"], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(root / "slurmd.stderr", "w"))
        )
        _wait(lambda: _node_state(cluster) in {"idle", "mixed", "allocated"}, timeout,
              "node localhost did not become idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _node_state(cluster: Cluster) -> str:
    r = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False)
    return r.stdout.strip().rstrip("*~#!%$@^-")


def _wait(pred, timeout: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in cluster.procs:
            if proc.poll() is not None:
                raise ClusterError(f"{proc.args[0]} exited with {proc.returncode}\n{_stderr(cluster)}{cluster.logs()}")
        if pred():
            return
        time.sleep(0.5)
    raise ClusterError(f"{what} within {timeout:.0f} s\n{_stderr(cluster)}{cluster.logs()}")


def _stderr(cluster: Cluster) -> str:
    out = []
    for name in ("slurmctld.stderr", "slurmd.stderr"):
        p = cluster.root / name
        if p.exists() and p.read_text().strip():
            out.append(f"--- {name} ---\n{p.read_text()}")
    return "\n".join(out) + ("\n" if out else "")


TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def job_fields(cluster: Cluster, job_id: str) -> list[dict[str, str]]:
    """``scontrol -o show job`` as one dict per job (array: per task); [] once SLURM has forgotten the job ("Invalid
    job id"). Any other failure (slurmctld busy: a socket timeout) is tried again, then raised: read as "forgotten",
    it would end a wait while the job still runs."""
    for _ in range(5):
        r = cluster.run("scontrol", "-o", "show", "job", job_id, check=False)
        if r.returncode == 0:
            break
        if "Invalid job id" in r.stderr:
            return []
        time.sleep(1.0)
    else:
        raise AssertionError(f"scontrol show job {job_id} failed 5 times: {r.stderr.strip()}\n{cluster.logs()}")
    return [dict(t.split("=", 1) for t in line.split() if "=" in t) for line in r.stdout.splitlines() if line.strip()]


def wait_job(cluster: Cluster, job_id: str, timeout: float = 300.0) -> list[str]:
    """Wait until every task of ``job_id`` is in a final state (a requeued job is not); return the states."""
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        jobs = job_fields(cluster, job_id)
        states = [j.get("JobState", "?") for j in jobs]
        if not jobs or all(s in TERMINAL for s in states):
            return states
        time.sleep(1.0)
    raise TimeoutError(f"job {job_id} still {states} after {timeout:.0f} s\n{cluster.logs()}")


REPO = ROOT
CARTPOLE = REPO / "configs" / "cartpole.yaml"
ESRUN = str(Path(sys.executable).parent / "esrun")

#: A short CartPole run: a few generations of a small population, no early stop, a checkpoint every generation.
FAST = (
    "budget.generations=3", "budget.target_return=null", "strategy.population=32", "backend.chunk_size=16",
    "task.eval_episodes=2", "logging.progress=false", "logging.checkpoint_every=1",
)


def esrun(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `esrun` console script of this venv."""
    return subprocess.run([ESRUN, *args], cwd=cwd, env=env or os.environ.copy(), capture_output=True, text=True,
                          timeout=timeout)


def parse_submit(stdout: str) -> tuple[str, list[Path]]:
    m = re.search(r"^submitted job (\d+)$", stdout, re.M)
    assert m, f"no job id in: {stdout!r}"
    run_dirs = [Path(p) for p in re.findall(r"^run directory: (.+)$", stdout, re.M)]
    assert run_dirs, f"no run directory in: {stdout!r}"
    return m.group(1), run_dirs


def summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    assert path.is_file(), f"{path} missing; job output:\n{job_output(run_dir)}"
    return json.loads(path.read_text())


def job_output(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(run_dir.glob("slurm-*.out")))


def job_pids(cluster: Cluster, job: str) -> list[int]:
    """The PIDs of every process of the job (``scontrol listpids``: the batch shell, the run, its ranks)."""
    r = cluster.run("scontrol", "listpids", job, check=False)
    assert r.returncode == 0, r.stderr
    first_words = [line.split()[0] for line in r.stdout.splitlines()[1:] if line.strip()]  # after the header
    return [int(word) for word in first_words if word.isdigit()]


def freeze_at_first_checkpoint(cluster: Cluster, job: str, run_dir: Path, last_generation: int,
                               timeout: float = 600) -> tuple[int, list[int]]:
    """Wait for the run's first checkpoint, then SIGSTOP every process of the job, so that whatever a test does next
    (read its status, requeue it, signal it, kill a rank) happens mid-run, at a generation that stays put, however
    fast this machine runs generations. Returns the newest checkpointed generation, asserted to be below
    ``last_generation`` (the job is frozen before its run could finish), and the stopped PIDs.

    The test continues the processes itself (``esrun_helpers.processes.cont``), or lets SLURM do it: ``scontrol
    requeue`` sends SIGCONT with its SIGTERM. (Not ``scontrol suspend``: slurmd sends SIGTSTP first and SIGSTOP only
    later, and mpiexec catches SIGTSTP, so an MPI run went on for several generations; a suspended job is also
    requeued held.)"""
    deadline = time.monotonic() + timeout
    last_check = 0.0
    while checkpoint.latest_generation(run_dir) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no checkpoint after {timeout} s:\n{job_output(run_dir)}")
        if time.monotonic() - last_check > 1.0:
            if not cluster.run("squeue", "-h", "-j", job, check=False).stdout.strip():
                raise AssertionError(f"job {job} ended before its first checkpoint:\n{job_output(run_dir)}")
            last_check = time.monotonic()
        time.sleep(0.01)
    stopped: list[int] = []
    while True:  # until no process of the job is left running (one may have started while the others stopped)
        running = [pid for pid in job_pids(cluster, job) if pid not in stopped or not processes.is_stopped(pid)]
        if not running:
            break
        stopped += processes.stop(running)
    newest = checkpoint.latest_generation(run_dir)  # the generation `esrun slurm status` falls back on
    assert newest is not None and 1 <= newest < last_generation, (newest, job_output(run_dir))
    return newest, stopped


def release_requeued(cluster: Cluster, job: str, timeout: float = 300) -> float:
    """Wait until the job is requeued (Restarts=1); then let it start REQUEUE_DELAY_S later instead of SLURM's two
    minutes (Reason=BeginTime). Returns the time (``time.monotonic()``) at which SLURM first showed the requeue."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        fields = job_fields(cluster, job)
        if fields and int(fields[0]["Restarts"]) >= 1:
            seen = seen or time.monotonic()
            state = fields[0]["JobState"]
            if state == "PENDING":
                r = cluster.run("scontrol", "update", f"JobId={job}", f"StartTime=now+{REQUEUE_DELAY_S}", check=False)
                assert r.returncode == 0, r.stderr
                return seen
            if state in ("RUNNING", "COMPLETED"):
                return seen  # already on its way again
            # still COMPLETING its previous life: wait for PENDING
        time.sleep(0.5)
    raise AssertionError(f"job {job} was not requeued within {timeout} s")
