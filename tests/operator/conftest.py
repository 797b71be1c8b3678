"""Operator tests reuse the node fixtures (a real node on 127.0.0.1)."""

from tests.node.conftest import single_node  # noqa: F401
