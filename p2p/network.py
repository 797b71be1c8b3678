"""P2PNetwork: the aiohttp WebSocket server and dialer, one session per peer, gossip
with de-duplication, request/response, peer exchange, scoring and bans.

It moves frames and applies the node's verdicts; it never decodes or validates chain
objects and never mutates node state. Every task it starts is referenced and is
cancelled and awaited by `stop()`; every network await has a deadline. A peer's
misbehaviour costs the peer score and its connection, never the network.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chain.crypto import KeyPair
from p2p.errors import (
    ConnectError,
    ConnectionClosedError,
    DuplicatePeerError,
    FrameError,
    HandshakeError,
    MalformedFrameError,
    OversizedFrameError,
    P2PError,
    PeerBannedError,
    PeerNotAllowedError,
    PeerNotConnectedError,
    RequestRefusedError,
    RequestTimeoutError,
    SelfConnectionError,
    TooManyPeersError,
    UnknownMessageTypeError,
    WrongChainError,
    WrongGenesisError,
)
from p2p.frames import (
    DIRECT_TYPES,
    GOSSIP_TYPES,
    HANDSHAKE_TYPES,
    MAX_PEER_ADDRESSES,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    MessageType,
    compute_gossip_id,
    decode_frame,
    encode_frame,
)
from p2p.handshake import Hello, build_hello, run_handshake
from p2p.peers import (
    PENALTY_BAD_RESPONSE,
    PENALTY_MALFORMED_FRAME,
    PENALTY_OVERSIZED_FRAME,
    PENALTY_RATE_LIMITED,
    PENALTY_REJECTED_MESSAGE,
    PENALTY_REQUEST_TIMEOUT,
    PENALTY_UNKNOWN_TYPE,
    AddressBook,
    BanList,
    Direction,
    NetworkCounters,
    P2PConfig,
    PeerInfo,
    ScoreBook,
    SeenCache,
    TokenBucket,
    Verdict,
    format_address,
    is_unspecified_host,
    parse_address,
)
from p2p.transport import (
    NETWORK_ERRORS,
    InboundSlot,
    WebSocketChannel,
    WebSocketClient,
    WebSocketServer,
)

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, MessageType, Any], Awaitable[Verdict]]
"""`handle(peer_id, msg_type, payload) -> Verdict` for gossip (TX, PROPOSAL, VOTE) and
direct messages (STATUS); the verdict of a direct message only matters if REJECT."""
RequestHandler = Callable[[str, MessageType, Any], Awaitable[tuple[MessageType, Any] | None]]
"""`handle_request(peer_id, msg_type, payload) -> (type, payload) | None` answers
GET_STATUS, GET_BLOCKS and GET_VOTES; None answers ERROR "unavailable"."""
PeerConnected = Callable[[PeerInfo], Awaitable[None]]
PeerDisconnected = Callable[[str, str], Awaitable[None]]
"""`on_peer_disconnected(peer_id, reason)`."""

EXPECTED_RESPONSE = {
    MessageType.GET_STATUS: MessageType.STATUS,
    MessageType.GET_BLOCKS: MessageType.BLOCKS,
    MessageType.GET_VOTES: MessageType.VOTES,
    MessageType.PEERS_REQUEST: MessageType.PEERS,
    MessageType.PING: MessageType.PONG,
}
# Transaction gossip frames of one peer waiting for admission (its own lane, so that
# its votes and proposals overtake them); a full lane stops reading from that peer.
TX_LANE_FRAMES = 16
_TX_GOSSIP = frozenset({MessageType.TX, MessageType.TXS})


@dataclass(eq=False)
class _Peer:
    """The live state of one authenticated connection (owned by P2PNetwork)."""

    peer_id: str
    hello: Hello
    channel: WebSocketChannel
    direction: Direction
    address: str
    listen_address: str
    bucket: TokenBucket
    send_queue: asyncio.Queue[tuple[MessageType, bytes]]
    connected_since_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    bytes_in: int = 0
    bytes_out: int = 0
    status: tuple[int, int] | None = None
    closing_reason: str | None = None
    pending: dict[int, asyncio.Future[tuple[MessageType, Any]]] = field(default_factory=dict)
    request_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    inbound_requests: int = 0
    tx_lane: asyncio.Queue[tuple[MessageType, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=TX_LANE_FRAMES))
    """TX and TXS gossip from this peer, admitted in order by its own task."""


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
        if (server_ssl is None) != (client_ssl is None):
            raise ValueError("TLS needs both server_ssl and client_ssl, or neither")
        if server_ssl is not None and (tls_fingerprint is None or len(tls_fingerprint) != 32):
            raise ValueError("server_ssl needs the 32-byte SHA-256 tls_fingerprint")
        for address in static_peers:
            parse_address(address)
        self._key = node_key
        self._chain_id = chain_id
        self._genesis_hash = genesis_hash
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._static_peers = list(dict.fromkeys(static_peers))
        self._handler = handler
        self._handle_request = handle_request
        self._on_peer_connected = on_peer_connected
        self._on_peer_disconnected = on_peer_disconnected
        self._is_validator = is_validator
        self._config = config or P2PConfig()
        self._tls_fingerprint = tls_fingerprint or b""
        self._admission = admission

        self._peers: dict[str, _Peer] = {}
        self._handshaking: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialing: set[str] = set()
        self._self_addresses: set[str] = set()
        self._address_keys: dict[str, str] = {}
        self._seen = SeenCache(self._config.seen_cache_size)
        self._scores = ScoreBook(self._config.score_recovery_per_s)
        self._bans = BanList()
        self._book = AddressBook(self._config.max_dial_failures)
        self._bytes_in = 0
        self._bytes_out = 0
        self._messages_in: Counter[str] = Counter()
        self._messages_out: Counter[str] = Counter()
        self._gossip_duplicates = 0
        self._server = WebSocketServer(listen_host, listen_port, server_ssl, self._config,
                                       self._serve_inbound, self._spawn, lambda: self._running)
        self._client = WebSocketClient(self._config, client_ssl)
        self._bound_port: int | None = None
        self._running = False

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
        self._self_addresses.add(format_address(self._listen_host, self._bound_port))
        self._self_addresses.add(self.listen_address)
        log.info("p2p listening on %s as node %s", self.listen_address, self.node_id[:16])
        for address in self._static_peers:
            if address not in self._self_addresses:
                self._spawn(self._dial_static(address), f"dial {address}")
        if self._config.peer_exchange:
            self._spawn(self._peer_exchange_loop(), "peer exchange")

    def add_static_peer(self, address: str) -> None:
        """Dial `address` now and keep redialing it like a configured static peer."""
        parse_address(address)
        if address in self._static_peers or address in self._self_addresses:
            return
        self._static_peers.append(address)
        if self._running:
            self._spawn(self._dial_static(address), f"dial {address}")

    async def stop(self) -> None:
        """Close every connection, cancel and await every task, close the server."""
        if not self._running:
            return
        self._running = False
        for peer in list(self._peers.values()):
            peer.closing_reason = peer.closing_reason or "node stopping"
        await asyncio.gather(*(peer.channel.close(self._config.close_timeout_s)
                               for peer in list(self._peers.values())))
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.stop()
        await self._client.stop()
        log.info("p2p stopped")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"p2p {name}")
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("p2p task %s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------ queries

    @property
    def peer_count(self) -> int:
        """How many peers are connected now."""
        return len(self._peers)

    def peers(self) -> list[PeerInfo]:
        """A snapshot of every connected peer."""
        now = time.monotonic()
        return [self._peer_info(peer, now) for peer in self._peers.values()]

    def counters(self) -> NetworkCounters:
        """Traffic totals since start."""
        return NetworkCounters(
            bytes_in=self._bytes_in, bytes_out=self._bytes_out,
            messages_in=dict(self._messages_in), messages_out=dict(self._messages_out),
            gossip_duplicates=self._gossip_duplicates)

    def is_banned(self, node_id: str) -> bool:
        """Whether `node_id` (hex) is currently banned."""
        return self._bans.is_banned(node_id, time.monotonic())

    def penalize(self, peer_id: str, points: float, reason: str) -> None:
        """Lower a connected peer's score for a fault the node found (e.g. during sync);
        the peer is banned when its score reaches `ban_score`. No-op if it is gone."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            self._penalize(peer, points, reason)

    def _peer_info(self, peer: _Peer, now: float) -> PeerInfo:
        return PeerInfo(
            node_id=peer.peer_id, address=peer.address, listen_address=peer.listen_address,
            direction=peer.direction, is_validator=peer.hello.is_validator,
            score=self._scores.get(peer.peer_id, now), bytes_in=peer.bytes_in,
            bytes_out=peer.bytes_out, connected_since_ms=peer.connected_since_ms,
            status_height=peer.status[0] if peer.status else None,
            status_round=peer.status[1] if peer.status else None)

    # ------------------------------------------------------------ sending

    def broadcast(self, msg_type: MessageType, payload: Any, exclude: str | None = None) -> int:
        """Send a gossip (TX, PROPOSAL, VOTE) or direct (STATUS) message to every peer
        but `exclude`; return how many peers it was queued for. Gossip we send is marked
        seen, so it is not delivered back to our handler when a peer relays it."""
        if msg_type not in GOSSIP_TYPES and msg_type not in DIRECT_TYPES:
            raise ValueError(f"{msg_type.name} cannot be broadcast")
        if not any(peer_id != exclude for peer_id in self._peers):
            # Nobody to tell (a single node): skip the encoding. Nothing we did not send
            # can come back to us as our own gossip.
            return 0
        data = encode_frame(msg_type, 0, payload)
        if msg_type in GOSSIP_TYPES:
            self._seen.add(compute_gossip_id(msg_type, payload))
        return self._send_to_all(msg_type, data, exclude)

    def send(self, peer_id: str, msg_type: MessageType, payload: Any) -> None:
        """Send a gossip or direct message to one peer; raises PeerNotConnectedError."""
        if msg_type not in GOSSIP_TYPES and msg_type not in DIRECT_TYPES:
            raise ValueError(f"{msg_type.name} cannot be sent outside a request")
        peer = self._get_peer(peer_id)
        data = encode_frame(msg_type, 0, payload)
        if msg_type in GOSSIP_TYPES:
            self._seen.add(compute_gossip_id(msg_type, payload))
        self._enqueue(peer, msg_type, data)

    async def request(self, peer_id: str, msg_type: MessageType, payload: Any,
                      timeout_s: float | None = None) -> tuple[MessageType, Any]:
        """Send a request and await its answer: (type, payload), type as EXPECTED_RESPONSE.

        Raises PeerNotConnectedError, RequestTimeoutError (the peer is penalized),
        RequestRefusedError (the peer answered ERROR) or MalformedFrameError (a wrong
        answer type; the peer is penalized).
        """
        if msg_type not in REQUEST_TYPES:
            raise ValueError(f"{msg_type.name} is not a request type")
        peer = self._get_peer(peer_id)
        request_id = next(peer.request_ids)
        data = encode_frame(msg_type, request_id, payload)
        future: asyncio.Future[tuple[MessageType, Any]] = \
            asyncio.get_running_loop().create_future()
        peer.pending[request_id] = future
        timeout_s = self._config.request_timeout_s if timeout_s is None else timeout_s
        try:
            self._enqueue(peer, msg_type, data)
            async with asyncio.timeout(timeout_s):
                answer_type, answer = await future
        except TimeoutError:
            self._penalize(peer, PENALTY_REQUEST_TIMEOUT,
                           f"no answer to {msg_type.name} within {timeout_s} s")
            raise RequestTimeoutError(
                f"peer {peer_id[:16]} did not answer {msg_type.name} within {timeout_s} s"
            ) from None
        finally:
            peer.pending.pop(request_id, None)
        if answer_type == MessageType.ERROR:
            raise RequestRefusedError(answer[0], answer[1])
        if answer_type != EXPECTED_RESPONSE[msg_type]:
            self._penalize(peer, PENALTY_BAD_RESPONSE,
                           f"answered {msg_type.name} with {answer_type.name}")
            raise MalformedFrameError(
                f"peer {peer_id[:16]} answered {msg_type.name} with {answer_type.name}")
        return answer_type, answer

    def _get_peer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None or peer.closing_reason is not None:
            raise PeerNotConnectedError(f"peer {peer_id[:16]} is not connected")
        return peer

    def _send_to_all(self, msg_type: MessageType, data: bytes, exclude: str | None) -> int:
        count = 0
        for peer in list(self._peers.values()):
            if peer.peer_id != exclude and self._enqueue(peer, msg_type, data):
                count += 1
        return count

    def _enqueue(self, peer: _Peer, msg_type: MessageType, data: bytes) -> bool:
        if peer.closing_reason is not None:
            return False
        try:
            peer.send_queue.put_nowait((msg_type, data))
        except asyncio.QueueFull:
            log.warning("dropping peer %s: its send queue is full (%d frames; too slow)",
                        peer.peer_id[:16], self._config.send_queue_frames)
            self._disconnect(peer, "send queue full")
            return False
        return True

    async def _write_loop(self, peer: _Peer) -> None:
        while True:
            msg_type, data = await peer.send_queue.get()
            try:
                await peer.channel.send(data)
            except (TimeoutError, *NETWORK_ERRORS) as e:
                self._disconnect(peer, f"send failed: {e!r}")
                return
            peer.bytes_out += len(data)
            self._bytes_out += len(data)
            self._messages_out[msg_type.name] += 1

    # ------------------------------------------------------------ connecting

    async def connect(self, address: str) -> str:
        """Dial `address` once and run the peer in the background; return its peer id.

        Raises InvalidAddressError, ConnectError or a HandshakeError.
        """
        peer = await self._connect(address)
        self._spawn(self._run_peer(peer), f"peer {peer.peer_id[:16]}")
        return peer.peer_id

    async def _connect(self, address: str) -> _Peer:
        channel, binding = await self._client.connect(address)
        try:
            return await self._handshake(channel, Direction.OUTBOUND, address, address,
                                         binding)
        except BaseException:
            await channel.close(self._config.close_timeout_s)
            raise

    @property
    def _inbound_by_host(self) -> Counter[str]:
        """Open inbound connections per remote host."""
        return self._server.limits.by_host

    async def _serve_inbound(self, channel: WebSocketChannel, address: str,
                             slot: InboundSlot) -> None:
        try:
            peer = await self._handshake(channel, Direction.INBOUND, address, None,
                                         self._tls_fingerprint)
        except (P2PError, *NETWORK_ERRORS) as e:
            self._log_handshake_failure(address, e)
            await channel.close(self._config.close_timeout_s)
            return
        finally:
            slot.release_pending()
        await self._run_peer(peer)

    async def _handshake(self, channel: WebSocketChannel, direction: Direction,
                         address: str, dialed: str | None, channel_binding: bytes) -> _Peer:
        """Run the handshake and register the peer; no await after the handshake.

        `channel_binding` is the server certificate's fingerprint under TLS (b"" in
        plain text); both sides sign it, so it must be the same at both ends."""
        local = build_hello(self._key, self._chain_id, self._genesis_hash,
                            self.listen_address, self._is_validator)
        reserved: list[str] = []

        def check_peer(hello: Hello) -> None:
            peer_id = hello.node_key.hex()
            if dialed is not None:
                # What the address we chose to dial says it is; an inbound peer's
                # advertised address is never trusted for this.
                self._address_keys[dialed] = peer_id
            self._check_admission(peer_id)
            self._handshaking.add(peer_id)
            reserved.append(peer_id)

        try:
            hello = await run_handshake(channel, self._key, local, check_peer,
                                        self._config.handshake_timeout_s,
                                        channel_binding=channel_binding)
        except ConnectionClosedError as e:
            raise ConnectError(f"{address} closed the connection in the handshake") from e
        finally:
            for peer_id in reserved:
                self._handshaking.discard(peer_id)
        peer_id = hello.node_key.hex()
        if not self._running:
            raise ConnectError("node stopping")
        listen_address = self._compute_listen_address(hello, address, dialed)
        peer = _Peer(
            peer_id=peer_id, hello=hello, channel=channel, direction=direction,
            address=address, listen_address=listen_address,
            bucket=TokenBucket(self._config.rate_limit_per_s, self._config.rate_limit_burst,
                               time.monotonic()),
            send_queue=asyncio.Queue(maxsize=self._config.send_queue_frames))
        self._peers[peer_id] = peer
        if listen_address:
            self._book.record_success(listen_address)
        return peer

    def _check_admission(self, peer_id: str) -> None:
        """Our policy on a peer that passed chain checks; raises a HandshakeError."""
        allowed = self._config.allowed_keys
        if allowed is not None and bytes.fromhex(peer_id) not in allowed:
            raise PeerNotAllowedError(f"node key {peer_id[:16]} is not in the allow-list")
        if self._admission is not None and not self._admission(bytes.fromhex(peer_id)):
            raise PeerNotAllowedError(
                f"node key {peer_id[:16]} is neither a validator nor in the allow-list")
        if self._bans.is_banned(peer_id, time.monotonic()):
            raise PeerBannedError(f"node key {peer_id[:16]} is banned")
        if peer_id in self._peers or peer_id in self._handshaking:
            raise DuplicatePeerError(f"node {peer_id[:16]} is already connected")
        if len(self._peers) + len(self._handshaking) >= self._config.max_peers \
                and not self._is_static_key(peer_id):
            # Static peers (our validators) always get in: strangers that fill every
            # slot must not cut a node off from the peers it was configured with.
            raise TooManyPeersError(f"already {self._config.max_peers} peers")

    def _is_static_key(self, peer_id: str) -> bool:
        return any(self._address_keys.get(address) == peer_id for address in self._static_peers)

    @staticmethod
    def _compute_listen_address(hello: Hello, address: str, dialed: str | None) -> str:
        """Where the peer can be dialed: the address we dialed, or what it advertises
        with an unspecified host (0.0.0.0) replaced by the address it came from."""
        if dialed is not None:
            return dialed
        try:
            host, port = parse_address(hello.listen_address)
        except P2PError:
            return ""
        if is_unspecified_host(host):
            try:
                host = parse_address(address)[0]
            except P2PError:
                return ""
        return format_address(host, port)

    def _log_handshake_failure(self, address: str, error: BaseException) -> None:
        if isinstance(error, WrongChainError | WrongGenesisError | PeerNotAllowedError):
            log.warning("refused peer %s: %s", address, error)
        elif isinstance(error, HandshakeError):
            log.info("handshake with %s failed (%s): %s", address,
                     getattr(error, "code", "?"), error)
        else:
            log.info("handshake with %s failed: %r", address, error)

    async def _dial_static(self, address: str) -> None:
        """Keep a connection to a static peer: redial with capped exponential backoff."""
        backoff = self._config.backoff_min_s
        while self._running:
            known = self._address_keys.get(address)
            if (known is not None and known in self._peers) \
                    or self._bans.is_banned(address, time.monotonic()):
                await asyncio.sleep(self._config.backoff_max_s)
                continue
            try:
                peer = await self._connect(address)
            except SelfConnectionError:
                log.info("static peer %s is this node; not dialing it", address)
                self._self_addresses.add(address)
                return
            except P2PError as e:
                if isinstance(e, DuplicatePeerError | HandshakeError):
                    self._log_handshake_failure(address, e)
                else:
                    log.debug("dial %s failed: %s", address, e)
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self._config.backoff_max_s)
                continue
            connected_at = time.monotonic()
            await self._run_peer(peer)
            if time.monotonic() - connected_at > self._config.backoff_max_s:
                backoff = self._config.backoff_min_s
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._config.backoff_max_s)

    async def _dial_discovered(self, address: str) -> None:
        try:
            await self.connect(address)
        except SelfConnectionError:
            self._self_addresses.add(address)
        except P2PError as e:
            log.debug("dial of discovered %s failed: %s", address, e)
            self._book.record_failure(address)
        finally:
            self._dialing.discard(address)

    # ------------------------------------------------------------ peer exchange

    async def _peer_exchange_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.peer_exchange_interval_s)
            for peer_id in list(self._peers)[:8]:
                await self._exchange_peers(peer_id)
            self._dial_candidates()

    async def _exchange_peers(self, peer_id: str) -> None:
        try:
            _, addresses = await self.request(peer_id, MessageType.PEERS_REQUEST, None)
        except P2PError as e:
            log.debug("peer exchange with %s failed: %s", peer_id[:16], e)
            return
        for address in addresses:
            self._book.add(address)

    def _dial_candidates(self) -> None:
        now = time.monotonic()
        connected = {peer.listen_address for peer in self._peers.values()}
        for address in self._book.addresses():
            if len(self._peers) + len(self._dialing) >= self._config.max_peers:
                return
            known = self._address_keys.get(address)
            if (address in connected or address in self._dialing
                    or address in self._self_addresses or address in self._static_peers
                    or (known is not None and known in self._peers)
                    or self._bans.is_banned(address, now)):
                continue
            self._dialing.add(address)
            self._spawn(self._dial_discovered(address), f"dial {address}")

    def _peer_addresses(self, exclude: _Peer) -> list[str]:
        return [peer.listen_address for peer in self._peers.values()
                if peer is not exclude and peer.listen_address][:MAX_PEER_ADDRESSES]

    async def _on_connected_exchange(self, peer_id: str) -> None:
        await self._exchange_peers(peer_id)
        self._dial_candidates()

    # ------------------------------------------------------------ one peer

    async def _run_peer(self, peer: _Peer) -> None:
        """Serve one registered peer until it goes; always unregisters it."""
        log.info("peer %s connected (%s, %s)", peer.peer_id[:16], peer.direction.value,
                 peer.address)
        writer = self._spawn(self._write_loop(peer), f"writer {peer.peer_id[:16]}")
        tx_lane = self._spawn(self._tx_lane_loop(peer), f"tx lane {peer.peer_id[:16]}")
        if self._on_peer_connected is not None:
            self._spawn(self._call_callback(self._on_peer_connected(
                self._peer_info(peer, time.monotonic()))), "on_peer_connected")
        if self._config.peer_exchange:
            self._spawn(self._on_connected_exchange(peer.peer_id), "peer exchange")
        try:
            await self._read_loop(peer)
        finally:
            reason = peer.closing_reason or "connection closed"
            peer.closing_reason = reason
            if self._peers.get(peer.peer_id) is peer:
                del self._peers[peer.peer_id]
            writer.cancel()
            tx_lane.cancel()
            for future in peer.pending.values():
                if not future.done():
                    future.set_exception(PeerNotConnectedError(
                        f"peer {peer.peer_id[:16]} disconnected: {reason}"))
            await peer.channel.close(self._config.close_timeout_s)
            log.info("peer %s disconnected: %s", peer.peer_id[:16], reason)
            if self._on_peer_disconnected is not None and self._running:
                self._spawn(self._call_callback(
                    self._on_peer_disconnected(peer.peer_id, reason)), "on_peer_disconnected")

    async def _call_callback(self, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("p2p peer callback failed")

    def disconnect(self, peer_id: str, reason: str = "disconnected by the operator") -> bool:
        """Close the session with `peer_id`; False if it is not connected.

        A static peer is dialled again by its dial loop; a discovered one is not.
        """
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        self._disconnect(peer, reason)
        return True

    def _disconnect(self, peer: _Peer, reason: str) -> None:
        """Ask a peer's session to end; the read loop sees the close and cleans up."""
        if peer.closing_reason is not None:
            return
        peer.closing_reason = reason
        self._spawn(peer.channel.close(self._config.close_timeout_s),
                    f"close {peer.peer_id[:16]}")

    async def _read_loop(self, peer: _Peer) -> None:
        idle_periods = 0
        while peer.closing_reason is None:
            try:
                data = await peer.channel.receive(self._config.idle_timeout_s)
            except TimeoutError:
                idle_periods += 1
                if idle_periods >= 2:
                    peer.closing_reason = "idle: no frame and no PONG"
                    return
                self._enqueue(peer, MessageType.PING, encode_frame(
                    MessageType.PING, next(peer.request_ids), secrets.token_bytes(8)))
                continue
            except ConnectionClosedError as e:
                peer.closing_reason = peer.closing_reason or f"closed by peer ({e})"
                return
            except FrameError as e:
                self._on_frame_error(peer, e)
                peer.closing_reason = peer.closing_reason or f"{e.code}: {e}"
                return
            idle_periods = 0
            peer.bytes_in += len(data)
            self._bytes_in += len(data)
            try:
                frame = decode_frame(data)
            except FrameError as e:
                self._on_frame_error(peer, e)
                continue
            self._messages_in[frame.msg_type.name] += 1
            if not peer.bucket.take(time.monotonic()):
                self._penalize(peer, PENALTY_RATE_LIMITED, "inbound rate limit exceeded")
                continue
            if frame.msg_type in _TX_GOSSIP and frame.request_id == 0:
                # Admitting transactions waits for their signatures to be verified: in
                # this loop it held up the peer's votes and proposals behind it.
                await peer.tx_lane.put((frame.msg_type, frame.payload))
                continue
            await self._dispatch(peer, frame.msg_type, frame.request_id, frame.payload)

    async def _tx_lane_loop(self, peer: _Peer) -> None:
        """Admit one peer's transaction gossip in arrival order, beside its read loop."""
        while True:
            msg_type, payload = await peer.tx_lane.get()
            await self._on_gossip(peer, msg_type, payload)

    def _on_frame_error(self, peer: _Peer, error: FrameError) -> None:
        if isinstance(error, OversizedFrameError):
            points = PENALTY_OVERSIZED_FRAME
        elif isinstance(error, UnknownMessageTypeError):
            points = PENALTY_UNKNOWN_TYPE
        else:
            points = PENALTY_MALFORMED_FRAME
        self._penalize(peer, points, f"{error.code}: {error}")

    def _penalize(self, peer: _Peer, points: float, reason: str) -> None:
        now = time.monotonic()
        score = self._scores.penalize(peer.peer_id, points, now)
        log.warning("peer %s (%s) penalized %g points, score %g: %s",
                    peer.peer_id[:16], peer.address, points, score, reason)
        if score <= self._config.ban_score:
            until = now + self._config.ban_duration_s
            self._bans.ban([peer.peer_id, peer.listen_address], until)
            log.warning("banning peer %s (%s) for %g s: %s", peer.peer_id[:16],
                        peer.listen_address or peer.address, self._config.ban_duration_s,
                        reason)
            self._disconnect(peer, f"banned: {reason}")

    # ------------------------------------------------------------ dispatch

    async def _dispatch(self, peer: _Peer, msg_type: MessageType, request_id: int,
                        payload: Any) -> None:
        if msg_type in HANDSHAKE_TYPES and request_id == 0:
            if msg_type == MessageType.ERROR:
                code, message = payload
                self._disconnect(peer, f"peer closed the session ({code}): {message}")
            else:
                self._penalize(peer, PENALTY_MALFORMED_FRAME,
                               f"{msg_type.name} after the handshake")
        elif request_id == 0:
            if msg_type in GOSSIP_TYPES:
                await self._on_gossip(peer, msg_type, payload)
            elif msg_type in DIRECT_TYPES:
                await self._on_direct(peer, msg_type, payload)
            else:
                self._penalize(peer, PENALTY_MALFORMED_FRAME,
                               f"{msg_type.name} without a request id")
        elif msg_type in REQUEST_TYPES:
            self._on_request(peer, msg_type, request_id, payload)
        elif msg_type in RESPONSE_TYPES:
            future = peer.pending.get(request_id)
            if future is not None and not future.done():
                future.set_result((msg_type, payload))
            # Otherwise a late answer to a request that timed out: already penalized.
        else:
            self._penalize(peer, PENALTY_MALFORMED_FRAME,
                           f"{msg_type.name} with a request id")

    async def _on_gossip(self, peer: _Peer, msg_type: MessageType, payload: Any) -> None:
        gossip_id = compute_gossip_id(msg_type, payload)
        if not self._seen.add(gossip_id):
            self._gossip_duplicates += 1
            return
        verdict = await self._call_handler(peer, msg_type, payload)
        if verdict is Verdict.ACCEPT:
            data = encode_frame(msg_type, 0, payload)
            self._send_to_all(msg_type, data, exclude=peer.peer_id)
        elif verdict is Verdict.IGNORE:
            # Not useful now, maybe later (a vote for a future round): let it in again.
            self._seen.discard(gossip_id)
        else:
            self._penalize(peer, PENALTY_REJECTED_MESSAGE, f"sent an invalid {msg_type.name}")

    async def _on_direct(self, peer: _Peer, msg_type: MessageType, payload: Any) -> None:
        if msg_type == MessageType.PEERS:
            for address in payload:
                self._book.add(address)
            return
        if msg_type == MessageType.STATUS:
            peer.status = (payload[0], payload[1])
        verdict = await self._call_handler(peer, msg_type, payload)
        if verdict is Verdict.REJECT:
            self._penalize(peer, PENALTY_REJECTED_MESSAGE, f"sent an invalid {msg_type.name}")

    async def _call_handler(self, peer: _Peer, msg_type: MessageType,
                            payload: Any) -> Verdict:
        try:
            verdict = await self._handler(peer.peer_id, msg_type, payload)
        except Exception:
            log.exception("message handler failed on %s from %s", msg_type.name,
                          peer.peer_id[:16])
            return Verdict.IGNORE
        assert isinstance(verdict, Verdict), f"handler returned {verdict!r}, not a Verdict"
        return verdict

    def _on_request(self, peer: _Peer, msg_type: MessageType, request_id: int,
                    payload: Any) -> None:
        if msg_type == MessageType.PING:
            self._answer(peer, MessageType.PONG, request_id, payload)
        elif msg_type == MessageType.PEERS_REQUEST:
            self._answer(peer, MessageType.PEERS, request_id, self._peer_addresses(peer))
        elif self._handle_request is None:
            self._answer(peer, MessageType.ERROR, request_id,
                         ["unsupported", f"{msg_type.name} is not served by this node"])
        elif peer.inbound_requests >= self._config.max_inbound_requests:
            self._answer(peer, MessageType.ERROR, request_id,
                         ["busy", f"more than {self._config.max_inbound_requests} requests"
                                  " in flight"])
        else:
            peer.inbound_requests += 1
            self._spawn(self._serve_request(peer, msg_type, request_id, payload),
                        f"request {msg_type.name}")

    async def _serve_request(self, peer: _Peer, msg_type: MessageType, request_id: int,
                             payload: Any) -> None:
        assert self._handle_request is not None
        try:
            answer = await self._handle_request(peer.peer_id, msg_type, payload)
        except Exception:
            log.exception("request handler failed on %s from %s", msg_type.name,
                          peer.peer_id[:16])
            answer = (MessageType.ERROR, ["internal", "the node failed to answer"])
        finally:
            peer.inbound_requests -= 1
        if answer is None:
            answer = (MessageType.ERROR, ["unavailable", f"no answer to {msg_type.name}"])
        answer_type, answer_payload = answer
        if answer_type not in (EXPECTED_RESPONSE[msg_type], MessageType.ERROR):
            log.error("request handler answered %s with %s; sending ERROR",
                      msg_type.name, answer_type.name)
            answer_type, answer_payload = MessageType.ERROR, ["internal", "bad answer type"]
        self._answer(peer, answer_type, request_id, answer_payload)

    def _answer(self, peer: _Peer, msg_type: MessageType, request_id: int,
                payload: Any) -> None:
        try:
            data = encode_frame(msg_type, request_id, payload)
        except FrameError as e:
            log.error("cannot encode %s answer for %s: %s", msg_type.name,
                      peer.peer_id[:16], e)
            data = encode_frame(MessageType.ERROR, request_id,
                                ["internal", "answer exceeds protocol limits"])
            msg_type = MessageType.ERROR
        self._enqueue(peer, msg_type, data)
