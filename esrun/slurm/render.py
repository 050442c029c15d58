"""Rendering the sbatch templates under ``slurm/`` into one self-contained job script.

A template is a bash script with ``{{key}}`` placeholders. Every backend template holds ``{{sbatch_directives}}``
(the ``#SBATCH`` lines built from a :class:`JobSpec`) and ``{{common}}`` (``slurm/_common.sbatch``: the venv, the
run directory, resume-or-start, and the preemption traps). Values that land in bash assignments are shell-quoted
here, so the rendered script is safe whatever the paths and overrides contain. A placeholder without a value, or a
value without a placeholder use, is an error: the templates and this module cannot drift apart silently.
"""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "slurm"

#: backend name -> template file under slurm/. Looked up, never branched on.
TEMPLATES: dict[str, str] = {"local": "local.sbatch", "mpi": "mpi.sbatch", "ray": "ray.sbatch"}
COMMON_TEMPLATE = "_common.sbatch"
MPI_LAUNCHERS = ("mpiexec", "srun")

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class RenderError(ValueError):
    """A job request that cannot be written as a script; the message is one line for the console."""


@dataclass(frozen=True)
class JobSpec:
    """Everything a job script needs. Paths are absolute; ``overrides`` exclude name / logging.dir / seed."""

    config: str
    name: str
    log_dir: str
    workdir: str
    venv: str
    backend: str = "local"
    overrides: tuple[str, ...] = ()
    nodes: int = 1
    ntasks: int | None = None
    ntasks_per_node: int | None = None
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    qos: str | None = None
    mem: str | None = None
    array: str | None = None
    signal_seconds: int = 120
    max_restarts: int = 2
    mpi_launcher: str = "mpiexec"
    extra_sbatch: tuple[str, ...] = field(default_factory=tuple)
    setup: tuple[str, ...] = field(default_factory=tuple)

    def run_dirs(self) -> list[Path]:
        """One run directory per seed for an array (the array task id is the seed), else ``log_dir/name``."""
        if self.array is None:
            return [Path(self.log_dir) / self.name]
        return [Path(self.log_dir) / f"{self.name}-seed{s}" for s in parse_array(self.array)]


def default_venv() -> str:
    """The virtual environment of the running interpreter (``sys.prefix``), as an absolute path."""
    return str(Path(sys.prefix).absolute())


def parse_array(spec: str) -> list[int]:
    """Task ids of a SLURM ``--array`` spec: ``0-2``, ``1,5,7``, ``0-10:2``, with an optional ``%limit``."""
    body = spec.split("%", 1)[0]
    ids: list[int] = []
    try:
        for part in body.split(","):
            step = 1
            if ":" in part:
                part, step_s = part.split(":", 1)
                step = int(step_s)
            if "-" in part:
                lo_s, hi_s = part.split("-", 1)
                lo, hi = int(lo_s), int(hi_s)
            else:
                lo = hi = int(part)
            if lo < 0 or hi < lo or step < 1:
                raise ValueError
            ids.extend(range(lo, hi + 1, step))
    except ValueError:
        raise RenderError(f"--array {spec!r}: expected task ids (the seeds) like 0-2, 1,5,7 or 0-10:2") from None
    if len(set(ids)) != len(ids):
        raise RenderError(f"--array {spec!r}: a seed appears twice")
    return ids


def _tasks(spec: JobSpec) -> list[str]:
    """Task layout: MPI gets one rank per task; Ray and local get one task per node that owns the node's CPUs."""
    if spec.backend == "mpi":
        if spec.ntasks is not None:
            out = [f"--ntasks={spec.ntasks}"]
            if spec.ntasks_per_node is not None:
                out.append(f"--ntasks-per-node={spec.ntasks_per_node}")
            return out
        return [f"--ntasks-per-node={spec.ntasks_per_node or 1}"]
    if spec.ntasks is not None and spec.ntasks != spec.nodes:
        raise RenderError(f"--ntasks {spec.ntasks}: backend {spec.backend} runs one task per node "
                          "(use --cpus-per-task)")
    if spec.backend == "local" and spec.nodes != 1:
        raise RenderError(f"--nodes {spec.nodes}: backend local runs on one node (use --backend ray or mpi)")
    return ["--ntasks-per-node=1"]


def sbatch_directives(spec: JobSpec) -> list[str]:
    """The ``#SBATCH`` lines of a job, in a fixed order (the dry-run tests compare them)."""
    for key in ("nodes", "ntasks", "ntasks_per_node", "cpus_per_task"):
        value = getattr(spec, key)
        if value is not None and value < 1:
            raise RenderError(f"--{key.replace('_', '-')} {value}: must be at least 1")
    if spec.gpus_per_node is not None and spec.gpus_per_node < 0:
        raise RenderError(f"--gpus-per-node {spec.gpus_per_node}: must not be negative")
    if spec.signal_seconds < 1:
        raise RenderError(f"--signal-seconds {spec.signal_seconds}: must be at least 1")
    if spec.max_restarts < 0:
        raise RenderError(f"--max-restarts {spec.max_restarts}: must not be negative")
    lines = [f"--job-name=esrun-{spec.name}", f"--nodes={spec.nodes}", *_tasks(spec)]
    optional = [
        ("cpus-per-task", spec.cpus_per_task), ("gpus-per-node", spec.gpus_per_node or None),
        ("mem", spec.mem), ("partition", spec.partition), ("time", spec.time),
        ("account", spec.account), ("qos", spec.qos),
    ]
    lines += [f"--{key}={value}" for key, value in optional if value is not None]
    if spec.array is None:
        lines.append(f"--output={Path(spec.log_dir) / spec.name / 'slurm-%j.out'}")
    else:
        parse_array(spec.array)
        lines.append(f"--array={spec.array}")
        lines.append(f"--output={Path(spec.log_dir) / (spec.name + '-seed%a') / 'slurm-%A_%a.out'}")
    lines += ["--open-mode=append", "--requeue", f"--signal=B:USR1@{spec.signal_seconds}"]
    for extra in spec.extra_sbatch:
        text = extra.strip()
        if text.startswith("#SBATCH"):
            text = text[len("#SBATCH"):].strip()
        if not text.startswith("-") or "\n" in text:
            raise RenderError(f"--sbatch {extra!r}: expected one sbatch option such as --constraint=skylake")
        lines.append(text)
    return [f"#SBATCH {line}" for line in lines]


def fill(template: str, values: dict[str, str], *, where: str) -> str:
    """Replace every ``{{key}}``; a placeholder with no value, or a value never used, raises."""
    used: set[str] = set()

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise RenderError(f"{where}: placeholder {{{{{key}}}}} has no value")
        used.add(key)
        return values[key]

    out = _PLACEHOLDER.sub(sub, template)
    unused = set(values) - used
    if unused:
        raise RenderError(f"{where}: values never used: {', '.join(sorted(unused))}")
    return out


def _setup_lines(commands: tuple[str, ...]) -> list[str]:
    for cmd in commands:
        if "\n" in cmd or not cmd.strip():
            raise RenderError(f"--setup {cmd!r}: expected one non-empty shell command line")
    return list(commands) or [":"]


def read_template(name: str, template_dir: Path | None = None) -> str:
    path = (template_dir or TEMPLATE_DIR) / name
    if not path.is_file():
        raise RenderError(f"template {path} is missing")
    return path.read_text()


def render_script(spec: JobSpec, template_dir: Path | None = None) -> str:
    """The whole job script for ``spec``: backend template + common prologue + #SBATCH lines."""
    if spec.backend not in TEMPLATES:
        raise RenderError(f"--backend {spec.backend!r}: must be one of {', '.join(TEMPLATES)}")
    if spec.mpi_launcher not in MPI_LAUNCHERS:
        raise RenderError(f"--mpi-launcher {spec.mpi_launcher!r}: must be one of {', '.join(MPI_LAUNCHERS)}")
    q = shlex.quote
    common = fill(
        read_template(COMMON_TEMPLATE, template_dir),
        {
            "venv": q(spec.venv), "workdir": q(spec.workdir), "config": q(spec.config),
            "log_dir": q(spec.log_dir), "name": q(spec.name), "array": "1" if spec.array is not None else "0",
            "overrides": " ".join(q(o) for o in spec.overrides),
            "signal_spec": f"--signal=B:USR1@{spec.signal_seconds}",
            "max_restarts": str(int(spec.max_restarts)),
            "setup": "\n".join(_setup_lines(spec.setup)),
        },
        where=COMMON_TEMPLATE,
    )
    values = {"sbatch_directives": "\n".join(sbatch_directives(spec)), "common": common.rstrip("\n")}
    template = read_template(TEMPLATES[spec.backend], template_dir)
    if "{{mpi_launcher}}" in template.replace(" ", ""):
        values["mpi_launcher"] = spec.mpi_launcher
    return fill(template, values, where=TEMPLATES[spec.backend])
