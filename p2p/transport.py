"""The aiohttp side of the p2p layer: WebSocket channels of binary frames, the server
that accepts them at /p2p (within its inbound limits) and the client that dials out.

It moves bytes only: it never decodes a frame, never authenticates a peer and keeps
no peer state beyond the counts of open inbound connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from p2p.errors import ConnectError, ConnectionClosedError, MalformedFrameError, OversizedFrameError
from p2p.frames import MAX_FRAME_BYTES
from p2p.handshake import compute_certificate_binding
from p2p.peers import P2PConfig, format_address, parse_address
from p2p.tasks import Spawn

log = logging.getLogger(__name__)

# The WebSocket layer refuses anything bigger than the largest frame outright.
WS_MAX_MESSAGE_BYTES = MAX_FRAME_BYTES + 1024
# Errors of the network itself, logged briefly instead of with a traceback.
NETWORK_ERRORS = (OSError, aiohttp.ClientError, RuntimeError)


class WebSocketChannel:
    """A WebSocket (server or client side) as a FrameChannel of binary frames."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 send_timeout_s: float) -> None:
        self.ws = ws
        self._send_timeout_s = send_timeout_s

    async def send(self, data: bytes) -> None:
        async with asyncio.timeout(self._send_timeout_s):
            await self.ws.send_bytes(data)

    async def receive(self, timeout_s: float | None = None) -> bytes:
        msg = await self.ws.receive(timeout=timeout_s)
        if msg.type == aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type == aiohttp.WSMsgType.TEXT:
            raise MalformedFrameError("text WebSocket message; frames are binary")
        if msg.type == aiohttp.WSMsgType.ERROR:
            error = msg.data
            if isinstance(error, aiohttp.WebSocketError) \
                    and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                raise OversizedFrameError(f"WebSocket message too big: {error}")
            raise ConnectionClosedError(f"WebSocket error: {error}")
        raise ConnectionClosedError(f"connection closed ({msg.type.name})")

    async def close(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self.ws.close()
        except (TimeoutError, *NETWORK_ERRORS) as e:
            log.debug("closing a WebSocket failed: %s", e)


class InboundSlot:
    """One accepted inbound connection's place in the limits, until it is released."""

    def __init__(self, limits: InboundLimits, host: str) -> None:
        self._limits = limits
        self._host = host
        self._pending = True

    def release_pending(self) -> None:
        """Free the pending-handshake place, once (after the handshake, or at close)."""
        if self._pending:
            self._pending = False
            self._limits.pending -= 1

    def close(self) -> None:
        self.release_pending()
        self._limits.by_host[self._host] -= 1
        if self._limits.by_host[self._host] <= 0:
            del self._limits.by_host[self._host]


class InboundLimits:
    """Inbound connections still in the handshake, and open ones per remote host."""

    def __init__(self, max_pending: int, max_per_host: int) -> None:
        self._max_pending = max_pending
        self._max_per_host = max_per_host
        self.pending = 0
        self.by_host: Counter[str] = Counter()

    def get_refusal(self, host: str) -> tuple[str, str] | None:
        """(why, for the log; the HTTP answer's text) if a new connection from `host`
        must be refused; None to accept it."""
        if self.pending >= self._max_pending:
            return f"{self.pending} handshakes already pending", "too many pending handshakes"
        if self.by_host[host] >= self._max_per_host:
            return (f"{self.by_host[host]} connections from that host",
                    "too many connections from this address")
        return None

    def open(self, host: str) -> InboundSlot:
        self.by_host[host] += 1
        self.pending += 1
        return InboundSlot(self, host)


InboundHandler = Callable[[WebSocketChannel, str, InboundSlot], Coroutine[Any, Any, None]]
"""`serve(channel, remote_address, slot)`: handshake and serve one inbound connection;
it must call `slot.release_pending()` once the handshake is over."""


class WebSocketServer:
    """Accepts WebSocket upgrades at /p2p and hands each to `serve` in its own task."""

    def __init__(self, host: str, port: int, server_ssl: ssl.SSLContext | None,
                 config: P2PConfig, serve: InboundHandler, spawn: Spawn,
                 is_running: Callable[[], bool]) -> None:
        self._host = host
        self._port = port
        self._ssl = server_ssl
        self._config = config
        self._serve = serve
        self._spawn = spawn
        self._is_running = is_running
        self.limits = InboundLimits(config.max_pending_handshakes, config.max_inbound_per_host)
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listen; return the bound TCP port (the OS's choice when 0 was asked)."""
        app = web.Application(client_max_size=1024)
        app.router.add_get("/p2p", self._on_request)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=self._config.close_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _on_request(self, request: web.Request) -> web.StreamResponse:
        if not self._is_running():
            return web.Response(status=503, text="node stopping")
        host, address = _remote_address(request)
        refusal = self.limits.get_refusal(host)
        if refusal is not None:
            log.warning("refused connection from %s: %s", address, refusal[0])
            return web.Response(status=503, text=refusal[1])
        slot = self.limits.open(host)
        try:
            ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE_BYTES, compress=False,
                                       timeout=self._config.close_timeout_s)
            await ws.prepare(request)
            channel = WebSocketChannel(ws, self._config.send_timeout_s)
            # The session runs in a task of its own, which stop() cancels; this request
            # handler only holds the HTTP connection open while it lasts.
            task = self._spawn(self._serve(channel, address, slot), f"inbound {address}")
            await asyncio.wait({task})
            return ws
        finally:
            slot.close()


def _remote_address(request: web.Request) -> tuple[str, str]:
    """(host, host:port) of the connection a request came on, "unknown" if gone."""
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if not peername:
        return "unknown", "unknown"
    host = str(peername[0])
    return host, format_address(host, peername[1])


class WebSocketClient:
    """Dials peers' /p2p endpoints, over TLS when `client_ssl` is given."""

    def __init__(self, config: P2PConfig, client_ssl: ssl.SSLContext | None) -> None:
        self._config = config
        self._ssl = client_ssl
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def connect(self, address: str) -> tuple[WebSocketChannel, bytes]:
        """Open a WebSocket to `address`; return it with its TLS channel binding (b""
        in plain text). Raises InvalidAddressError, ConnectError or HandshakeError."""
        host, port = parse_address(address)
        assert self._session is not None, "WebSocketClient.start() has not run"
        scheme = "wss" if self._ssl is not None else "ws"
        url = f"{scheme}://{format_address(host, port)}/p2p"
        try:
            async with asyncio.timeout(self._config.connect_timeout_s):
                ws = await self._session.ws_connect(
                    url, max_msg_size=WS_MAX_MESSAGE_BYTES, autoping=True,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._config.close_timeout_s),
                    ssl=self._ssl if self._ssl is not None else True)
        except (TimeoutError, *NETWORK_ERRORS) as e:
            raise ConnectError(f"cannot connect to {address}: {e!r}") from e
        channel = WebSocketChannel(ws, self._config.send_timeout_s)
        if self._ssl is None:
            return channel, b""
        try:
            return channel, compute_certificate_binding(ws.get_extra_info("ssl_object"))
        except BaseException:
            await channel.close(self._config.close_timeout_s)
            raise
