"""Suite-wide rules for running on several workers.

`tests/run.sh` runs pytest-xdist with `-n 2 --dist loadfile`: the tests of one file
stay on one worker (a module's shared devnet is built once), and a multi-process test
(marked `slow`) holds a lock shared by the workers while it runs, so two devnets never
compete for the machine's two cores at once; in-process tests go on beside it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Generator
from pathlib import Path

import pytest


def _lock_path(config: pytest.Config) -> Path | None:
    """A file in this run's temporary folder, shared by its workers (None: one process)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return None
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    return Path(factory.getbasetemp()).parent / "multi-process.lock"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, object, object]:
    path = _lock_path(item.config) if item.get_closest_marker("slow") else None
    if path is None:
        return (yield)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
