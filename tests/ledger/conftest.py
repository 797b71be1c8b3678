"""Fixtures for ledger tests; the helpers live in ledger_fixtures."""

from __future__ import annotations

import pytest

from tests.ledger.ledger_fixtures import World, make_world


@pytest.fixture
def world() -> World:
    """A ledger and the committed state right after the standard test genesis."""
    return make_world()
from tests.ledger.app_fixtures import app  # noqa: F401,E402
