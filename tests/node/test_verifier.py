"""Signature verification: once per transaction, and the verdicts it keeps are bounded."""

from __future__ import annotations

import dataclasses

from chain.crypto import KeyPair
from chain.tx import make_transaction
from node.verifier import SignatureVerifier
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID

ALICE, BOB = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]


def transfer(nonce: int, key: KeyPair = ALICE):
    return make_transaction(CHAIN_ID, key, nonce, "transfer",
                            {"to": BOB.address, "asset": "GOV", "amount": 1})


async def test_valid_verdicts_are_kept_and_bad_ones_are_not():
    verifier = SignatureVerifier(threads=2, cache_size=3)
    try:
        good = [transfer(n) for n in range(4)]
        forged = dataclasses.replace(transfer(9), sender=BOB.address)
        assert await verifier.verify([*good, forged]) == [True] * 4 + [False]
        # The oldest good verdict made room (cap 3); the forged one was never kept.
        assert len(verifier) == 3
        assert not verifier.is_known_valid(good[0].hash)
        assert all(verifier.is_known_valid(tx.hash) for tx in good[1:])
        assert not verifier.is_known_valid(forged.hash)
        verifier.forget_final(good[1:3])
        assert len(verifier) == 1 and verifier.is_known_valid(good[3].hash)
    finally:
        verifier.close()


async def test_final_transactions_leave_the_verdict_cache(single_node):
    node = single_node.node
    txs = [transfer(n) for n in range(20)]
    assert all(e is None for e in await node.submit_txs(txs))
    assert all(node.verifier.is_known_valid(tx.hash) for tx in txs if tx.hash in node.mempool)
    for tx in txs:
        await single_node.client.submit(tx, wait="final")
    # Every one is final: the cache holds nothing for them, so at a steady load its size
    # follows the mempool instead of growing to its cap.
    assert len(node.verifier) == 0
