"""Mempool admission, ordering and eviction rules, without a node."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import KeyPair
from chain.tx import make_transaction
from node.errors import MempoolError, MempoolFullError
from node.mempool import Mempool

KEYS = [KeyPair.from_seed(bytes([50 + i]) * 32) for i in range(4)]


def tx(key: KeyPair, nonce: int, pad: int = 0):
    return make_transaction("m", key, nonce, "transfer",
                            {"to": KEYS[0].address, "asset": "GOV", "amount": 1,
                             **({"memo": "x" * pad} if pad else {})})


def make_pool(nonces=None, **limits) -> tuple[Mempool, dict]:
    nonces = nonces if nonces is not None else {}
    settings_ = {"max_txs": 100, "max_bytes": 1 << 20, "max_per_sender": 8, "ttl_s": 60}
    settings_.update(limits)
    pool = Mempool(get_nonce=lambda a: nonces.get(a, 0), **settings_)
    return pool, nonces


def ok(tx_, account_nonce):
    return None


def test_add_is_idempotent():
    pool, _ = make_pool()
    t = tx(KEYS[0], 0)
    pool.add(t, check=ok)
    pool.add(t, check=ok)
    assert len(pool) == 1 and pool.size_bytes == len(t.encoded)


@pytest.mark.parametrize("nonce, code", [(2, "nonce_too_low"), (3 + 8, "nonce_too_high")])
def test_invalid_nonce_outside_window(nonce, code):
    pool, nonces = make_pool()
    nonces[KEYS[0].address] = 3
    with pytest.raises(MempoolError) as info:
        pool.add(tx(KEYS[0], nonce), check=ok)
    assert info.value.code == code
    assert len(pool) == 0 and pool.size_bytes == 0


def test_invalid_nonce_in_use():
    pool, _ = make_pool()
    pool.add(tx(KEYS[0], 0), check=ok)
    with pytest.raises(MempoolError) as info:
        pool.add(tx(KEYS[0], 0, pad=3), check=ok)
    assert info.value.code == "nonce_in_use"
    assert len(pool) == 1


def test_invalid_full_by_count_and_bytes():
    pool, _ = make_pool(max_txs=2)
    pool.add(tx(KEYS[0], 0), check=ok)
    pool.add(tx(KEYS[1], 0), check=ok)
    with pytest.raises(MempoolFullError):
        pool.add(tx(KEYS[2], 0), check=ok)
    assert len(pool) == 2
    small = tx(KEYS[0], 0)
    pool, _ = make_pool(max_bytes=len(small.encoded) + 10)
    pool.add(small, check=ok)
    with pytest.raises(MempoolFullError) as info:
        pool.add(tx(KEYS[1], 0), check=ok)
    assert info.value.code == "mempool_full"
    assert len(pool) == 1


def test_ledger_check_refusal_leaves_pool_unchanged():
    pool, _ = make_pool()

    def refuse(tx_, account_nonce):
        raise MempoolError("unauthorized", "no")

    with pytest.raises(MempoolError):
        pool.add(tx(KEYS[0], 0), check=refuse)
    assert len(pool) == 0 and pool.next_nonce(KEYS[0].address) == 0


def test_reap_in_nonce_order_and_gap_held_back():
    pool, _ = make_pool()
    for n in (2, 0, 1, 4):  # 3 missing
        pool.add(tx(KEYS[0], n), check=ok)
    reaped = pool.reap(100, 1 << 20)
    assert [t.nonce for t in reaped] == [0, 1, 2]
    gap = pool.get(tx(KEYS[0], 4).hash)
    assert "waiting for nonce 3" in pool.get_wait_reason(gap)
    assert pool.next_nonce(KEYS[0].address) == 3
    assert [t.nonce for t in pool.reap(2, 1 << 20)] == [0, 1]


def test_update_after_commit_evicts_used_nonces():
    pool, nonces = make_pool()
    included = tx(KEYS[0], 0)
    rival = tx(KEYS[0], 1)
    pool.add(included, check=ok)
    pool.add(rival, check=ok)
    nonces[KEYS[0].address] = 2  # a block consumed nonces 0 and 1 (1 by another tx)
    pool.update_after_commit([included])
    assert len(pool) == 0
    rejection = pool.get_rejection(rival.hash)
    assert rejection.where == "eviction" and rejection.code == "nonce_used"


def test_expire_records_expiry():
    pool, _ = make_pool(ttl_s=10)
    t = tx(KEYS[0], 0)
    pool.add(t, check=ok)
    assert pool.expire(now=0) == []
    expired = pool.expire(now=10**9)
    assert expired == [t.hash]
    assert pool.get_rejection(t.hash).where == "expiry"
    assert len(pool) == 0 and pool.size_bytes == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.booleans()), max_size=40))
def test_reap_never_has_gaps_or_duplicates(ops):
    pool, nonces = make_pool(max_per_sender=8)
    for sender, nonce, commit in ops:
        key = KEYS[sender]
        with contextlib.suppress(MempoolError):
            pool.add(tx(key, nonces.get(key.address, 0) + nonce), check=ok)
        if commit:
            block = pool.reap(5, 1 << 20)
            for t in block:
                nonces[t.sender] = t.nonce + 1
            pool.update_after_commit(block)
        reaped = pool.reap(1000, 1 << 30)
        assert len({t.hash for t in reaped}) == len(reaped)
        by_sender: dict = {}
        for t in reaped:
            by_sender.setdefault(t.sender, []).append(t.nonce)
        for sender_address, seq in by_sender.items():
            start = nonces.get(sender_address, 0)
            assert seq == list(range(start, start + len(seq)))
        assert pool.size_bytes == sum(len(pool.get(h).encoded) for h in list(pool._by_hash))
