"""The parts of the p2p layer on their own, without sockets: backoff and the static
dial loop on an injected clock, the gossip seen set and its bound, gossip verdicts,
scoring and bans, requests in flight, inbound limits, the peer table, admission's
address rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from chain.crypto import KeyPair
from p2p.admission import compute_listen_address
from p2p.callbacks import NodeCallbacks
from p2p.dialer import Backoff, Dialer
from p2p.errors import ConnectError, PeerNotConnectedError, SelfConnectionError
from p2p.frames import MAX_PEER_ADDRESSES, MessageType, decode_frame, encode_frame
from p2p.gossip import Gossip
from p2p.handshake import build_hello
from p2p.peers import AddressBook, DialedKeys, P2PConfig, SeenCache, Verdict
from p2p.scoring import Scoring
from p2p.session import PeerTable, PendingRequests
from p2p.transport import InboundLimits

# ------------------------------------------------------------------ fakes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSession:
    """What gossip, scoring and the peer table use of a session."""

    peer_id: str
    address: str = "10.0.0.1:4000"
    listen_address: str = ""
    closing_reason: str | None = None
    sent: list[bytes] = field(default_factory=list)
    penalties: list[tuple[float, str]] = field(default_factory=list)

    def enqueue(self, msg_type: MessageType, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def penalize(self, points: float, reason: str) -> None:
        self.penalties.append((points, reason))

    def close(self, reason: str) -> None:
        self.closing_reason = self.closing_reason or reason


# ------------------------------------------------------------------ backoff and dialing


def test_backoff_doubles_to_its_cap():
    backoff = Backoff(0.2, 5.0, jitter=lambda: 1.0)
    delays = [backoff.next_delay_s() for _ in range(8)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])


def test_backoff_jitter_scales_each_delay():
    factors = iter([0.8, 1.2])
    backoff = Backoff(1.0, 8.0, jitter=lambda: next(factors))
    assert [backoff.next_delay_s(), backoff.next_delay_s()] == pytest.approx([0.8, 2.4])


def test_backoff_resets_only_after_a_connection_that_lasted():
    backoff = Backoff(0.2, 5.0, jitter=lambda: 1.0)
    for _ in range(4):
        backoff.next_delay_s()
    backoff.on_session_ended(connected_at=100.0, now=104.0)  # 4 s: not long enough
    assert backoff.next_delay_s() == pytest.approx(3.2)
    backoff.on_session_ended(connected_at=100.0, now=105.5)
    assert backoff.next_delay_s() == pytest.approx(0.2)


class DialScript:
    """A static dial loop driven by hand: scripted dial outcomes, a fake clock that
    each sleep advances, and the loop stops when the script runs out."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.sessions_run: list[Any] = []
        self.table = PeerTable()
        self.dialer = Dialer(
            P2PConfig(backoff_min_s=0.2, backoff_max_s=5.0), DialedKeys(["10.0.0.2:4000"]),
            self.table, Scoring(P2PConfig(), clock=self.clock), AddressBook(3),
            self.connect, self.run_session, spawn=_no_spawn,
            is_running=lambda: bool(self.outcomes), clock=self.clock, sleep=self.sleep,
            jitter=lambda: 1.0)

    async def connect(self, address: str) -> Any:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def run_session(self, session: Any) -> None:
        self.sessions_run.append(session)
        self.clock.now += session  # a "session" here is how long it lasts

    async def sleep(self, delay_s: float) -> None:
        self.sleeps.append(delay_s)
        self.clock.now += delay_s


def _no_spawn(coro: Any, name: str) -> Any:
    coro.close()
    raise AssertionError(f"unexpected task {name}")


async def test_static_dial_backs_off_and_resets_after_a_long_session():
    failed = ConnectError("refused")
    script = DialScript([failed, failed, failed, 60.0, failed, 1.0, failed])
    await script.dialer.keep_connected("10.0.0.2:4000")
    # Three failures: 0.2, 0.4, 0.8. A session of 60 s resets: 0.2, then a failure 0.4.
    # A session of 1 s does not reset: 0.8, then a failure 1.6.
    assert script.sleeps == pytest.approx([0.2, 0.4, 0.8, 0.2, 0.4, 0.8, 1.6])
    assert script.sessions_run == [60.0, 1.0]


async def test_static_dial_stops_at_itself():
    script = DialScript([SelfConnectionError("ourselves"), ConnectError("never dialed")])
    await script.dialer.keep_connected("10.0.0.2:4000")
    assert script.sleeps == []
    assert "10.0.0.2:4000" in script.dialer.self_addresses


# ------------------------------------------------------------------ gossip


def test_seen_cache_is_bounded_and_evicts_the_least_recent():
    seen = SeenCache(3)
    assert all(seen.add(key) for key in (b"a", b"b", b"c"))
    assert not seen.add(b"a")  # seen; now the most recent
    assert seen.add(b"d")  # evicts b, the least recent
    assert len(seen) == 3
    assert b"b" not in seen and b"a" in seen and b"c" in seen and b"d" in seen


def _gossip(verdict: Verdict, cache_size: int = 100) -> tuple[Gossip, PeerTable, list[Any]]:
    delivered: list[Any] = []

    async def handler(peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        delivered.append(payload)
        return verdict

    table = PeerTable()
    return Gossip(table, NodeCallbacks(handler), cache_size), table, delivered


async def _receive(gossip: Gossip, session: FakeSession, payload: bytes) -> bytes:
    data = encode_frame(MessageType.VOTE, 0, payload)
    await gossip.on_gossip(session, decode_frame(data), data)
    return data


async def test_gossip_accepted_is_relayed_as_received_to_the_others_once():
    gossip, table, delivered = _gossip(Verdict.ACCEPT)
    origin, other = FakeSession("a" * 64), FakeSession("b" * 64)
    table.add(origin)
    table.add(other)
    data = await _receive(gossip, origin, b"vote")
    await _receive(gossip, other, b"vote")
    assert delivered == [b"vote"] and gossip.duplicates == 1
    assert other.sent == [data] and origin.sent == []


async def test_gossip_ignored_is_forgotten_and_rejected_is_penalized():
    gossip, _, delivered = _gossip(Verdict.IGNORE)
    peer = FakeSession("a" * 64)
    await _receive(gossip, peer, b"future vote")
    await _receive(gossip, peer, b"future vote")
    assert delivered == [b"future vote"] * 2 and gossip.duplicates == 0
    gossip, _, delivered = _gossip(Verdict.REJECT)
    await _receive(gossip, peer, b"bad vote")
    await _receive(gossip, peer, b"bad vote")
    assert delivered == [b"bad vote"] and gossip.duplicates == 1
    assert [points for points, _ in peer.penalties] == [20]


async def test_gossip_seen_set_keeps_its_bound():
    gossip, _, delivered = _gossip(Verdict.ACCEPT, cache_size=2)
    peer = FakeSession("a" * 64)
    for payload in (b"v1", b"v2", b"v3", b"v1"):  # v1 fell out of the set: new again
        await _receive(gossip, peer, payload)
    assert delivered == [b"v1", b"v2", b"v3", b"v1"]


async def test_our_broadcast_is_not_delivered_back():
    gossip, table, delivered = _gossip(Verdict.ACCEPT)
    peer = FakeSession("a" * 64)
    table.add(peer)
    assert gossip.broadcast(MessageType.VOTE, b"ours", exclude=None) == 1
    await _receive(gossip, peer, b"ours")
    assert delivered == [] and gossip.duplicates == 1


# ------------------------------------------------------------------ scoring


def test_penalties_ban_at_the_ban_score_until_the_ban_expires():
    clock = FakeClock()
    config = P2PConfig(ban_score=-100.0, ban_duration_s=600.0, score_recovery_per_s=0.0)
    scoring = Scoring(config, clock=clock)
    peer = FakeSession("a" * 64, listen_address="10.0.0.1:4000")
    for _ in range(4):
        scoring.penalize(peer, 25, "malformed")
    assert scoring.get_score(peer.peer_id) == -100
    assert peer.closing_reason == "banned: malformed"
    assert scoring.is_banned(peer.peer_id) and scoring.is_banned(peer.listen_address)
    clock.now += 600.0
    assert not scoring.is_banned(peer.peer_id)


def test_scores_recover_with_time():
    clock = FakeClock()
    scoring = Scoring(P2PConfig(score_recovery_per_s=0.1), clock=clock)
    peer = FakeSession("a" * 64)
    scoring.penalize(peer, 20, "rejected")
    clock.now += 100.0
    assert scoring.get_score(peer.peer_id) == pytest.approx(-10)
    assert peer.closing_reason is None


# ------------------------------------------------------------------ sessions


async def test_pending_requests_match_answers_and_fail_on_disconnect():
    pending = PendingRequests()
    first, second = pending.next_id(), pending.next_id()
    assert (first, second) == (1, 2)
    answered, waiting = pending.open(first), pending.open(second)
    assert pending.resolve(first, (MessageType.PONG, b"12345678"))
    assert not pending.resolve(first, (MessageType.PONG, b"12345678"))  # answered twice
    assert not pending.resolve(99, (MessageType.PONG, b"12345678"))  # never asked
    assert await answered == (MessageType.PONG, b"12345678")
    pending.fail_all("peer gone")
    with pytest.raises(PeerNotConnectedError):
        await waiting
    pending.discard(first)
    pending.discard(second)
    assert len(pending) == 0


def test_peer_table_lists_addresses_and_refuses_ending_sessions():
    table = PeerTable()
    sessions = [FakeSession(f"{i:064x}", listen_address=f"10.0.0.{i}:4000")
                for i in range(MAX_PEER_ADDRESSES + 2)]
    sessions.append(FakeSession("f" * 64))  # no listen address
    for session in sessions:
        table.add(session)
    addresses = table.get_listen_addresses(exclude=sessions[0])
    assert len(addresses) == MAX_PEER_ADDRESSES and sessions[0].listen_address not in addresses
    sessions[1].closing_reason = "going"
    with pytest.raises(PeerNotConnectedError):
        table.get_open(sessions[1].peer_id)
    assert table.get_open(sessions[2].peer_id) is sessions[2]
    replaced = FakeSession(sessions[2].peer_id)
    table.remove(replaced)  # not the registered one: no-op
    assert sessions[2].peer_id in table


def test_inbound_limits_per_host_and_pending():
    limits = InboundLimits(max_pending=2, max_per_host=2)
    first = limits.open("10.0.0.1")
    limits.open("10.0.0.1")
    refusal = limits.get_refusal("10.0.0.9")
    assert refusal is not None and "pending" in refusal[1]
    first.release_pending()
    first.release_pending()  # once only
    assert limits.pending == 1
    refusal = limits.get_refusal("10.0.0.1")
    assert refusal is not None and "this address" in refusal[1]
    assert limits.get_refusal("10.0.0.9") is None
    first.close()
    assert limits.by_host["10.0.0.1"] == 1 and limits.get_refusal("10.0.0.1") is None


# ------------------------------------------------------------------ admission


def test_dialed_keys_know_static_peers_by_the_key_that_answered():
    dialed = DialedKeys(["10.0.0.2:4000", "10.0.0.2:4000"])
    assert dialed.static_peers == ["10.0.0.2:4000"]
    assert not dialed.add_static("10.0.0.2:4000") and dialed.add_static("10.0.0.3:4000")
    dialed.record("10.0.0.2:4000", "ab" * 32)
    dialed.record("10.0.0.7:4000", "cd" * 32)  # dialed, but not a static peer
    assert dialed.is_static_key("ab" * 32) and not dialed.is_static_key("cd" * 32)


@pytest.mark.parametrize(("advertised", "came_from", "expected"), [
    ("0.0.0.0:4000", "10.0.0.5:51234", "10.0.0.5:4000"),
    ("[::]:4000", "[fd00::5]:51234", "[fd00::5]:4000"),
    ("10.0.0.8:4000", "10.0.0.5:51234", "10.0.0.8:4000"),
    ("", "10.0.0.5:51234", ""),
    ("0.0.0.0:4000", "unknown", ""),
])
def test_listen_address_of_an_inbound_peer(advertised, came_from, expected):
    hello = build_hello(KeyPair.generate(), "c", bytes(32), advertised, False)
    assert compute_listen_address(hello, came_from, dialed=None) == expected
    assert compute_listen_address(hello, came_from, dialed="10.0.0.9:4000") == "10.0.0.9:4000"

