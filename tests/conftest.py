"""Test-session plumbing: the xdist groups, the collector, and Hypothesis's profile.

``--dist loadgroup`` (pyproject's addopts) sends the tests of one ``xdist_group`` (one table row's
compiles, shared through the compile cache) to one worker. pytest-xdist marks a group by appending
``@group`` to ``item._nodeid``, which pytest 9 no longer reads (node ids live in ``item._id``), so
the groups are applied here the same way, on pytest versions that need it.
"""

from __future__ import annotations

import gc
import os

import pytest
from hypothesis import settings

# Hypothesis draws its examples from a seed fixed by each test (derandomize): every run, CI's included,
# checks the same examples, so a failure is reproducible and none comes by chance from a fresh draw.
# HYPOTHESIS_PROFILE=explore draws new ones each run (as fuzz/ does for the compiler at length).
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The collected tables (thousands of parameter sets) live to the end of the run: moved out of the
    collector's sight, and the young generation collected less often. A worker holds gigabytes of
    compiled programs and SymPy caches, and full collections walking them were ~5% of a run."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


#: files of a few long tests (subprocesses, whole-library runs), handed out first: one of them started
#: last keeps one worker busy after the other has finished
LONG_FIRST = ("test_keras.py", "test_benchmarks.py", "test_hostile_files.py", "test_examples.py",
              "test_properties.py", "test_analysis.py")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONG_FIRST)  # stable: the same order in every worker
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    try:
        from _pytest.nodes import coerce_node_id
    except ImportError:  # pytest 8: xdist's own hook applied the groups
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(groups)}")
