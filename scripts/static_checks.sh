#!/usr/bin/env bash
# The static checks `scripts/setup.sh test` (and so CI) runs before the tests; each is configured in pyproject.toml:
#   ruff           lint and import order          [tool.ruff]
#   mypy           types of esrun/ and envs/      [tool.mypy]
#   lint-imports   the import layers, and ray / mpi4py only in esrun.backends   [tool.importlinter]
#   typing_coverage.py   >= 90 % of public parameters and returns annotated in the packages listed below
# All three run even when one fails, so one pass shows every problem; the exit status is 1 if any failed.
# Run alone with `bash scripts/static_checks.sh` (uses ./.venv; set PYTHON to use another interpreter).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
BIN="$(dirname "$PY")"

failed=()
check() {
    local name="$1"
    shift
    echo "static checks: $name"
    if ! "$@"; then
        echo "static checks: FAILED: $name (command: $*)" >&2
        failed+=("$name")
    fi
}

check "ruff (lint)" "$PY" -m ruff check --no-cache .
check "mypy (types)" "$PY" -m mypy
check "lint-imports (layers, transports)" "$BIN/lint-imports" --no-logo --no-cache
check "typing coverage (public signatures >= 90 %)" "$PY" scripts/typing_coverage.py --min 90 \
    strategies tasks policies estimators config logging slurm runner cli

if [ "${#failed[@]}" -gt 0 ]; then
    echo "static checks: ${#failed[@]} failed: ${failed[*]} -- fix them (the configuration is in pyproject.toml)" >&2
    exit 1
fi
echo "static checks: ruff, mypy, lint-imports and typing coverage passed"
