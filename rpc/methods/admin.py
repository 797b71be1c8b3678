"""Admin RPC methods: peers and the mempool. Marked admin in their spec, so the
dispatcher answers them only to localhost or to a holder of HOME/admin_token.

They act through Node and P2PNetwork methods; none writes chain state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from node.node import Node
from p2p.errors import P2PError
from p2p.network import P2PNetwork
from rpc.dispatcher import NOT_FOUND, UNAUTHORIZED, RpcDispatcher, RpcError, invalid_params
from rpc.openrpc import HEX, NONCE, MethodSpec, Param, array, obj

PEER = obj({"node_id": HEX, "address": {"type": "string"}, "listen_address": {"type": "string"},
            "direction": {"type": "string"}, "is_validator": {"type": "boolean"},
            "score": {"type": "number"}, "status_height": {}})

ADMIN_PEERS = MethodSpec(params=(), result=array(PEER), errors=(UNAUTHORIZED,), admin=True,
                         tags=("admin",))
ADMIN_PEER_ADD = MethodSpec(
    params=(Param("address", {"type": "string", "maxLength": 300},
                  "host:port of the peer's p2p listener", True),),
    result=obj({"node_id": HEX}), errors=(UNAUTHORIZED, NOT_FOUND), admin=True,
    description="Dial once; the peer is not added to config.toml.", tags=("admin",))
ADMIN_PEER_REMOVE = MethodSpec(
    params=(Param("node_id", HEX, "the peer's node id (admin_peers)", True),),
    result=obj({"disconnected": {"type": "boolean"}}), errors=(UNAUTHORIZED,), admin=True,
    description="Close the session; a static peer from config.toml is dialled again.",
    tags=("admin",))
ADMIN_MEMPOOL_FLUSH = MethodSpec(
    params=(), result=obj({"flushed": NONCE}), errors=(UNAUTHORIZED,), admin=True,
    description="Drop every pending tx; each reports rejected (flushed, where eviction).",
    tags=("admin",))


class AdminApi:
    """Admin methods over a node and its p2p network."""

    def __init__(self, node: Node, p2p: P2PNetwork | None) -> None:
        self.node = node
        self.p2p = p2p

    def register(self, dispatcher: RpcDispatcher) -> None:
        r = dispatcher.register
        r("admin_peers", self.admin_peers, (), "Connected peers in detail", spec=ADMIN_PEERS)
        r("admin_peer_add", self.admin_peer_add, ("address",), "Dial a peer",
          spec=ADMIN_PEER_ADD)
        r("admin_peer_remove", self.admin_peer_remove, ("node_id",), "Disconnect a peer",
          spec=ADMIN_PEER_REMOVE)
        r("admin_mempool_flush", self.admin_mempool_flush, (), "Empty the mempool",
          spec=ADMIN_MEMPOOL_FLUSH)

    def _network(self) -> P2PNetwork:
        if self.p2p is None:
            raise RpcError(NOT_FOUND, "no_network", "this node runs without p2p")
        return self.p2p

    async def admin_peers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**dataclasses.asdict(p), "direction": str(p.direction.value)}
                for p in self._network().peers()]

    async def admin_peer_add(self, params: dict[str, Any]) -> dict[str, Any]:
        address = params.get("address")
        if not isinstance(address, str) or not 0 < len(address) <= 300:
            raise invalid_params("address must be host:port")
        try:
            node_id = await self._network().connect(address)
        except P2PError as e:
            raise RpcError(NOT_FOUND, "peer_unreachable", str(e)) from e
        return {"node_id": node_id}

    async def admin_peer_remove(self, params: dict[str, Any]) -> dict[str, Any]:
        node_id = params.get("node_id")
        if not isinstance(node_id, str) or len(node_id.removeprefix("0x")) != 64:
            raise invalid_params("node_id must be 64 hex digits")
        return {"disconnected": self._network().disconnect(node_id.lower().removeprefix("0x"))}

    async def admin_mempool_flush(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"flushed": self.node.flush_mempool()}
