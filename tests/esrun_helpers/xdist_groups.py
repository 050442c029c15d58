"""How `make test` splits the suite over pytest-xdist workers (``-n 2``, scripts/setup.sh).

The unit of work is a test module, and all SLURM tests together are one unit: a module's tests run on one worker,
in file order, so a module-scoped fixture (the Brax compile, the two-node Ray cluster, a shared run directory) is
built once rather than once per worker, and the SLURM tests share the one session-scoped cluster their worker starts
(tests/slurm/conftest.py). The slowest units are handed out first (:data:`SLOWEST_FIRST`), so that no long unit
starts last while the other worker idles. (xdist's ``--dist loadgroup`` marks do not reach its scheduler under
pytest 9, whose node ids are read-only, hence a scheduler of our own. Each worker's Ray temp dir:
tests/conftest.py.)
"""
from __future__ import annotations

import os

import pytest

#: test folders whose tests share one session-scoped SLURM cluster
ONE_SLURM_CLUSTER = ("tests/slurm/",)

#: units of over ~2 minutes on the 2-core CI machine, slowest first (pytest --durations, docs/BENCHMARKS.md "Test
#: suite layout and time"); every other unit follows in collection order
SLOWEST_FIRST = ("tests/compare/test_compare_configs.py", "tests/tasks/test_brax_env.py", "tests/compare/test_rl.py",
                 "slurm", "tests/runner/test_train.py", "tests/backends/test_ray_backend.py")


def unit_of(nodeid: str) -> str:
    """The scheduling unit of a test: "slurm" for a SLURM test, else its module's path."""
    module = nodeid.split("::", 1)[0]
    return "slurm" if module.startswith(ONE_SLURM_CLUSTER) else module


def pytest_collection_modifyitems(config, items):
    """On an xdist worker: the slowest units first (every worker sorts alike, so their collections agree)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {unit: i for i, unit in enumerate(SLOWEST_FIRST)}
        items.sort(key=lambda item: rank.get(unit_of(item.nodeid), len(rank)))  # stable: file order otherwise


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (or with -p no:xdist) the suite runs in one process
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with :func:`unit_of` as the scope, units queued in collection order."""

        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False  # xdist would queue the units with the most tests first

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return ModuleScheduling(config, log)
