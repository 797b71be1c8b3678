"""Outbound connections: static peers kept connected with capped, jittered exponential
backoff; addresses learned by peer exchange dialed while slots are free; and the
exchange itself.

It never accepts connections and never admits a peer on its own: every dial goes
through the transport and the handshake's admission. Clock, sleep and jitter are
injected, so the backoff runs in tests without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from p2p.admission import log_handshake_failure
from p2p.errors import DuplicatePeerError, HandshakeError, P2PError, SelfConnectionError
from p2p.frames import MessageType
from p2p.peers import AddressBook, DialedKeys, P2PConfig
from p2p.scoring import Scoring
from p2p.session import Answer, PeerSession, PeerTable
from p2p.tasks import Spawn

log = logging.getLogger(__name__)

# Peers asked for their peers on each round of peer exchange.
EXCHANGE_FANOUT = 8

Connect = Callable[[str], Awaitable[PeerSession]]
"""`connect(address) -> session`: dial, handshake and register; raises P2PError."""
RunSession = Callable[[PeerSession], Coroutine[Any, Any, None]]
"""`run(session)`: serve a registered session until it ends."""


def jitter() -> float:
    """±20 %, so that nodes restarted together do not redial in step."""
    return random.uniform(0.8, 1.2)


class Backoff:
    """Redial delay: `min_s` doubling to `max_s`, each delay jittered; reset after a
    connection that lasted longer than `max_s`."""

    def __init__(self, min_s: float, max_s: float,
                 jitter: Callable[[], float] = jitter) -> None:
        self._min_s = min_s
        self._max_s = max_s
        self._jitter = jitter
        self._next_s = min_s

    def next_delay_s(self) -> float:
        """The delay before the next dial; the one after is twice as long (capped)."""
        delay_s = self._next_s * self._jitter()
        self._next_s = min(self._next_s * 2, self._max_s)
        return delay_s

    def on_session_ended(self, connected_at: float, now: float) -> None:
        if now - connected_at > self._max_s:
            self._next_s = self._min_s


class Dialer:
    """Keeps our static peers connected and dials discovered addresses."""

    def __init__(self, config: P2PConfig, dialed: DialedKeys, table: PeerTable,
                 scoring: Scoring, book: AddressBook, connect: Connect,
                 run_session: RunSession, spawn: Spawn, is_running: Callable[[], bool], *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 jitter: Callable[[], float] = jitter) -> None:
        self._config = config
        self._dialed = dialed
        self._table = table
        self._scoring = scoring
        self._book = book
        self._connect = connect
        self._run_session = run_session
        self._spawn = spawn
        self._is_running = is_running
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self.self_addresses: set[str] = set()
        """Addresses that turned out to be this node: never dialed."""
        self._dialing: set[str] = set()
        """Discovered addresses being dialed now."""

    def start(self) -> None:
        for address in self._dialed.static_peers:
            if address not in self.self_addresses:
                self._spawn(self.keep_connected(address), f"dial {address}")

    def add_static_peer(self, address: str) -> None:
        """Make `address` a static peer, dialed now if the network runs."""
        if address in self.self_addresses or not self._dialed.add_static(address):
            return
        if self._is_running():
            self._spawn(self.keep_connected(address), f"dial {address}")

    async def keep_connected(self, address: str) -> None:
        """Keep a connection to a static peer: redial with capped exponential backoff."""
        backoff = Backoff(self._config.backoff_min_s, self._config.backoff_max_s,
                          self._jitter)
        while self._is_running():
            if self._is_connected(address) or self._scoring.is_banned(address):
                await self._sleep(self._config.backoff_max_s)
                continue
            try:
                session = await self._connect(address)
            except SelfConnectionError:
                log.info("static peer %s is this node; not dialing it", address)
                self.self_addresses.add(address)
                return
            except P2PError as e:
                _log_dial_failure(address, e)
                await self._sleep(backoff.next_delay_s())
                continue
            connected_at = self._clock()
            await self._run_session(session)
            backoff.on_session_ended(connected_at, self._clock())
            await self._sleep(backoff.next_delay_s())

    def _is_connected(self, address: str) -> bool:
        """Whether the node that answered at `address` last time is connected now."""
        known = self._dialed.get_key(address)
        return known is not None and known in self._table

    def dial_candidates(self) -> None:
        """Dial discovered addresses while we have fewer than `max_peers` peers."""
        connected = {session.listen_address for session in self._table.values()}
        for address in self._book.addresses():
            if len(self._table) + len(self._dialing) >= self._config.max_peers:
                return
            if (address in connected or address in self._dialing
                    or address in self.self_addresses or self._dialed.is_static(address)
                    or self._is_connected(address) or self._scoring.is_banned(address)):
                continue
            self._dialing.add(address)
            self._spawn(self._dial_discovered(address), f"dial {address}")

    async def _dial_discovered(self, address: str) -> None:
        try:
            session = await self._connect(address)
        except SelfConnectionError:
            self.self_addresses.add(address)
        except P2PError as e:
            log.debug("dial of discovered %s failed: %s", address, e)
            self._book.record_failure(address)
        else:
            self._spawn(self._run_session(session), f"peer {session.short_id}")
        finally:
            self._dialing.discard(address)


def _log_dial_failure(address: str, error: P2PError) -> None:
    if isinstance(error, DuplicatePeerError | HandshakeError):
        log_handshake_failure(address, error)
    else:
        log.debug("dial %s failed: %s", address, error)


Request = Callable[[str, MessageType, Any], Awaitable[Answer]]
"""`request(peer_id, msg_type, payload) -> (type, payload)`; raises P2PError."""


class PeerExchange:
    """Asks peers for their peers (on connect and every interval) and dials them."""

    def __init__(self, config: P2PConfig, table: PeerTable, book: AddressBook,
                 dialer: Dialer, request: Request) -> None:
        self._config = config
        self._table = table
        self._book = book
        self._dialer = dialer
        self._request = request

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._config.peer_exchange_interval_s)
            for peer_id in list(self._table)[:EXCHANGE_FANOUT]:
                await self._exchange(peer_id)
            self._dialer.dial_candidates()

    async def on_connected(self, peer_id: str) -> None:
        await self._exchange(peer_id)
        self._dialer.dial_candidates()

    async def _exchange(self, peer_id: str) -> None:
        try:
            _, addresses = await self._request(peer_id, MessageType.PEERS_REQUEST, None)
        except P2PError as e:
            log.debug("peer exchange with %s failed: %s", peer_id[:16], e)
            return
        for address in addresses:
            self._book.add(address)
