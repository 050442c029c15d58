"""Fixtures shared by the top-level tests (helpers live in esrun_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runs(tmp_path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d
