#!/usr/bin/env bash
# Set up esrun on a fresh machine (Python >= 3.10 with venv and pip) and run one thing:
#   scripts/setup.sh run    install, then train the default job (configs/cartpole.yaml, local backend, TensorBoard logs)
#   scripts/setup.sh test   install (with the SLURM packages the tests start), run the static checks (ruff, mypy,
#                           the import contracts: scripts/static_checks.sh), then the whole test suite
# Everything goes into ./.venv; it is reused when present and up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-run}"
shift || true

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 python3.10 python3; do
        if command -v "$cand" >/dev/null; then PY="$cand"; break; fi
    done
fi
[ -n "$PY" ] || { echo "setup: no python3 found" >&2; exit 1; }

stamp=.venv/.esrun-installed
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[all]"
    touch "$stamp"
fi
# mpiexec (mpich wheel) and the esrun / tensorboard scripts live in the venv
export PATH="$PWD/.venv/bin:$PATH"

case "$what" in
    run)
        exec esrun train configs/cartpole.yaml "$@"
        ;;
    test)
        bash scripts/install_slurm.sh
        if ! bash scripts/static_checks.sh; then
            echo "setup: the static checks failed (above); the tests did not run" >&2
            exit 1
        fi
        # two pytest-xdist workers (a test module, or all SLURM tests, runs on one worker:
        # tests/esrun_helpers/xdist_groups.py); ESRUN_TEST_WORKERS=0 runs the suite in this one process
        exec python -m pytest -q -n "${ESRUN_TEST_WORKERS:-2}" "$@"
        ;;
    *)
        echo "usage: scripts/setup.sh run|test [args...]" >&2
        exit 2
        ;;
esac
