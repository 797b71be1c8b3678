"""Hostile peers against four in-process validators on real sockets: each misbehaviour
costs the peer (score, ban, refusal) and the validators keep finalizing."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from chain import codec
from chain.crypto import KeyPair
from chain.vote import Vote, VoteKind
from p2p.errors import HandshakeError, P2PError
from p2p.frames import MessageType
from p2p.network import P2PNetwork
from p2p.peers import P2PConfig
from tests.node.conftest import (
    CHAIN_ID,
    VALIDATOR_KEYS,
    driver_caught_up,
    make_home,
    start_network,
    stop_network,
    wait_for,
)
from tests.node.peer_kit import TEST_TLS, RawPeer, make_peer


async def _keeps_finalizing(nodes, blocks: int = 2, timeout_s: float = 30) -> None:
    """Every node's head moves `blocks` further."""
    start = [n.node.store.head_height for n in nodes]

    async def moved() -> bool:
        return all(n.node.store.head_height >= h + blocks for n, h in zip(nodes, start,
                                                                          strict=True))

    await wait_for(moved, timeout_s, f"{blocks} more blocks on every node")


def _p2p(running) -> P2PNetwork:
    return running.service.network.p2p


def _score(running, key: KeyPair) -> float | None:
    info = [p for p in _p2p(running).peers() if p.node_id == key.public_key.hex()]
    return info[0].score if info else None


async def _raw(running, key: KeyPair | None = None) -> tuple[RawPeer, KeyPair]:
    key = key or KeyPair.generate()
    peer = await RawPeer.connect(_p2p(running).bound_port, running.node.genesis.hash, key)
    return peer, key


async def test_flooding_peer_is_rate_limited_and_banned(network4):
    target = network4[0]
    peer, key = await _raw(target)
    try:
        config = P2PConfig()
        frames = int(config.rate_limit_burst) + 2000
        for _ in range(frames):  # far beyond the burst, as fast as the socket takes them
            await peer.send_frame(MessageType.STATUS, [0, 0])

        async def banned() -> bool:
            return _p2p(target).is_banned(key.public_key.hex())

        await wait_for(banned, 20, "the flooding peer banned")
        await wait_for(lambda: _closed(peer), 10, "the flooding peer disconnected")
        await _keeps_finalizing(network4)
        # A banned key is refused at the handshake.
        with pytest.raises(HandshakeError):
            again, _ = await _raw(target, key)
            await again.close()
    finally:
        await peer.close()


async def _closed(peer: RawPeer) -> bool:
    if peer.closed:
        return True
    try:
        await asyncio.wait_for(peer.ws.receive(), 0.05)
    except TimeoutError:
        return False
    return peer.closed


async def test_invalid_garbage_frames_get_the_peer_banned(network4):
    target = network4[0]
    peer, key = await _raw(target)
    try:
        for data in (b"\x00garbage", b"\x93\x0c\x00\xc4\x03abc", b"\x93\x63\x00\xc0",
                     b"\xff" * 100, b"\x93\x0a\x00\xc4\x05ab"):
            await peer.send_bytes(data)
        await wait_for(lambda: _is_banned(target, key), 10, "the garbage sender banned")
        await _keeps_finalizing(network4)
    finally:
        await peer.close()


async def _is_banned(running, key: KeyPair) -> bool:
    return _p2p(running).is_banned(key.public_key.hex())


def _certificate_votes(running, height: int) -> list[bytes]:
    """The precommits of a final block, as the VOTE payloads a peer would replay."""
    cert = running.node.store.get_certificate(height)
    return [codec.encode([int(VoteKind.PRECOMMIT), cert.height, cert.round, cert.block_hash,
                          validator, signature])
            for validator, signature in cert.signatures]


async def test_replayed_old_votes_are_ignored_without_ban(network4):
    target = network4[0]
    await _keeps_finalizing(network4, blocks=3)
    old = [vote for height in (1, 2) for vote in _certificate_votes(target, height)]
    assert all(Vote.from_value(codec.decode(v)).is_signature_valid(CHAIN_ID) for v in old)
    peer, key = await _raw(target)
    try:
        for _ in range(50):  # 50 replays of each genuine old vote
            for vote in old:
                await peer.send_frame(MessageType.VOTE, vote)
        await _keeps_finalizing(network4)
        assert not await _is_banned(target, key)
        assert _score(target, key) == 0.0
        # The core's own height, not the store's head + 1: the store moves to the new
        # head while the block commits, before the core starts the next height.
        core = target.node.core
        counted = {v.height for v in core.votes_for_height()}
        assert counted <= {core.height}
        assert core.height > 2  # so none of the replayed votes (heights 1 and 2) counts
    finally:
        await peer.close()


async def test_future_height_messages_do_not_accumulate(network4):
    target = network4[0]
    node = target.node
    peer, key = await _raw(target)
    try:
        head = node.store.head_height
        validator = VALIDATOR_KEYS[1]
        # Genuinely signed votes of far-future heights (a validator's key, many heights).
        for i in range(2000):
            vote = Vote.create(CHAIN_ID, validator, VoteKind.PREVOTE, head + 1000 + i, 0,
                               bytes(32))
            await peer.send_frame(MessageType.VOTE, vote.encoded)
        # Barriers, not a sleep: the PING after the votes is answered once the node has
        # handled all of them; then the driver takes whatever they could have queued.
        await peer.ping()
        queued = node._events.qsize()
        await driver_caught_up(node)
        # Nothing of them is kept: not in the core, not queued for the driver.
        assert all(v.height <= node.store.head_height + 1 for v in node.core.votes_for_height())
        assert queued < 100
        assert not await _is_banned(target, key)
        await _keeps_finalizing(network4)
    finally:
        await peer.close()


async def test_invalid_forged_vote_rejected_and_peer_banned(network4):
    target = network4[0]
    peer, key = await _raw(target)
    forger = KeyPair.generate()
    try:
        forged = []
        for round_ in range(6):
            height = target.node.store.head_height + 1
            honest = Vote.create(CHAIN_ID, forger, VoteKind.PREVOTE, height, round_, bytes(32))
            # Claims to be validator 1's vote; signed by someone else.
            forged.append(codec.encode([int(VoteKind.PREVOTE), height, round_, bytes(32),
                                        VALIDATOR_KEYS[1].public_key, honest.signature]))
        verdict = await target.service.network.on_message(key.public_key.hex(),
                                                          MessageType.VOTE, forged[0])
        assert verdict.name == "REJECT"
        for vote in forged:
            await peer.send_frame(MessageType.VOTE, vote)
        await wait_for(lambda: _is_banned(target, key), 10, "the forger banned")
        signatures = {v.signature for v in target.node.core.votes_for_height()}
        assert not any(Vote.from_value(codec.decode(v)).signature in signatures for v in forged)
        await _keeps_finalizing(network4)
    finally:
        await peer.close()


async def test_sync_skips_a_peer_that_withholds_blocks(network4, tmp_path):
    await _keeps_finalizing(network4, blocks=4)
    genesis = network4[0].node.genesis
    withheld: list[object] = []

    async def answer_nothing(peer_id, msg_type, payload):
        withheld.append(payload)
        if msg_type == MessageType.GET_BLOCKS:
            return MessageType.BLOCKS, []
        return MessageType.STATUS, [10**9, 0]

    liar, _ = make_peer(genesis.hash, handle_request=answer_nothing)
    await liar.start()
    from cli.service import NodeService

    # The follower first knows only the liar, which claims a height beyond anyone.
    home = make_home(tmp_path / "follower", genesis, None,
                     peers=[f"127.0.0.1:{liar.bound_port}"], peer_exchange=False)
    follower = NodeService(home)

    async def lie() -> None:
        while True:
            liar.broadcast(MessageType.STATUS, [10**9, 0])
            await asyncio.sleep(1.0)

    lying = asyncio.create_task(lie())
    await follower.start()
    try:
        async def liar_asked() -> bool:
            return bool(withheld)

        await wait_for(liar_asked, 20, "the follower asking the liar for blocks")
        assert follower.node.store.head_height == 0
        # Then an honest validator joins; the liar still claims to be the highest.
        await follower.network.p2p.connect(f"127.0.0.1:{_p2p(network4[0]).bound_port}")
        target = network4[0].node.store.head_height

        async def caught_up() -> bool:
            return follower.node.store.head_height >= target

        await wait_for(caught_up, 30, "the follower syncing past the withholding peer")
        # It got past the liar by asking another peer, not by waiting for a ban.
        assert not follower.network.p2p.is_banned(liar.node_id)
        scores = [p.score for p in follower.network.p2p.peers() if p.node_id == liar.node_id]
        assert not scores or scores[0] < 0
    finally:
        lying.cancel()
        await asyncio.gather(lying, return_exceptions=True)
        await follower.stop()
        await liar.stop()


async def test_many_connections_are_bounded(tmp_path):
    nodes = await start_network(tmp_path, 4, p2p_max_peers=5, p2p_max_inbound_per_host=6)
    target = nodes[0]
    port = _p2p(target).bound_port
    genesis_hash = target.node.genesis.hash
    sessions: list[aiohttp.ClientSession] = []
    raws: list[RawPeer] = []
    try:
        await wait_for(lambda: _peer_count(target, 3), 20, "the validators connected")
        # Strangers with fresh keys take the free slots, then are refused.
        refused = 0
        for _ in range(4):
            try:
                raws.append((await _raw(target))[0])
            except (HandshakeError, P2PError, aiohttp.ClientError):
                refused += 1
        assert len(_p2p(target).peers()) <= 5 + 1  # max_peers (+ a static validator)
        assert refused >= 2
        # A validator (a static peer) that drops out gets back in although strangers
        # hold every slot.
        p2p = _p2p(target)
        validator_id = _p2p(nodes[1]).node_id
        dropped = p2p._peers[validator_id]
        p2p._disconnect(dropped, "test: drop a static peer")

        async def validator_dropped() -> bool:
            # Gone, or already back on a new connection: static peers redial within
            # about 0.2 s, which a poll of a busy loop can miss.
            return p2p._peers.get(validator_id) is not dropped

        await wait_for(validator_dropped, 5, "the validator disconnected")
        # Strangers try to take the freed slot before the validator redials; whichever
        # wins, the validator must end up connected.
        with contextlib.suppress(HandshakeError, P2PError, aiohttp.ClientError):
            raws.append((await _raw(target))[0])

        async def validator_back() -> bool:
            return validator_id in {p.node_id for p in p2p.peers()} \
                and p2p._peers[validator_id].closing_reason is None

        await wait_for(validator_back, 20, "the static validator readmitted")
        # Silent connections that never handshake: one per free per-host slot, then 503.
        statuses = []
        silent = []
        for _ in range(8):
            session = aiohttp.ClientSession()
            sessions.append(session)
            try:
                silent.append(await session.ws_connect(f"wss://127.0.0.1:{port}/p2p",
                                                       ssl=TEST_TLS.client))
                statuses.append(101)
            except aiohttp.WSServerHandshakeError as e:
                statuses.append(e.status)
        assert 503 in statuses
        assert _p2p(target)._inbound_by_host["127.0.0.1"] <= 6
        await _keeps_finalizing(nodes)
        assert genesis_hash == target.node.genesis.hash
    finally:
        for raw in raws:
            await raw.close()
        for session in sessions:
            await session.close()
        await stop_network(nodes)


async def _peer_count(running, count: int) -> bool:
    return len(_p2p(running).peers()) >= count
