"""Fixtures shared by the top-level tests (helpers live in esrun_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

# esrun sets its XLA flags (single-threaded Eigen for latency) when imported before JAX. Importing it here, before
# any test module imports JAX, gives the pytest process the same numerics as the `esrun` CLI subprocesses, so
# hashes compared across the two (a CLI run resumed in-process, say) are comparable.
import esrun  # noqa: E402,F401


@pytest.fixture
def runs(tmp_path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d
