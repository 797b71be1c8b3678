"""Peer bookkeeping: configuration, verdicts, peer info, scores, bans, rate limits,
the gossip "seen" set, the address book and the keys found at dialed addresses.

Plain data structures with an explicit `now` (monotonic seconds) passed in: no I/O,
no asyncio, no clock reads, so each rule can be tested on its own. They never touch
sockets; the network applies what they decide.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from p2p.errors import InvalidAddressError


class Verdict(Enum):
    """What the node's handler decided about a gossiped message."""

    ACCEPT = "accept"  # valid and new: the network relays it to the other peers
    IGNORE = "ignore"  # not useful now (old, future, duplicate by content): no relay
    REJECT = "reject"  # invalid: no relay, and the sender is penalized


class Direction(Enum):
    """Who opened the connection."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


# Score penalties (points subtracted); a peer at or below `ban_score` is banned.
PENALTY_MALFORMED_FRAME = 25
PENALTY_OVERSIZED_FRAME = 50
PENALTY_UNKNOWN_TYPE = 25
PENALTY_REJECTED_MESSAGE = 20
PENALTY_REQUEST_TIMEOUT = 10
PENALTY_RATE_LIMITED = 10
PENALTY_BAD_RESPONSE = 25
PENALTY_WITHHELD_BLOCKS = 5
"""A peer that says it is ahead but answers GET_BLOCKS with nothing (it may have just
restarted, so the penalty is small; a peer that keeps doing it is banned in time)."""
PENALTY_BAD_BLOCK = 25
"""A synced block that fails its certificate or does not decode."""


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """Limits and timings of the p2p network. Defaults suit a production validator."""

    max_peers: int = 32
    """Most connected peers (inbound and outbound); more are refused in the handshake,
    except static peers (known by the key they answered with when dialed)."""
    allowed_keys: frozenset[bytes] | None = None
    """Node public keys allowed to connect (closed network); None allows any key."""
    advertise_address: str | None = None
    """host:port sent to peers as ours; defaults to listen host and bound port."""
    handshake_timeout_s: float = 5.0
    """Deadline for the whole handshake."""
    connect_timeout_s: float = 5.0
    """Deadline for opening the TCP connection and the WebSocket upgrade."""
    send_timeout_s: float = 10.0
    """Deadline for one frame to leave; a peer that cannot take it is dropped."""
    close_timeout_s: float = 2.0
    """Deadline for a WebSocket close handshake."""
    idle_timeout_s: float = 30.0
    """Silence after which we PING; twice in a row and the peer is dropped."""
    request_timeout_s: float = 10.0
    """Default deadline of `request()`."""
    backoff_min_s: float = 0.2
    """First delay before redialing a static peer; doubles on each failure."""
    backoff_max_s: float = 5.0
    """Cap of the redial delay."""
    send_queue_frames: int = 4096
    """Frames queued for one peer; a peer that lets it fill is dropped as too slow."""
    rate_limit_per_s: float = 2000.0
    """Inbound frames per second allowed per peer (token bucket refill)."""
    rate_limit_burst: float = 4000.0
    """Token bucket size: the largest burst of inbound frames per peer."""
    seen_cache_size: int = 200_000
    """Gossip ids remembered for de-duplication (LRU)."""
    ban_score: float = -100.0
    """A peer whose score falls to this is disconnected and banned."""
    score_recovery_per_s: float = 0.1
    """Points per second by which a penalized score climbs back towards 0."""
    ban_duration_s: float = 600.0
    """How long a banned node key and address are refused."""
    peer_exchange: bool = True
    """Ask peers for addresses (PEERS_REQUEST) and dial the ones we lack."""
    private_peers: frozenset[str] = frozenset()
    """Node ids (hex keys) of peers whose address is never given to other peers in a
    PEERS answer: a validator behind its full nodes stays unknown to the public."""
    peer_exchange_interval_s: float = 30.0
    """Period of peer exchange and of dialing discovered addresses."""
    max_dial_failures: int = 3
    """A discovered (not static) address is forgotten after this many failed dials."""
    max_inbound_requests: int = 16
    """Requests from one peer answered concurrently; more are refused as busy."""
    max_pending_handshakes: int = 64
    """Inbound connections still in the handshake; more are refused with HTTP 503
    before any frame is read (a flood of silent connections costs one slot each,
    for at most `handshake_timeout_s`)."""
    max_inbound_per_host: int = 16
    """Inbound connections (in the handshake or established) from one IP address;
    more are refused with HTTP 503. Loopback counts like any other address."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A snapshot of one connected peer, for the node, RPC and metrics."""

    node_id: str
    """Hex of the peer's node public key (the peer id used by every API)."""
    address: str
    """host:port of the connection as seen from here."""
    listen_address: str
    """host:port where the peer accepts connections ("" if unknown)."""
    direction: Direction
    """Who opened the connection."""
    is_validator: bool
    """Whether the peer says it is a validator (unproven)."""
    score: float
    """Current score; 0 is clean, `ban_score` means banned."""
    bytes_in: int
    """Frame bytes received from the peer on this connection."""
    bytes_out: int
    """Frame bytes sent to the peer on this connection."""
    connected_since_ms: int
    """Wall-clock time (Unix ms) the handshake completed."""
    status_height: int | None
    """Height from the peer's last STATUS, None before its first."""
    status_round: int | None
    """Round from the peer's last STATUS, None before its first."""


@dataclass(frozen=True, slots=True)
class NetworkCounters:
    """Traffic totals since start, for metrics."""

    bytes_in: int
    """Frame bytes received from all peers."""
    bytes_out: int
    """Frame bytes sent to all peers."""
    messages_in: dict[str, int]
    """Frames received, by message type name."""
    messages_out: dict[str, int]
    """Frames sent, by message type name."""
    gossip_duplicates: int
    """Gossip frames dropped because already seen."""


def parse_address(address: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port") into host and port; raise InvalidAddressError."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidAddressError(f"peer address {address!r} is not of the form host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_unspecified_host(host: str) -> bool:
    """True for "", 0.0.0.0 and ::, which a peer cannot dial."""
    if not host:
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class TokenBucket:
    """Classic token bucket: `rate` tokens per second, at most `burst` stored."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token; False when the bucket is empty (the frame must be dropped)."""
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class SeenCache:
    """Bounded LRU set of gossip ids."""

    def __init__(self, capacity: int) -> None:
        assert capacity > 0
        self._capacity = capacity
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def add(self, key: bytes) -> bool:
        """Remember `key`; True if it was new."""
        if key in self._items:
            self._items.move_to_end(key)
            return False
        self._items[key] = None
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return True

    def discard(self, key: bytes) -> None:
        self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class ScoreBook:
    """Scores by node id; they survive reconnections and recover slowly towards 0."""

    MAX_ENTRIES = 4096

    def __init__(self, recovery_per_s: float) -> None:
        self._recovery_per_s = recovery_per_s
        self._scores: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def get(self, node_id: str, now: float) -> float:
        entry = self._scores.get(node_id)
        if entry is None:
            return 0.0
        score, updated = entry
        return min(0.0, score + (now - updated) * self._recovery_per_s)

    def penalize(self, node_id: str, points: float, now: float) -> float:
        """Subtract `points`; return the new score."""
        score = self.get(node_id, now) - points
        self._scores[node_id] = (score, now)
        self._scores.move_to_end(node_id)
        while len(self._scores) > self.MAX_ENTRIES:
            self._scores.popitem(last=False)
        return score

    def clear(self, node_id: str) -> None:
        self._scores.pop(node_id, None)


class BanList:
    """Banned node ids and addresses, each with an expiry (monotonic seconds)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def ban(self, keys: list[str], until: float) -> None:
        for key in keys:
            if key:
                self._until[key] = max(until, self._until.get(key, 0.0))

    def is_banned(self, key: str, now: float) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= now:
            del self._until[key]
            return False
        return True


class AddressBook:
    """Addresses learned from peer exchange, with their count of failed dials."""

    MAX_ENTRIES = 1024

    def __init__(self, max_failures: int) -> None:
        self._max_failures = max_failures
        self._failures: OrderedDict[str, int] = OrderedDict()

    def add(self, address: str) -> None:
        if address in self._failures or len(self._failures) >= self.MAX_ENTRIES:
            return
        try:
            host, _ = parse_address(address)
        except InvalidAddressError:
            return
        if not is_unspecified_host(host):
            self._failures[address] = 0

    def record_failure(self, address: str) -> None:
        failures = self._failures.get(address)
        if failures is None:
            return
        if failures + 1 >= self._max_failures:
            del self._failures[address]
        else:
            self._failures[address] = failures + 1

    def record_success(self, address: str) -> None:
        if address in self._failures:
            self._failures[address] = 0

    def addresses(self) -> list[str]:
        return list(self._failures)


class DialedKeys:
    """Our static peers, and the node key that answered at each address we dialed.

    Only a dial counts: an inbound peer's advertised address is never trusted for it.
    """

    def __init__(self, static_peers: list[str]) -> None:
        self._static = list(dict.fromkeys(static_peers))
        self._keys: dict[str, str] = {}

    @property
    def static_peers(self) -> list[str]:
        return list(self._static)

    def add_static(self, address: str) -> bool:
        """Make `address` a static peer; False if it already was one."""
        if address in self._static:
            return False
        self._static.append(address)
        return True

    def is_static(self, address: str) -> bool:
        return address in self._static

    def record(self, address: str, node_id: str) -> None:
        """`node_id` (hex) answered when we dialed `address`."""
        self._keys[address] = node_id

    def get_key(self, address: str) -> str | None:
        return self._keys.get(address)

    def is_static_key(self, node_id: str) -> bool:
        """Whether `node_id` answered at one of our static peers' addresses."""
        return any(self._keys.get(address) == node_id for address in self._static)
