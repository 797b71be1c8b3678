"""What the RPC server adds around the public methods: limits, admin methods, /ws.

One `Gateway` per node process: a RequestGuard (rate limit, admin token), the admin
methods and the WebSocket subscription hub, installed on the HTTP app in one call.
"""

from __future__ import annotations

from aiohttp import web

from node.config import ensure_admin_token
from node.node import Node
from p2p.network import P2PNetwork
from rpc.dispatcher import RpcDispatcher
from rpc.limits import RateLimiter, RequestGuard
from rpc.methods.admin import AdminApi
from rpc.websocket import SubscriptionHub


class Gateway:
    """Limits, admin methods and WebSocket subscriptions of one node's RPC server."""

    def __init__(self, node: Node, dispatcher: RpcDispatcher, p2p: P2PNetwork | None) -> None:
        config = node.home.config
        self.guard = RequestGuard(
            RateLimiter(config.rpc_rate_limit_per_s, config.rpc_rate_burst),
            ensure_admin_token(node.home.path), allow_local=config.rpc_admin_allow_local)
        self.hub = SubscriptionHub(node, dispatcher, self.guard)
        AdminApi(node, p2p).register(dispatcher)
        self.hub.register(dispatcher)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/ws", self.hub.handle)

        async def close_websockets(app: web.Application) -> None:
            await self.hub.close()

        app.on_shutdown.append(close_websockets)
