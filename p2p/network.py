"""P2PNetwork: the p2p layer as the node sees it. A facade that builds the transport,
admission, sessions, gossip, routing, dialer and scoring, and offers one small API
over them (docs/p2p.md has the module map).

It moves frames and applies the node's verdicts; it never decodes or validates chain
objects and never mutates node state. Every task it starts is referenced and is
cancelled and awaited by `stop()`; every network await has a deadline. A peer's
misbehaviour costs the peer score and its connection, never the network.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

from chain.crypto import KeyPair
from p2p.admission import Admission, LocalNode
from p2p.callbacks import (
    MessageHandler,
    NodeCallbacks,
    PeerConnected,
    PeerDisconnected,
    RequestHandler,
)
from p2p.dialer import Dialer, PeerExchange
from p2p.frames import (
    DIRECT_TYPES,
    EXPECTED_RESPONSE,
    GOSSIP_TYPES,
    REQUEST_TYPES,
    MessageType,
    encode_frame,
)
from p2p.gossip import Gossip
from p2p.peers import (
    AddressBook,
    DialedKeys,
    NetworkCounters,
    P2PConfig,
    PeerInfo,
    format_address,
    parse_address,
)
from p2p.router import RequestServer, Router
from p2p.scoring import Scoring
from p2p.session import TX_LANE_FRAMES, PeerSession, PeerTable, SessionContext, Traffic
from p2p.tasks import TaskSet
from p2p.transport import InboundSlot, WebSocketChannel, WebSocketClient, WebSocketServer

__all__ = [
    "EXPECTED_RESPONSE",
    "TX_LANE_FRAMES",
    "MessageHandler",
    "P2PNetwork",
    "PeerConnected",
    "PeerDisconnected",
    "RequestHandler",
]

log = logging.getLogger(__name__)


class P2PNetwork:
    """The p2p transport of one node. See docs/p2p.md for the protocol."""

    def __init__(
        self,
        node_key: KeyPair,
        chain_id: str,
        genesis_hash: bytes,
        listen_host: str,
        listen_port: int,
        static_peers: list[str],
        handler: MessageHandler,
        *,
        handle_request: RequestHandler | None = None,
        on_peer_connected: PeerConnected | None = None,
        on_peer_disconnected: PeerDisconnected | None = None,
        is_validator: bool = False,
        config: P2PConfig | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        tls_fingerprint: bytes | None = None,
        admission: Callable[[bytes], bool] | None = None,
    ) -> None:
        """`server_ssl`/`client_ssl` turn TLS on (both or neither); `tls_fingerprint`
        is the SHA-256 of our certificate (DER), required with `server_ssl`: each side
        signs the server certificate's fingerprint in the handshake, so a man in the
        middle that terminates TLS is refused. `admission(node_key)` is the node's
        extra policy (closed network): False refuses the key as not allowed."""
        _validate_arguments(static_peers, server_ssl, client_ssl, tls_fingerprint)
        self._key = node_key
        self._listen_host = listen_host
        self._config = config = config or P2PConfig()
        self._callbacks = NodeCallbacks(handler, handle_request, on_peer_connected,
                                        on_peer_disconnected)
        self._running = False
        self._bound_port: int | None = None
        self._task_set = TaskSet()
        spawn = self._task_set.spawn
        self._scoring = Scoring(config)
        self._traffic = Traffic()
        self._peers = PeerTable()
        context = SessionContext(config, self._peers, self._scoring, self._traffic, spawn)
        book = AddressBook(config.max_dial_failures)
        dialed = DialedKeys(static_peers)
        self._gossip = Gossip(self._peers, self._callbacks, config.seen_cache_size)
        requests = RequestServer(config, self._callbacks, self._peers, spawn)
        self._router = Router(self._gossip, requests, self._callbacks, book)
        local = LocalNode(node_key, chain_id, genesis_hash, is_validator, tls_fingerprint or b"")
        self._admission = Admission(local, lambda: self.listen_address, context, dialed, book,
                                    admission, self._is_running)
        self._server = WebSocketServer(listen_host, listen_port, server_ssl, config,
                                       self._serve_inbound, spawn, self._is_running)
        self._client = WebSocketClient(config, client_ssl)
        self._dialer = Dialer(config, dialed, self._peers, self._scoring, book,
                              self._open_outbound, self._run_peer, spawn, self._is_running)
        self._exchange = PeerExchange(config, self._peers, book, self._dialer, self.request)

    # ------------------------------------------------------------ lifecycle

    @property
    def node_id(self) -> str:
        """Hex of our node public key."""
        return self._key.public_key.hex()

    @property
    def bound_port(self) -> int:
        """The TCP port the server listens on (the OS's choice when 0 was asked)."""
        if self._bound_port is None:
            raise RuntimeError("P2PNetwork.start() has not run")
        return self._bound_port

    @property
    def listen_address(self) -> str:
        """The host:port we advertise to peers."""
        if self._config.advertise_address:
            return self._config.advertise_address
        return format_address(self._listen_host, self.bound_port)

    async def start(self) -> None:
        """Listen, dial the static peers and start peer exchange."""
        assert not self._running, "P2PNetwork.start() called twice"
        self._running = True
        await self._client.start()
        self._bound_port = await self._server.start()
        self._dialer.self_addresses.add(format_address(self._listen_host, self._bound_port))
        self._dialer.self_addresses.add(self.listen_address)
        log.info("p2p listening on %s as node %s", self.listen_address, self.node_id[:16])
        self._dialer.start()
        if self._config.peer_exchange:
            self._task_set.spawn(self._exchange.run(), "peer exchange")

    def add_static_peer(self, address: str) -> None:
        """Dial `address` now and keep redialing it like a configured static peer."""
        parse_address(address)
        self._dialer.add_static_peer(address)

    async def stop(self) -> None:
        """Close every connection, cancel and await every task, close the server."""
        if not self._running:
            return
        self._running = False
        sessions = self._peers.values()
        for session in sessions:
            session.closing_reason = session.closing_reason or "node stopping"
        await asyncio.gather(*(session.channel.close(self._config.close_timeout_s)
                               for session in sessions))
        await self._task_set.cancel_all()
        await self._server.stop()
        await self._client.stop()
        log.info("p2p stopped")

    def _is_running(self) -> bool:
        return self._running

    # ------------------------------------------------------------ queries

    @property
    def peer_count(self) -> int:
        """How many peers are connected now."""
        return len(self._peers)

    def peers(self) -> list[PeerInfo]:
        """A snapshot of every connected peer."""
        return [self._peer_info(session) for session in self._peers.values()]

    def counters(self) -> NetworkCounters:
        """Traffic totals since start."""
        traffic = self._traffic
        return NetworkCounters(
            bytes_in=traffic.bytes_in, bytes_out=traffic.bytes_out,
            messages_in=dict(traffic.messages_in), messages_out=dict(traffic.messages_out),
            gossip_duplicates=self._gossip.duplicates)

    def is_banned(self, node_id: str) -> bool:
        """Whether `node_id` (hex) is currently banned."""
        return self._scoring.is_banned(node_id)

    def penalize(self, peer_id: str, points: float, reason: str) -> None:
        """Lower a connected peer's score for a fault the node found (e.g. during sync);
        the peer is banned when its score reaches `ban_score`. No-op if it is gone."""
        session = self._peers.get(peer_id)
        if session is not None:
            session.penalize(points, reason)

    def _peer_info(self, session: PeerSession) -> PeerInfo:
        return session.get_info(self._scoring.get_score(session.peer_id))

    # ------------------------------------------------------------ sending

    def broadcast(self, msg_type: MessageType, payload: Any, exclude: str | None = None) -> int:
        """Send a gossip (TX, PROPOSAL, VOTE) or direct (STATUS) message to every peer
        but `exclude`; return how many peers it was queued for. Gossip we send is marked
        seen, so it is not delivered back to our handler when a peer relays it."""
        return self._gossip.broadcast(msg_type, payload, exclude)

    def send(self, peer_id: str, msg_type: MessageType, payload: Any) -> None:
        """Send a gossip or direct message to one peer; raises PeerNotConnectedError."""
        if msg_type not in GOSSIP_TYPES and msg_type not in DIRECT_TYPES:
            raise ValueError(f"{msg_type.name} cannot be sent outside a request")
        session = self._peers.get_open(peer_id)
        data = encode_frame(msg_type, 0, payload)
        if msg_type in GOSSIP_TYPES:
            self._gossip.mark_sent(data)
        session.enqueue(msg_type, data)

    async def request(self, peer_id: str, msg_type: MessageType, payload: Any,
                      timeout_s: float | None = None) -> tuple[MessageType, Any]:
        """Send a request and await its answer: (type, payload), type as EXPECTED_RESPONSE.

        Raises PeerNotConnectedError, RequestTimeoutError (the peer is penalized),
        RequestRefusedError (the peer answered ERROR) or MalformedFrameError (a wrong
        answer type; the peer is penalized).
        """
        if msg_type not in REQUEST_TYPES:
            raise ValueError(f"{msg_type.name} is not a request type")
        session = self._peers.get_open(peer_id)
        timeout_s = self._config.request_timeout_s if timeout_s is None else timeout_s
        return await session.request(msg_type, payload, timeout_s)

    # ------------------------------------------------------------ sessions

    async def connect(self, address: str) -> str:
        """Dial `address` once and run the peer in the background; return its peer id.

        Raises InvalidAddressError, ConnectError or a HandshakeError.
        """
        session = await self._open_outbound(address)
        self._task_set.spawn(self._run_peer(session), f"peer {session.short_id}")
        return session.peer_id

    def disconnect(self, peer_id: str, reason: str = "disconnected by the operator") -> bool:
        """Close the session with `peer_id`; False if it is not connected.

        A static peer is dialled again by its dial loop; a discovered one is not.
        """
        session = self._peers.get(peer_id)
        if session is None:
            return False
        session.close(reason)
        return True

    async def _open_outbound(self, address: str) -> PeerSession:
        channel, binding = await self._client.connect(address)
        return await self._admission.open_outbound(channel, address, binding)

    async def _serve_inbound(self, channel: WebSocketChannel, address: str,
                             slot: InboundSlot) -> None:
        session = await self._admission.open_inbound(channel, address, slot)
        if session is not None:
            await self._run_peer(session)

    async def _run_peer(self, session: PeerSession) -> None:
        """Serve one registered peer until it goes, with the node's notices around it."""
        callbacks, spawn = self._callbacks, self._task_set.spawn
        if callbacks.on_peer_connected is not None:
            spawn(callbacks.notify(callbacks.on_peer_connected(self._peer_info(session))),
                  "on_peer_connected")
        if self._config.peer_exchange:
            spawn(self._exchange.on_connected(session.peer_id), "peer exchange")
        try:
            await session.run(self._router)
        finally:
            if callbacks.on_peer_disconnected is not None and self._running:
                reason = session.closing_reason or "connection closed"
                spawn(callbacks.notify(callbacks.on_peer_disconnected(session.peer_id, reason)),
                      "on_peer_disconnected")

    # ------------------------------------------------------------ for tests

    @property
    def _tasks(self) -> set[asyncio.Task[Any]]:
        return self._task_set.tasks

    @property
    def _inbound_by_host(self) -> Counter[str]:
        """Open inbound connections per remote host."""
        return self._server.limits.by_host

    @property
    def _handler(self) -> MessageHandler:
        return self._callbacks.handler

    @_handler.setter
    def _handler(self, handler: MessageHandler) -> None:
        self._callbacks.handler = handler

    @property
    def _handle_request(self) -> RequestHandler | None:
        return self._callbacks.handle_request

    @_handle_request.setter
    def _handle_request(self, handle_request: RequestHandler | None) -> None:
        self._callbacks.handle_request = handle_request

    def _disconnect(self, session: PeerSession, reason: str) -> None:
        session.close(reason)


def _validate_arguments(static_peers: list[str], server_ssl: ssl.SSLContext | None,
                        client_ssl: ssl.SSLContext | None,
                        tls_fingerprint: bytes | None) -> None:
    """Raise ValueError (or InvalidAddressError) for a network that cannot work."""
    if (server_ssl is None) != (client_ssl is None):
        raise ValueError("TLS needs both server_ssl and client_ssl, or neither")
    if server_ssl is not None and (tls_fingerprint is None or len(tls_fingerprint) != 32):
        raise ValueError("server_ssl needs the 32-byte SHA-256 tls_fingerprint")
    for address in static_peers:
        parse_address(address)
