"""`esrun train | eval | runs | compare | slurm` — the command line.

User mistakes exit 2 with one line, no traceback."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from esrun.errors import UserError

EXIT_USAGE = 2


def _fail(msg: str) -> int:
    msg = str(msg).replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever user text it quotes
    print(f"esrun: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _user_errors():
    return (UserError,)


def _load_for_train(args):
    from esrun.config.load import apply_overrides, read_yaml
    from esrun.runner.names import load_config, validate

    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.is_file():
            raise UserError(f"cannot resume '{run_dir}': no config.yaml there (is it a run directory?)")
        overrides = ([args.config] if args.config else []) + list(args.overrides)
        from esrun.config.resume import check_resume

        cfg = validate(apply_overrides(read_yaml(cfg_path), overrides))
        check_resume(validate(read_yaml(cfg_path)), cfg)  # only budgets, logging and placement may change
        return cfg, run_dir
    if not args.config:
        raise UserError("train needs a CONFIG file (or --resume RUN_DIR)")
    return load_config(args.config, args.overrides), None


def cmd_train(args: argparse.Namespace) -> int:
    cfg, resume = _load_for_train(args)
    from esrun.runner import train

    result = train(cfg, resume=resume, progress=False if args.quiet else None)
    s = result.summary
    if s:
        fer = s.get("final_eval_return")
        ev = "" if fer is None else f" final_eval_return={fer:.4g}"
        print(f"{result.run_dir}: generations={s['generations']} env_steps={s['env_steps']} "
              f"wall_seconds={s['wall_seconds']:.2f}{ev} stop={s['stop_reason']} "
              f"params_sha256={s['params_sha256'][:16]}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from esrun.runner.evaluate import evaluate_run

    out = evaluate_run(Path(args.run_dir), args.episodes, video=args.video, seed=args.seed)
    print(f"{args.run_dir}: return mean={out['mean']:.4f} std={out['std']:.4f} over {out['episodes']} episodes"
          + (f"; video: {args.video}" if args.video else ""))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from esrun.logging.runs import main as runs_main

    return runs_main(args.dir, as_csv=args.csv)


def _delegate(module: str, argv: list[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return _fail(f"'{module}' is not available in this installation")
        raise
    return int(mod.main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="esrun", description="Evolution Strategies and gradient estimators, "
                                "from a laptop to a cluster.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from a YAML config (overrides: section.key=value)")
    t.add_argument("config", nargs="?", help="YAML config file")
    t.add_argument("overrides", nargs="*", help="section.key=value")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a checkpointed run")
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("eval", help="evaluate the final policy of a run")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--video", metavar="FILE", help="write rgb frames of the first episode (mp4 or gif)")
    e.add_argument("--seed", type=int, default=12345)
    e.set_defaults(fn=cmd_eval)
    r = sub.add_parser("runs", help="table of the runs under DIR: status, generations, best, final eval, hash")
    r.add_argument("dir", nargs="?", default="runs", help="a directory of runs (default: runs)")
    r.add_argument("--csv", action="store_true", help="CSV with every field in full, for scripts")
    r.set_defaults(fn=cmd_runs)
    sub.add_parser("compare", help="estimators side by side at equal budgets", add_help=False)
    sub.add_parser("slurm", help="submit / watch SLURM jobs", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        return _run_guarded(lambda: _delegate("esrun.compare.cli", argv[1:]))
    if argv and argv[0] == "slurm":
        return _run_guarded(lambda: _delegate("esrun.slurm.cli", argv[1:]))
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may come after options (`train CONFIG --quiet a.b=1`): collect the leftovers
    unknown = [x for x in extra if x.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    if getattr(args, "config", None) and "=" in args.config and not args.resume:
        return _fail(f"expected a CONFIG file before overrides, got '{args.config}'")
    return _run_guarded(lambda: args.fn(args))


def _run_guarded(fn) -> int:
    try:
        return fn()
    except _user_errors() as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
