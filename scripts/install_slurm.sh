#!/usr/bin/env bash
# Install the single-node SLURM that tests/slurm/ starts for itself (Debian packages).
# Idempotent: does nothing when sbatch, slurmctld and slurmd are already on the PATH.
# The packages' own services are not used: the tests write a slurm.conf to a temp dir and
# start slurmctld / slurmd themselves (see tests/slurm/conftest.py).
set -euo pipefail

if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null; then
    echo "install_slurm: slurm already installed ($(dpkg-query -W -f='${Version}' slurm-client 2>/dev/null || echo unknown))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q slurmctld slurmd slurm-client
echo "install_slurm: installed slurm $(dpkg-query -W -f='${Version}' slurm-client)"
