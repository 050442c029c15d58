"""``esrun slurm submit | status`` — the SLURM subcommands. User mistakes: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from esrun.slurm.render import MPI_LAUNCHERS, TEMPLATES, JobSpec, RenderError, default_venv, render_script
from esrun.slurm.status import collect, format_table
from esrun.slurm.submit import SCRIPT_NAME, SubmitError, build_spec, sbatch_command, submit

EXIT_USAGE = 2


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise _Usage(message)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def submit_parser() -> argparse.ArgumentParser:
    s = _Parser(prog="esrun slurm submit", description="Render a job script for CONFIG and submit it with sbatch.")
    s.add_argument("config", help="YAML config file")
    s.add_argument("overrides", nargs="*", help="section.key=value, as for esrun train")
    s.add_argument("--backend", choices=sorted(TEMPLATES), default="local", help="template under slurm/")
    s.add_argument("--nodes", type=_positive, default=1)
    s.add_argument("--ntasks", type=_positive, help="MPI ranks in all (default: --ntasks-per-node x --nodes)")
    s.add_argument("--ntasks-per-node", type=_positive, help="MPI ranks per node (default 1)")
    s.add_argument("--cpus-per-task", type=_positive)
    s.add_argument("--gpus-per-node", type=int)
    s.add_argument("--partition")
    s.add_argument("--time", help="time limit, SLURM syntax (e.g. 02:00:00)")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--mem", help="memory per node, SLURM syntax (e.g. 16G)")
    s.add_argument("--array", metavar="SEEDS", help="job array over seeds, SLURM syntax: 0-2, 1,5,7 (one run each)")
    s.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="extra #SBATCH line, e.g. --sbatch=--constraint=skylake (repeatable)")
    s.add_argument("--setup", action="append", default=[], metavar="CMD",
                   help="shell line run before the venv is activated, e.g. --setup 'module load cuda/12.4' "
                        "(repeatable)")
    s.add_argument("--signal-seconds", type=_positive, default=120,
                   help="SIGUSR1 this many seconds before the time limit: checkpoint and requeue (default 120)")
    s.add_argument("--max-restarts", type=_non_negative, default=2,
                   help="requeue a run that fails (a rank or node lost; not exit code 2) up to N times, resuming from "
                        "its last checkpoint (default 2)")
    s.add_argument("--mpi-launcher", choices=MPI_LAUNCHERS, default="mpiexec")
    s.add_argument("--venv", help="virtual environment the job uses (default: this interpreter's)")
    s.add_argument("--dry-run", action="store_true", help="print the script and the sbatch command; submit nothing")
    return s


def status_parser() -> argparse.ArgumentParser:
    st = _Parser(prog="esrun slurm status", description="State, elapsed time and last generation of submitted runs.")
    st.add_argument("job_id", nargs="?", help="a job id (an array job id selects all its tasks)")
    st.add_argument("--runs-dir", default="runs", help="where the run directories are (default: runs)")
    return st


#: subcommand -> (parser factory, handler)
COMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {}


def cmd_submit(args: argparse.Namespace) -> int:
    venv = str(Path(args.venv).absolute()) if args.venv else default_venv()
    spec: JobSpec = build_spec(
        args.config, list(args.overrides), venv=venv, backend=args.backend, nodes=args.nodes, ntasks=args.ntasks,
        ntasks_per_node=args.ntasks_per_node, cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_node,
        partition=args.partition, time=args.time, account=args.account, qos=args.qos, mem=args.mem,
        array=args.array, signal_seconds=args.signal_seconds, max_restarts=args.max_restarts,
        mpi_launcher=args.mpi_launcher,
        extra_sbatch=tuple(args.sbatch), setup=tuple(args.setup),
    )
    if args.dry_run:
        script = render_script(spec)
        run_dirs = spec.run_dirs()
        print(script, end="" if script.endswith("\n") else "\n")
        print("# run directories: " + " ".join(str(d) for d in run_dirs))
        print("# sbatch command: " + shlex.join(sbatch_command("sbatch", run_dirs[0] / SCRIPT_NAME)))
        return 0
    job_id, run_dirs = submit(spec)
    print(f"submitted job {job_id}")
    for run_dir in run_dirs:
        print(f"run directory: {run_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    runs_dir = Path(args.runs_dir)
    rows = collect(runs_dir, args.job_id)
    if not rows:
        which = f"job {args.job_id}" if args.job_id else "any job"
        print(f"esrun slurm: error: no run under {runs_dir} was submitted as {which}", file=sys.stderr)
        return EXIT_USAGE
    print(format_table(rows))
    return 0


COMMANDS.update(submit=(submit_parser, cmd_submit), status=(status_parser, cmd_status))
USAGE = "usage: esrun slurm {submit,status} ... (esrun slurm submit --help)"


def main(argv: list[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_USAGE
    if argv[0] not in COMMANDS:
        print(f"esrun slurm: error: unknown command {argv[0]!r}; {USAGE}", file=sys.stderr)
        return EXIT_USAGE
    make_parser, handler = COMMANDS[argv[0]]
    try:
        args = make_parser().parse_intermixed_args(argv[1:])
        return handler(args)
    except (_Usage, RenderError, SubmitError) as exc:
        print(f"esrun slurm: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
