"""P2PNetwork over real sockets on 127.0.0.1: handshake, gossip, requests, scoring,
bans, reconnection and peer exchange. Every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import pytest
from p2p_testkit import RawPeer, peer_ids, wait_for

from chain.crypto import KeyPair
from p2p.errors import (
    DuplicatePeerError,
    HandshakeRefusedError,
    MalformedFrameError,
    PeerNotConnectedError,
    RequestRefusedError,
    RequestTimeoutError,
    SelfConnectionError,
    WrongChainError,
    WrongGenesisError,
)
from p2p.frames import MAX_FRAME_SIZE, MessageType, encode_frame
from p2p.handshake import run_handshake
from p2p.peers import Direction, Verdict


async def connected_pair(make_node, **config):
    a = await make_node(**config)
    b = await make_node([a.address], **config)
    await wait_for(lambda: peer_ids(a) == {b.node_id} and peer_ids(b) == {a.node_id},
                   what="a and b connected")
    return a, b


# ------------------------------------------------------------------ handshake


async def test_handshake_success(make_node):
    a, b = await connected_pair(make_node)
    (info_at_a,) = a.network.peers()
    (info_at_b,) = b.network.peers()
    assert info_at_a.direction is Direction.INBOUND
    assert info_at_b.direction is Direction.OUTBOUND
    assert info_at_b.listen_address == a.address
    assert info_at_a.listen_address == b.address  # advertised in HELLO
    await wait_for(lambda: a.recorder.connected == [b.node_id]
                   and b.recorder.connected == [a.node_id], what="connect callbacks")


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"chain_id": "another-chain"}, WrongChainError, "chain id"),
    ({"genesis_hash": b"\xee" * 32}, WrongGenesisError, "genesis"),
])
async def test_invalid_other_chain_refused(make_node, caplog, changes, error, words):
    a = await make_node()
    stranger = await make_node(**changes)
    with caplog.at_level(logging.WARNING, logger="p2p"), pytest.raises(error):
        await stranger.network.connect(a.address)
    await wait_for(lambda: any(words in r.getMessage() for r in caplog.records),
                   what="a WARNING on the refusing side")
    assert a.network.peers() == [] and stranger.network.peers() == []


async def test_invalid_self_connection_refused(make_node):
    a = await make_node()
    with pytest.raises(SelfConnectionError):
        await a.network.connect(a.address)
    assert a.network.peers() == []


async def test_invalid_duplicate_connection_refused(make_node):
    a, b = await connected_pair(make_node)
    with pytest.raises(DuplicatePeerError):
        await b.network.connect(a.address)
    assert peer_ids(a) == {b.node_id} and peer_ids(b) == {a.node_id}


async def test_invalid_key_outside_allow_list_refused(make_node):
    friend = KeyPair.generate()
    a = await make_node(allowed_keys=frozenset({friend.public_key}))
    stranger = await make_node()
    with pytest.raises(HandshakeRefusedError) as info:
        await stranger.network.connect(a.address)
    assert info.value.remote_code == "not_allowed"
    b = await make_node(key=friend)
    await b.network.connect(a.address)
    assert peer_ids(a) == {b.node_id}


async def test_invalid_forged_handshake_signature_refused(make_node):
    a = await make_node()
    victim, forger = KeyPair.generate(), KeyPair.generate()
    raw = await RawPeer.open(a.address, key=forger)
    try:
        claimed = raw.hello(node_key=victim.public_key)
        await raw.send(MessageType.HELLO, claimed.to_payload())
        assert (await raw.receive()).msg_type == MessageType.HELLO
        assert (await raw.receive()).msg_type == MessageType.AUTH
        await raw.send(MessageType.AUTH, forger.sign(b"not the transcript"))
        refusal = await raw.receive()
        assert refusal is not None and refusal.msg_type == MessageType.ERROR
        assert refusal.payload[0] == "bad_handshake_signature"
        await raw.wait_closed()
    finally:
        await raw.close()
    assert a.network.peers() == []


# ------------------------------------------------------------------ gossip


async def test_gossip_reaches_every_node_exactly_once(make_node):
    """A ring of 4 nodes: each message arrives at a node along two paths; the handler
    of each other node sees it exactly once, and the origin never sees it."""
    n0 = await make_node()
    n1 = await make_node([n0.address])
    n2 = await make_node([n1.address])
    n3 = await make_node([n2.address, n0.address])
    nodes = [n0, n1, n2, n3]
    await wait_for(lambda: all(len(n.network.peers()) == 2 for n in nodes), what="ring")

    messages = [(n0, b"tx-from-0"), (n2, b"tx-from-2"), (n3, b"tx-from-3")]
    for origin, tx in messages:
        assert origin.network.broadcast(MessageType.TX, tx) == 2

    def expected(node):
        return sorted(tx for origin, tx in messages if origin is not node)

    # Barrier: in a ring each message travels 5 links (2 from its origin, 1 from each
    # node that sees it first), so 15 frames are in flight in all. Each is delivered or
    # dropped as a duplicate; once all 15 are accounted for, none can arrive late.
    def frames_handled() -> int:
        return sum(len(n.recorder.payloads(MessageType.TX))
                   + n.network.counters().gossip_duplicates for n in nodes)

    await wait_for(lambda: frames_handled() >= 5 * len(messages),
                   what="every gossip frame delivered or dropped")
    for node in nodes:
        assert sorted(node.recorder.payloads(MessageType.TX)) == expected(node)
    assert sum(n.network.counters().gossip_duplicates for n in nodes) == 2 * len(messages)


async def test_gossip_not_relayed_on_ignore_or_reject(make_node):
    n0 = await make_node()
    n1 = await make_node([n0.address])
    n2 = await make_node([n1.address])
    await wait_for(lambda: len(n1.network.peers()) == 2, what="line")
    n1.recorder.verdicts = {b"vote-1": Verdict.IGNORE, b"vote-2": Verdict.REJECT}
    for vote in (b"vote-1", b"vote-2", b"marker"):
        n0.network.broadcast(MessageType.VOTE, vote)
    # Barrier: n1 relays in the order it handles, so the accepted marker reaches n2
    # after anything n1 would have relayed before it.
    await wait_for(lambda: b"marker" in n2.recorder.payloads(MessageType.VOTE),
                   what="the marker relayed to n2")
    assert n1.recorder.payloads(MessageType.VOTE) == [b"vote-1", b"vote-2", b"marker"]
    assert n2.recorder.payloads(MessageType.VOTE) == [b"marker"]
    # IGNORE forgets the message: sent again (later), it is delivered again.
    del n1.recorder.verdicts[b"vote-1"]
    n0.network.send(n1.node_id, MessageType.VOTE, b"vote-1")
    await wait_for(lambda: n2.recorder.payloads(MessageType.VOTE) == [b"marker", b"vote-1"])


async def test_gossip_is_relayed_as_the_bytes_received(make_node):
    a = await make_node()
    sender, listener = await RawPeer.open(a.address), await RawPeer.open(a.address)
    try:
        for raw in (sender, listener):
            await raw.handshake()
        await wait_for(lambda: len(a.network.peers()) == 2, what="both raw peers connected")
        frame = encode_frame(MessageType.TXS, 0, [b"tx-1", b"tx-2"])
        await sender.send_raw(frame)
        await sender.send_raw(frame)  # the same bytes again: a duplicate
        msg = await listener.ws.receive(timeout=5.0)
        assert msg.data == frame
        await wait_for(lambda: a.network.counters().gossip_duplicates == 1, what="duplicate")
        assert a.recorder.payloads(MessageType.TXS) == [(b"tx-1", b"tx-2")]
    finally:
        await sender.close()
        await listener.close()


async def test_votes_overtake_transactions_waiting_for_admission(make_node):
    a, b = await connected_pair(make_node)
    vote_seen = asyncio.Event()
    handled: list[tuple[MessageType, object, bool]] = []

    async def handle(peer_id, msg_type, payload):
        if msg_type == MessageType.TXS and payload == (b"tx-1",):
            # Admission of the first batch is still waiting (for its signatures).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(vote_seen.wait(), 2.0)
        if msg_type == MessageType.VOTE:
            vote_seen.set()
        handled.append((msg_type, payload, vote_seen.is_set()))
        return Verdict.ACCEPT

    a.network._handler = handle
    for tx in (b"tx-1", b"tx-2", b"tx-3"):
        b.network.broadcast(MessageType.TXS, [tx])
    b.network.broadcast(MessageType.VOTE, b"vote-1")
    await wait_for(lambda: len(handled) == 4, what="all four frames handled")
    # The vote did not wait behind the transactions; they kept their own order.
    assert handled[0] == (MessageType.VOTE, b"vote-1", True)
    assert [payload for _, payload, _ in handled[1:]] == [(b"tx-1",), (b"tx-2",), (b"tx-3",)]


async def test_status_updates_peer_info(make_node):
    a, b = await connected_pair(make_node)
    assert b.network.broadcast(MessageType.STATUS, (12, 3)) == 1
    await wait_for(lambda: a.network.peers()[0].status_height == 12)
    assert a.network.peers()[0].status_round == 3
    assert a.recorder.payloads(MessageType.STATUS) == [(12, 3)]


async def test_broadcast_with_no_one_to_tell_sends_nothing(make_node):
    a, b = await connected_pair(make_node)
    # The only peer is excluded: nothing is encoded or queued.
    assert b.network.broadcast(MessageType.TX, b"tx-1", exclude=a.node_id) == 0
    alone = await make_node()
    assert alone.network.peer_count == 0 and (a.network.peer_count, b.network.peer_count) == (1, 1)
    assert alone.network.broadcast(MessageType.VOTE, b"vote-1") == 0
    assert b.network.broadcast(MessageType.TX, b"tx-2") == 1
    await wait_for(lambda: a.recorder.payloads(MessageType.TX) == [b"tx-2"])


# ------------------------------------------------------------------ requests


async def test_request_response(make_node):
    a, b = await connected_pair(make_node)
    a.recorder.answers[MessageType.GET_BLOCKS] = (MessageType.BLOCKS, [[b"blk", b"cert"]])
    a.recorder.answers[MessageType.GET_STATUS] = (MessageType.STATUS, [5, 0])
    a.recorder.answer_delay_s = 0.05
    results = await asyncio.gather(*(
        b.network.request(a.node_id, MessageType.GET_BLOCKS, [1, 1]) for _ in range(5)),
        b.network.request(a.node_id, MessageType.GET_STATUS, None))
    assert results[:5] == [(MessageType.BLOCKS, ((b"blk", b"cert"),))] * 5
    assert results[5] == (MessageType.STATUS, (5, 0))
    assert await b.network.request(a.node_id, MessageType.PING, b"8 bytes!") \
        == (MessageType.PONG, b"8 bytes!")


async def test_request_refused_and_timeout(make_node):
    a, b = await connected_pair(make_node)
    with pytest.raises(RequestRefusedError) as info:
        await b.network.request(a.node_id, MessageType.GET_VOTES, 3)
    assert info.value.remote_code == "unavailable"
    a.recorder.answers[MessageType.GET_VOTES] = (MessageType.VOTES, [b"v"])
    a.recorder.answer_delay_s = 1.0
    with pytest.raises(RequestTimeoutError):
        await b.network.request(a.node_id, MessageType.GET_VOTES, 3, timeout_s=0.1)
    assert b.network.peers()[0].score < 0  # a timeout costs score
    with pytest.raises(PeerNotConnectedError):
        await b.network.request("00" * 32, MessageType.GET_VOTES, 3)


async def test_request_answered_with_wrong_type_is_penalized(make_node):
    a = await make_node()
    raw = await RawPeer.open(a.address)
    try:
        await raw.handshake()
        await wait_for(lambda: raw.node_id in peer_ids(a))
        task = asyncio.create_task(
            a.network.request(raw.node_id, MessageType.GET_VOTES, 1, timeout_s=2.0))
        frame = await raw.receive()
        assert frame is not None and frame.msg_type == MessageType.GET_VOTES
        await raw.send(MessageType.PONG, b"12345678", request_id=frame.request_id)
        with pytest.raises(MalformedFrameError):
            await task
    finally:
        await raw.close()


# ------------------------------------------------------------------ scoring and bans


@pytest.mark.parametrize(("bad_frame", "points"), [
    (b"\x93\xff\x00", 25),  # malformed
    (encode_frame(MessageType.PROPOSAL, 0, b"x" * MAX_FRAME_SIZE[MessageType.VOTE])
     .replace(b"\x93\x0b", b"\x93\x0c", 1), 50),  # a VOTE larger than a VOTE may be
    (bytes.fromhex("936300c400"), 25),  # unknown type 99
])
async def test_invalid_frames_penalized_then_banned(make_node, caplog, bad_frame, points):
    a = await make_node()
    raw = await RawPeer.open(a.address)
    try:
        await raw.handshake()
        await wait_for(lambda: raw.node_id in peer_ids(a))
        with caplog.at_level(logging.WARNING, logger="p2p"):
            await raw.send_raw(bad_frame)
            await wait_for(lambda: a.network.peers() and a.network.peers()[0].score < 0)
            assert a.network.peers()[0].score == pytest.approx(-points, abs=1)
            for _ in range(100 // points):
                await raw.send_raw(bad_frame)
            await raw.wait_closed()
        assert a.network.is_banned(raw.node_id)
        assert any("banning peer" in r.getMessage() for r in caplog.records)
    finally:
        await raw.close()
    again = await RawPeer.open(a.address, key=raw.key)
    try:
        with pytest.raises(HandshakeRefusedError) as info:
            await run_handshake(again.channel, again.key, again.hello(), lambda h: None, 5.0)
        assert info.value.remote_code == "banned"
    finally:
        await again.close()


async def test_rejected_messages_lead_to_disconnect_and_ban(make_node, caplog):
    a, b = await connected_pair(make_node)
    a.recorder.verdict = Verdict.REJECT
    with caplog.at_level(logging.INFO, logger="p2p"):
        for i in range(6):  # 6 x 20 points passes the ban score of -100
            b.network.broadcast(MessageType.TX, f"bad tx {i}".encode())
        await wait_for(lambda: a.network.peers() == [] and b.network.peers() == [],
                       what="disconnect")
        assert a.network.is_banned(b.node_id)
        assert b.node_id in [peer_id for peer_id, _ in a.recorder.disconnected]
        # Barrier: b keeps redialing its static peer; two redials refused as banned
        # mean a readmission would have happened by now.
        await wait_for(lambda: _count(caplog, "failed (banned)") >= 2, what="two refused redials")
    assert a.network.peers() == []


async def test_rate_limit_penalizes_floods(make_node):
    a = await make_node(rate_limit_per_s=1.0, rate_limit_burst=5.0)
    raw = await RawPeer.open(a.address)
    try:
        await raw.handshake()
        for i in range(30):
            await raw.send(MessageType.STATUS, [i, 0])
        await raw.wait_closed()
    finally:
        await raw.close()
    assert a.network.is_banned(raw.node_id)
    assert len(a.recorder.payloads(MessageType.STATUS)) <= 6


async def test_slow_peer_with_full_send_queue_is_dropped(make_node):
    a, b = await connected_pair(make_node, send_queue_frames=4)
    for i in range(50):  # no await in between: the writer cannot drain the queue
        b.network.broadcast(MessageType.TX, f"tx {i}".encode())
    await wait_for(lambda: a.node_id not in peer_ids(b), what="slow peer dropped")


# ------------------------------------------------------------------ reconnection and discovery


async def test_reconnects_after_peer_restart(make_node, caplog):
    a, b = await connected_pair(make_node)
    port, key = a.network.bound_port, a.key
    with caplog.at_level(logging.DEBUG, logger="p2p"):
        await a.network.stop()
        await wait_for(lambda: b.network.peers() == [], what="b notices a is gone")
        # b redials with backoff while a is down: wait for a failed dial.
        await wait_for(lambda: _count(caplog, f"dial {a.address} failed") >= 1,
                       what="a failed redial")
    a2 = await make_node(key=key, port=port)
    await wait_for(lambda: peer_ids(b) == {a2.node_id}, what="b reconnects to a")


async def test_peer_exchange_finds_a_third_node(make_node):
    seed = await make_node(peer_exchange=True)
    b = await make_node([seed.address], peer_exchange=True)
    c = await make_node([seed.address], peer_exchange=True)
    await wait_for(lambda: c.node_id in peer_ids(b) and b.node_id in peer_ids(c),
                   what="b and c find each other through the seed")


async def test_idle_peers_are_pinged_and_silent_ones_dropped(make_node):
    a, b = await connected_pair(make_node, idle_timeout_s=0.1)
    raw = await RawPeer.open(a.address)
    try:
        await raw.handshake()
        await wait_for(lambda: raw.node_id in peer_ids(a))
        # raw never answers PING: dropped after two silent periods; b answers and stays.
        await wait_for(lambda: raw.node_id not in peer_ids(a), what="silent peer dropped")
        assert peer_ids(a) == {b.node_id}
        assert a.network.counters().messages_in.get("PONG", 0) >= 1
    finally:
        await raw.close()


async def test_counters_count_traffic(make_node):
    a, b = await connected_pair(make_node)
    b.network.broadcast(MessageType.TX, b"counted")
    await wait_for(lambda: a.recorder.payloads(MessageType.TX) == [b"counted"])
    await wait_for(lambda: b.network.counters().messages_out.get("TX") == 1)
    assert a.network.counters().messages_in["TX"] == 1
    assert a.network.peers()[0].bytes_in >= len(encode_frame(MessageType.TX, 0, b"counted"))
    assert b.network.counters().bytes_out >= a.network.peers()[0].bytes_in


async def test_nodes_dialing_each_other_settle_on_one_connection(make_node, caplog):
    with socket.socket() as probe:  # a free port for b, known before b starts
        probe.bind(("127.0.0.1", 0))
        b_port = probe.getsockname()[1]
    with caplog.at_level(logging.INFO, logger="p2p"):
        a = await make_node([f"127.0.0.1:{b_port}"])
        b = await make_node([a.address], port=b_port)
        await wait_for(lambda: peer_ids(a) == {b.node_id} and peer_ids(b) == {a.node_id},
                       what="one connection")
        # Barrier: each dialer is done once it serves the link (outbound) or has had a
        # dial refused as a duplicate (it then knows the key at that address and does
        # not dial it while that node is connected). Nothing else dials.
        await wait_for(lambda: _dialer_settled(a, b.address, caplog)
                       and _dialer_settled(b, a.address, caplog), what="both dialers settled")
    # The link is single and still carries frames both ways.
    assert await a.network.request(b.node_id, MessageType.PING, b"a-to-b!!") \
        == (MessageType.PONG, b"a-to-b!!")
    assert await b.network.request(a.node_id, MessageType.PING, b"b-to-a!!") \
        == (MessageType.PONG, b"b-to-a!!")
    assert [p.node_id for p in a.network.peers()] == [b.node_id]
    assert [p.node_id for p in b.network.peers()] == [a.node_id]


def _dialer_settled(node, address, caplog) -> bool:
    if any(p.direction is Direction.OUTBOUND for p in node.network.peers()):
        return True
    return _count(caplog, f"handshake with {address} failed") >= 1


def _count(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


async def test_private_peers_are_never_given_out_in_peer_exchange(make_node):
    validator = await make_node()
    other = await make_node()
    full = await make_node([validator.address, other.address],
                           private_peers=frozenset({validator.node_id}))
    public = await make_node([full.address])
    await wait_for(lambda: peer_ids(full) == {validator.node_id, other.node_id,
                                              public.node_id}
                   and full.node_id in peer_ids(public), what="full node's peers")
    _, addresses = await public.network.request(full.node_id, MessageType.PEERS_REQUEST, None)
    # The other peer is given out; the validator behind the full node never is.
    assert other.address in addresses
    assert validator.address not in addresses
