"""Transactions gossiped by a peer into a real node (LevelDB, sockets on 127.0.0.1): the
work each costs, and what a refusal costs the peer."""

from __future__ import annotations

from collections import Counter

import chain.tx
import node.gossip
from chain.crypto import KeyPair, compute_hash
from chain.tx import make_transaction
from node.admission import PENALTY_UNKNOWN_SENDERS, UnknownSenderAllowance
from p2p.frames import MessageType
from p2p.peers import Verdict
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID, wait_for
from tests.node.peer_kit import RawPeer

ALICE, BOB = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]
PEER = "ab" * 32


def transfer(nonce: int, key: KeyPair = ALICE, **extra: object):
    return make_transaction(CHAIN_ID, key, nonce, "transfer",
                            {"to": BOB.address, "asset": "GOV", "amount": 1, **extra})


async def test_a_gossiped_transaction_is_hashed_once(single_node, monkeypatch):
    node_ = single_node.node
    txs = [transfer(n) for n in range(5)]
    payloads = [tx.encoded for tx in txs]
    hashes = [tx.hash for tx in txs]
    hashed: Counter[bytes] = Counter()

    def counting_hash(data: bytes):
        hashed[bytes(data)] += 1
        return compute_hash(data)

    monkeypatch.setattr(chain.tx, "compute_hash", counting_hash)
    monkeypatch.setattr(node.gossip, "compute_hash", counting_hash)
    verdict = await single_node.service.network.on_message(PEER, MessageType.TXS, payloads)
    assert verdict is Verdict.IGNORE
    assert all(h in node_.mempool for h in hashes)
    assert [hashed[p] for p in payloads] == [1] * 5


async def test_invalid_too_large_gossiped_tx_is_a_peer_fault(single_node):
    limit = single_node.node.params.max_tx_bytes
    big = transfer(0, memo="x" * limit)
    verdict = await single_node.service.network.on_message(PEER, MessageType.TXS,
                                                           [big.encoded])
    assert verdict is Verdict.REJECT
    assert big.hash not in single_node.node.mempool




def _score(running, key: KeyPair) -> float | None:
    found = [p.score for p in running.service.network.p2p.peers()
             if p.node_id == key.public_key.hex()]
    return found[0] if found else None


def stranger_transfers(count: int, salt: int) -> list:
    keys = [KeyPair.from_seed(salt.to_bytes(4, "big") + i.to_bytes(28, "big"))
            for i in range(count)]
    return [make_transaction(CHAIN_ID, key, 0, "transfer",
                             {"to": BOB.address, "asset": "GOV", "amount": 1}) for key in keys]


async def test_relaying_unknown_senders_beyond_the_allowance_costs_mildly(single_node):
    running = single_node
    node_ = running.node
    frozen = lambda: 1_000.0  # noqa: E731 - no refill, no second penalty in this test
    running.service.network.unknown_senders = UnknownSenderAllowance(
        burst=20, per_s=1, interval_s=60.0, clock=frozen)
    port, genesis_hash = running.service.network.p2p.bound_port, node_.genesis.hash
    honest_key, flooder_key = KeyPair.generate(), KeyPair.generate()
    honest = await RawPeer.connect(port, genesis_hash, honest_key)
    flooder = await RawPeer.connect(port, genesis_hash, flooder_key)
    try:
        # Within the allowance (a node that is behind its peer sees this): free.
        within = stranger_transfers(20, salt=1)
        await honest.send_frame(MessageType.TXS, [tx.encoded for tx in within])

        async def refused(txs) -> bool:
            return all(node_.mempool.get_rejection(tx.hash) is not None for tx in txs)

        await wait_for(lambda: refused(within), 20, "the first frame admitted or refused")
        assert _score(running, honest_key) == 0.0
        # Beyond it: one mild penalty, however many frames within the interval.
        for salt in (2, 3, 4):
            flood = stranger_transfers(30, salt=salt)
            await flooder.send_frame(MessageType.TXS, [tx.encoded for tx in flood])
        await wait_for(lambda: refused(flood), 20, "the flood refused")
        score = _score(running, flooder_key)
        assert score is not None and -PENALTY_UNKNOWN_SENDERS <= score < 0
        assert not running.service.network.p2p.is_banned(flooder_key.public_key.hex())
    finally:
        await honest.close()
        await flooder.close()
