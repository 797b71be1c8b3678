"""Suite-wide collection rules.

With pytest-xdist (`tests/run.sh` runs `-n 2 --dist loadgroup`), every multi-process
test (marked `slow`) goes to one group, so they run one at a time on one worker while
the in-process tests share the other: two multi-process devnets never compete for the
machine's two cores at once.
"""

from __future__ import annotations

import pytest

SLOW_GROUP = "multi-process"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.xdist_group(SLOW_GROUP))
