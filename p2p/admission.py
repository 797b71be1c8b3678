"""Admission: the handshake over a fresh channel, our policy on the key the peer
proves (allow-list, closed network, bans, duplicates, capacity), and its registration
as a session.

It never reads a frame after the handshake and never lets a refused peer into the
table; no await separates the handshake's end from the registration, so two
connections of one node cannot both get in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from chain.crypto import KeyPair
from p2p.errors import (
    ConnectError,
    ConnectionClosedError,
    DuplicatePeerError,
    HandshakeError,
    P2PError,
    PeerBannedError,
    PeerNotAllowedError,
    TooManyPeersError,
    WrongChainError,
    WrongGenesisError,
)
from p2p.handshake import Hello, build_hello, run_handshake
from p2p.peers import (
    AddressBook,
    DialedKeys,
    Direction,
    format_address,
    is_unspecified_host,
    parse_address,
)
from p2p.session import PeerSession, SessionContext
from p2p.transport import NETWORK_ERRORS, InboundSlot, WebSocketChannel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalNode:
    """Who we are in every handshake."""

    key: KeyPair
    """Our node key; its public key in hex is our peer id."""
    chain_id: str
    genesis_hash: bytes
    is_validator: bool
    tls_fingerprint: bytes
    """SHA-256 of our TLS certificate, the binding of inbound links (b"" in plain text)."""


class Admission:
    """Turns an open channel into a registered session, or refuses it."""

    def __init__(self, local: LocalNode, listen_address: Callable[[], str],
                 context: SessionContext, dialed: DialedKeys, book: AddressBook,
                 policy: Callable[[bytes], bool] | None,
                 is_running: Callable[[], bool]) -> None:
        """`policy(node_key)` is the node's extra rule (closed network): False refuses
        the key as not allowed."""
        self._local = local
        self._listen_address = listen_address
        self._context = context
        self._dialed = dialed
        self._book = book
        self._policy = policy
        self._is_running = is_running
        self._handshaking: set[str] = set()
        """Peer ids in a handshake now: they count as connected for duplicates."""

    async def open_outbound(self, channel: WebSocketChannel, address: str,
                            binding: bytes) -> PeerSession:
        """Handshake on a channel we dialed; raises ConnectError or a HandshakeError."""
        try:
            return await self._open(channel, Direction.OUTBOUND, address, address, binding)
        except BaseException:
            await channel.close(self._context.config.close_timeout_s)
            raise

    async def open_inbound(self, channel: WebSocketChannel, address: str,
                           slot: InboundSlot) -> PeerSession | None:
        """Handshake on a channel a peer opened; None (logged, closed) if it failed."""
        try:
            return await self._open(channel, Direction.INBOUND, address, None,
                                    self._local.tls_fingerprint)
        except (P2PError, *NETWORK_ERRORS) as e:
            log_handshake_failure(address, e)
            await channel.close(self._context.config.close_timeout_s)
            return None
        finally:
            slot.release_pending()

    async def _open(self, channel: WebSocketChannel, direction: Direction, address: str,
                    dialed: str | None, channel_binding: bytes) -> PeerSession:
        """Run the handshake and register the peer; no await after the handshake.

        `channel_binding` is the server certificate's fingerprint under TLS (b"" in
        plain text); both sides sign it, so it must be the same at both ends."""
        local = self._local
        hello = build_hello(local.key, local.chain_id, local.genesis_hash,
                            self._listen_address(), local.is_validator)
        reserved: list[str] = []

        def check_peer(peer: Hello) -> None:
            peer_id = peer.node_key.hex()
            if dialed is not None:
                self._dialed.record(dialed, peer_id)
            self._check_admission(peer_id)
            self._handshaking.add(peer_id)
            reserved.append(peer_id)

        try:
            peer = await run_handshake(channel, local.key, hello, check_peer,
                                       self._context.config.handshake_timeout_s,
                                       channel_binding=channel_binding)
        except ConnectionClosedError as e:
            raise ConnectError(f"{address} closed the connection in the handshake") from e
        finally:
            for peer_id in reserved:
                self._handshaking.discard(peer_id)
        if not self._is_running():
            raise ConnectError("node stopping")
        return self._register(peer, channel, direction, address, dialed)

    def _register(self, peer: Hello, channel: WebSocketChannel, direction: Direction,
                  address: str, dialed: str | None) -> PeerSession:
        listen_address = compute_listen_address(peer, address, dialed)
        session = PeerSession(peer, channel, direction, address, listen_address,
                              self._context)
        self._context.table.add(session)
        if listen_address:
            self._book.record_success(listen_address)
        return session

    def _check_admission(self, peer_id: str) -> None:
        """Our policy on a peer that passed chain checks; raises a HandshakeError."""
        config, table = self._context.config, self._context.table
        allowed = config.allowed_keys
        if allowed is not None and bytes.fromhex(peer_id) not in allowed:
            raise PeerNotAllowedError(f"node key {peer_id[:16]} is not in the allow-list")
        if self._policy is not None and not self._policy(bytes.fromhex(peer_id)):
            raise PeerNotAllowedError(
                f"node key {peer_id[:16]} is neither a validator nor in the allow-list")
        if self._context.scoring.is_banned(peer_id):
            raise PeerBannedError(f"node key {peer_id[:16]} is banned")
        if peer_id in table or peer_id in self._handshaking:
            raise DuplicatePeerError(f"node {peer_id[:16]} is already connected")
        if len(table) + len(self._handshaking) >= config.max_peers \
                and not self._dialed.is_static_key(peer_id):
            # Static peers (our validators) always get in: strangers that fill every
            # slot must not cut a node off from the peers it was configured with.
            raise TooManyPeersError(f"already {config.max_peers} peers")


def compute_listen_address(hello: Hello, address: str, dialed: str | None) -> str:
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


def log_handshake_failure(address: str, error: BaseException) -> None:
    if isinstance(error, WrongChainError | WrongGenesisError | PeerNotAllowedError):
        log.warning("refused peer %s: %s", address, error)
    elif isinstance(error, HandshakeError):
        log.info("handshake with %s failed (%s): %s", address,
                 getattr(error, "code", "?"), error)
    else:
        log.info("handshake with %s failed: %r", address, error)
