"""How much of esrun's public surface is annotated: parameters and returns of public functions and methods.

    python scripts/typing_coverage.py                      # per package and in total
    python scripts/typing_coverage.py --missing runner     # list what is not annotated in esrun/runner
    python scripts/typing_coverage.py --min 90 strategies tasks   # exit 1 if one of them is below 90 %

Counted: every module-level function and every method of a module-level class, when its name is public (no leading
underscore; ``__init__`` and ``__call__`` count), in modules whose name is public. Each parameter except ``self`` /
``cls`` is one slot (``*args`` and ``**kwargs`` included), and the return is one more (not for ``__init__``, whose
return is always None). Nested functions are private by construction and are not counted. Read with ``ast``: nothing
is imported.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "esrun"
DUNDERS_COUNTED = {"__init__", "__call__"}


def _public(name: str) -> bool:
    return not name.startswith("_") or name in DUNDERS_COUNTED


def _slots(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[tuple[str, bool]]:
    """``(slot name, annotated)`` for each parameter and the return of ``fn``."""
    a = fn.args
    params = [*a.posonlyargs, *a.args]
    decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
    if is_method and params and "staticmethod" not in decorators:
        params = params[1:]  # self / cls
    params += a.kwonlyargs
    params += [p for p in (a.vararg, a.kwarg) if p is not None]
    out = [(p.arg, p.annotation is not None) for p in params]
    if fn.name != "__init__":
        out.append(("return", fn.returns is not None))
    return out


def scan(path: Path) -> list[tuple[str, str, bool]]:
    """``(qualified function, slot, annotated)`` for every counted slot of one module."""
    tree = ast.parse(path.read_text(), str(path))
    rows = []
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, funcs) and _public(node.name):
            rows += [(node.name, s, ok) for s, ok in _slots(node, False)]
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, funcs) and _public(item.name):
                    rows += [(f"{node.name}.{item.name}", s, ok) for s, ok in _slots(item, True)]
    return rows


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packages", nargs="*", help="esrun subpackages / top-level modules to report (default: all)")
    ap.add_argument("--missing", action="store_true", help="list the unannotated slots")
    ap.add_argument("--min", type=float, default=None, help="exit 1 if a listed package is below this percentage")
    args = ap.parse_args(argv)

    per: dict[str, list[tuple[str, str, str, bool]]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        if path.stem.startswith("_") and path.stem != "__init__":
            continue
        for fn, slot, ok in scan(path):
            per[package_of(path)].append((str(path.relative_to(ROOT.parent)), fn, slot, ok))
    chosen = args.packages or sorted(per)
    unknown = [p for p in chosen if p not in per]
    if unknown:
        print(f"typing_coverage: no such package or module in esrun/: {', '.join(unknown)}", file=sys.stderr)
        return 2

    below = []
    total = done = 0
    print(f"{'package':<14} {'annotated':>9} {'slots':>6} {'%':>6}")
    for name in chosen:
        rows = per[name]
        ok = sum(r[3] for r in rows)
        pct = 100.0 * ok / len(rows) if rows else 100.0
        total += len(rows)
        done += ok
        print(f"{name:<14} {ok:>9} {len(rows):>6} {pct:>6.1f}")
        if args.min is not None and pct < args.min:
            below.append(f"{name} {pct:.1f} %")
        if args.missing:
            for file, fn, slot, ok_ in rows:
                if not ok_:
                    print(f"    {file}: {fn}: {slot}")
    print(f"{'total':<14} {done:>9} {total:>6} {100.0 * done / max(total, 1):>6.1f}")
    if below:
        print(f"typing_coverage: below {args.min:g} %: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
