"""Operator tests reuse the node fixtures (a real node on 127.0.0.1)."""

import pytest

from tests.node.conftest import single_node  # noqa: F401
from tests.operator.browser import get_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a headless-capable Chromium (skips the test when there is none)."""
    return get_chromium()
