"""Transactions gossiped by a peer into a real node (LevelDB, sockets on 127.0.0.1): the
work each costs, and what a refusal costs the peer."""

from __future__ import annotations

from collections import Counter

import chain.tx
import node.gossip
from chain.crypto import KeyPair, compute_hash
from chain.tx import make_transaction
from p2p.frames import MessageType
from p2p.peers import Verdict
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID

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


