"""What the HTTP layer reads of a running node process, as a protocol.

The process itself is assembled above this layer (cli/service.py); metrics, readiness
and operator routes see only these attributes, so rpc/ never imports the assembly.
"""

from __future__ import annotations

from typing import Protocol

from node.config import NodeHome
from node.gossip import NodeNetwork
from node.node import Node
from rpc.dispatcher import RpcDispatcher


class ServedNode(Protocol):
    """A running node as the operator routes and the metrics read it."""

    @property
    def home(self) -> NodeHome:
        """The node's home: config, keys, data directory."""

    @property
    def node(self) -> Node:
        """The driver and its chain state."""

    @property
    def network(self) -> NodeNetwork:
        """Peers and p2p counters."""

    @property
    def api_dispatcher(self) -> RpcDispatcher:
        """The public JSON-RPC dispatcher (calls counted by method)."""
