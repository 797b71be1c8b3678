"""Mempool admission, ordering and eviction, with a fake ledger nonce and admission check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import Address, Hash32
from chain.tx import Transaction
from node.errors import MempoolError
from node.mempool import Mempool
from node.rejection import MAX_REJECTION_MESSAGE, Rejection, RejectionCode, Where

ALICE = Address(b"\xa1" * 20)
BOB = Address(b"\xb0" * 20)
CAROL = Address(b"\xc0" * 20)
WINDOW = 8


def make_tx(sender: Address, nonce: int, amount: int = 1, memo: str = "") -> Transaction:
    """An unsigned transfer: the mempool trusts its caller to have verified signatures."""
    fields: dict[str, object] = {"to": BOB, "asset": "GOV", "amount": amount}
    if memo:
        fields["memo"] = memo
    return Transaction("govchain-test", sender, nonce, "transfer", fields)


class FakeLedger:
    """Account nonces as the ledger would report them, advanced by `commit`."""

    def __init__(self) -> None:
        self.nonces: dict[Address, int] = {}
        self.checked: list[tuple[Transaction, int]] = []

    def get_nonce(self, address: Address) -> int:
        return self.nonces.get(address, 0)

    def check(self, tx: Transaction, account_nonce: int) -> None:
        self.checked.append((tx, account_nonce))

    def commit(self, pool: Mempool, txs: list[Transaction]) -> None:
        for tx in txs:
            assert tx.nonce == self.get_nonce(tx.sender)
            self.nonces[tx.sender] = tx.nonce + 1
        pool.update_after_commit(txs)


def make_pool(ledger: FakeLedger, *, max_txs: int = 1000, max_bytes: int = 10**6,
              max_per_sender: int = WINDOW, ttl_s: float = 60.0,
              max_rejections: int = 1000,
              on_evicted: Callable[[Hash32], None] = lambda tx_hash: None) -> Mempool:
    return Mempool(get_nonce=ledger.get_nonce, max_txs=max_txs, max_bytes=max_bytes,
                   max_per_sender=max_per_sender, ttl_s=ttl_s, max_rejections=max_rejections,
                   on_evicted=on_evicted)


def contents(pool: Mempool) -> tuple[int, int, tuple[object, ...]]:
    """What a refused transaction must leave unchanged."""
    return len(pool), pool.size_bytes, tuple(pool._by_hash)


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def pool(ledger: FakeLedger) -> Mempool:
    return make_pool(ledger)


def test_add_admits_and_is_idempotent(pool: Mempool, ledger: FakeLedger) -> None:
    txs = [make_tx(ALICE, 0), make_tx(BOB, 0), make_tx(ALICE, 1)]
    for tx in txs:
        pool.add(tx, check=ledger.check)
    assert len(pool) == 3
    assert pool.size_bytes == sum(len(tx.encoded) for tx in txs)
    assert all(tx.hash in pool and pool.get(tx.hash) == tx for tx in txs)
    assert [(tx.nonce, nonce) for tx, nonce in ledger.checked] == [(0, 0), (0, 0), (1, 0)]
    before = contents(pool)
    pool.add(txs[0], check=ledger.check)  # the same tx again: no change, no second check
    assert contents(pool) == before
    assert len(ledger.checked) == 3
    assert pool.pending_count(ALICE) == 2 and pool.pending_count(BOB) == 1


def test_check_refusal_propagates_and_leaves_pool(pool: Mempool) -> None:
    def refuse(tx: Transaction, account_nonce: int) -> None:
        raise MempoolError("insufficient_balance", "no money")

    before = contents(pool)
    with pytest.raises(MempoolError) as info:
        pool.add(make_tx(ALICE, 0), check=refuse)
    assert info.value.code == "insufficient_balance"
    assert contents(pool) == before


def assert_refused(pool: Mempool, tx: Transaction, code: str,
                   check: Callable[[Transaction, int], None]) -> MempoolError:
    before = contents(pool)
    with pytest.raises(MempoolError) as info:
        pool.add(tx, check=check)
    assert info.value.code == code
    assert tx.hash not in pool
    assert contents(pool) == before
    return info.value


def test_invalid_nonce_too_low(pool: Mempool, ledger: FakeLedger) -> None:
    ledger.nonces[ALICE] = 5
    pool.add(make_tx(ALICE, 5), check=ledger.check)
    error = assert_refused(pool, make_tx(ALICE, 4), "nonce_too_low", ledger.check)
    assert "next nonce is 5" in error.message


def test_invalid_nonce_too_high_outside_window(pool: Mempool, ledger: FakeLedger) -> None:
    ledger.nonces[ALICE] = 3
    pool.add(make_tx(ALICE, 3 + WINDOW - 1), check=ledger.check)  # last nonce in the window
    assert_refused(pool, make_tx(ALICE, 3 + WINDOW), "nonce_too_high", ledger.check)
    assert_refused(pool, make_tx(ALICE, 10**9), "nonce_too_high", ledger.check)


def test_invalid_nonce_in_use(pool: Mempool, ledger: FakeLedger) -> None:
    first = make_tx(ALICE, 0, amount=1)
    pool.add(first, check=ledger.check)
    error = assert_refused(pool, make_tx(ALICE, 0, amount=2), "nonce_in_use", ledger.check)
    assert first.hash.hex() in error.message
    assert pool.get(first.hash) == first


def test_invalid_mempool_full_by_count(ledger: FakeLedger) -> None:
    pool = make_pool(ledger, max_txs=2)
    pool.add(make_tx(ALICE, 0), check=ledger.check)
    pool.add(make_tx(BOB, 0), check=ledger.check)
    assert_refused(pool, make_tx(CAROL, 0), "mempool_full", ledger.check)
    # A tx already held is still answered without error when the pool is full.
    pool.add(make_tx(ALICE, 0), check=ledger.check)


def test_invalid_mempool_full_by_bytes(ledger: FakeLedger) -> None:
    small, big = make_tx(ALICE, 0), make_tx(BOB, 0, memo="x" * 200)
    pool = make_pool(ledger, max_bytes=len(small.encoded) + len(big.encoded) - 1)
    pool.add(small, check=ledger.check)
    assert_refused(pool, big, "mempool_full", ledger.check)
    pool.add(make_tx(CAROL, 0), check=ledger.check)  # a small one still fits
    assert pool.size_bytes <= pool.max_bytes


def test_reap_consecutive_nonces_from_account_nonce(pool: Mempool, ledger: FakeLedger) -> None:
    ledger.nonces[ALICE] = 2
    for nonce in (4, 2, 3):
        pool.add(make_tx(ALICE, nonce), check=ledger.check)
    pool.add(make_tx(BOB, 0), check=ledger.check)
    reaped = pool.reap(100, 10**6)
    # Senders in the order of their oldest pending tx; nonces in order within a sender.
    assert [(tx.sender, tx.nonce) for tx in reaped] == [
        (ALICE, 2), (ALICE, 3), (ALICE, 4), (BOB, 0)]
    assert len(pool) == 4  # reaping does not remove


def test_reap_respects_max_txs_and_max_bytes(pool: Mempool, ledger: FakeLedger) -> None:
    txs = [make_tx(ALICE, n) for n in range(5)]
    for tx in txs:
        pool.add(tx, check=ledger.check)
    assert pool.reap(3, 10**6) == txs[:3]
    size = len(txs[0].encoded)
    assert pool.reap(100, 2 * size + size // 2) == txs[:2]
    assert pool.reap(0, 10**6) == []
    assert pool.reap(100, size - 1) == []


def test_nonce_gap_is_held_back_with_reason(pool: Mempool, ledger: FakeLedger) -> None:
    first, third = make_tx(ALICE, 0), make_tx(ALICE, 2)
    pool.add(first, check=ledger.check)
    pool.add(third, check=ledger.check)
    assert pool.reap(100, 10**6) == [first]
    assert pool.get_wait_reason(first) is None
    reason = pool.get_wait_reason(third)
    assert reason is not None and "waiting for nonce 1" in reason
    second = make_tx(ALICE, 1)
    pool.add(second, check=ledger.check)
    assert pool.get_wait_reason(third) is None
    assert pool.reap(100, 10**6) == [first, second, third]


def test_next_nonce_counts_pending(pool: Mempool, ledger: FakeLedger) -> None:
    ledger.nonces[ALICE] = 7
    assert pool.next_nonce(ALICE) == 7
    pool.add(make_tx(ALICE, 7), check=ledger.check)
    pool.add(make_tx(ALICE, 8), check=ledger.check)
    pool.add(make_tx(ALICE, 10), check=ledger.check)  # after a gap: not counted
    assert pool.next_nonce(ALICE) == 9
    assert pool.next_nonce(BOB) == 0


def test_update_after_commit_removes_included_and_evicts_stale(
        pool: Mempool, ledger: FakeLedger) -> None:
    ours = [make_tx(ALICE, n) for n in range(3)]
    for tx in ours:
        pool.add(tx, check=ledger.check)
    bob = make_tx(BOB, 0)
    pool.add(bob, check=ledger.check)
    # Another node's block holds different txs with Alice's nonces 0 and 1.
    theirs = [make_tx(ALICE, 0, amount=50), make_tx(ALICE, 1, amount=50)]
    ledger.commit(pool, theirs)
    assert ours[0].hash not in pool and ours[1].hash not in pool
    for stale in ours[:2]:
        rejection = pool.get_rejection(stale.hash)
        assert rejection is not None
        assert (rejection.code, rejection.where) == ("nonce_used", "eviction")
    assert pool.get(ours[2].hash) == ours[2] and pool.get(bob.hash) == bob
    assert len(pool) == 2
    assert pool.size_bytes == len(ours[2].encoded) + len(bob.encoded)
    assert pool.reap(100, 10**6) == [ours[2], bob]
    ledger.commit(pool, [ours[2], bob])  # included: removed, no rejection recorded
    assert len(pool) == 0 and pool.size_bytes == 0
    assert pool.get_rejection(ours[2].hash) is None and pool.get_rejection(bob.hash) is None


def test_expire_records_expiry(ledger: FakeLedger) -> None:
    pool = make_pool(ledger, ttl_s=10.0)
    old, young = make_tx(ALICE, 0), make_tx(BOB, 0)
    pool.add(old, check=ledger.check)
    pool.add(young, check=ledger.check)
    pool._by_hash[old.hash].added_at -= 20.0
    added_young = pool._by_hash[young.hash].added_at
    assert pool.expire(now=added_young + 5.0) == [old.hash]
    assert old.hash not in pool and young.hash in pool
    rejection = pool.get_rejection(old.hash)
    assert rejection is not None and (rejection.code, rejection.where) == ("expired", "expiry")
    assert pool.size_bytes == len(young.encoded)
    assert pool.expire(now=added_young + 11.0) == [young.hash]
    assert len(pool) == 0 and pool.size_bytes == 0


def test_expire_takes_exactly_the_transactions_older_than_the_ttl(
        ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrivals one second apart, interleaving senders, one readmitted late: expiry
    # takes those that arrived before the deadline and nothing after, in order.
    clock = iter(range(100, 200))
    monkeypatch.setattr("node.mempool.time.monotonic", lambda: float(next(clock)))
    pool = make_pool(ledger, ttl_s=10.0)
    txs = [make_tx(sender, nonce) for nonce in range(3) for sender in (ALICE, BOB, CAROL)]
    for tx in txs:
        pool.add(tx, check=ledger.check)  # arrive at 100 ... 108
    pool.expire(now=104.5 + 10.0)  # 100 ... 104 are past the TTL
    assert [tx.hash in pool for tx in txs] == [False] * 5 + [True] * 4
    pool.add(txs[0], check=ledger.check)  # again, at 109
    assert pool.expire(now=107.5 + 10.0) == [txs[5].hash, txs[6].hash, txs[7].hash]
    assert list(pool._by_hash) == [txs[8].hash, txs[0].hash]


def test_readmission_clears_an_old_rejection(ledger: FakeLedger) -> None:
    pool = make_pool(ledger, ttl_s=10.0)
    tx = make_tx(ALICE, 0)
    pool.add(tx, check=ledger.check)
    pool.expire(now=pool._by_hash[tx.hash].added_at + 11.0)
    assert pool.get_rejection(tx.hash) is not None
    pool.add(tx, check=ledger.check)
    assert tx.hash in pool and pool.get_rejection(tx.hash) is None


def refusal(i: int, message: str = "no account") -> tuple[Hash32, Rejection]:
    return Hash32(i.to_bytes(32, "big")), Rejection(RejectionCode.UNKNOWN_ACCOUNT, message,
                                                    Where.ADMISSION)


def test_rejection_memory_is_a_bounded_lru(ledger: FakeLedger) -> None:
    pool = make_pool(ledger, max_rejections=10)
    for i in range(10):
        pool.record_rejection(*refusal(i))
    assert pool.get_rejection(refusal(0)[0]) is not None  # read: now the most recent
    for i in range(10, 35):  # more refusals than the bound
        pool.record_rejection(*refusal(i))
        assert pool.rejection_count <= 10
    assert pool.rejection_count == 10
    kept = [i for i in range(35) if pool.get_rejection(refusal(i)[0]) is not None]
    assert kept == list(range(25, 35))


def test_rejection_memory_keeps_only_a_short_message(ledger: FakeLedger) -> None:
    pool = make_pool(ledger)
    tx_hash, rejection = refusal(1, "x" * 10_000)
    pool.record_rejection(tx_hash, Rejection.of(rejection.code, rejection.message,
                                                rejection.where))
    kept = pool.get_rejection(tx_hash)
    assert kept is not None and len(kept.message) == MAX_REJECTION_MESSAGE
    assert (kept.code, kept.where) == ("unknown_account", "admission")


def test_every_tx_that_leaves_unfinal_is_reported_evicted(ledger: FakeLedger) -> None:
    # So that the node drops what it keeps for it (its signature verdict).
    evicted: list[Hash32] = []
    pool = make_pool(ledger, ttl_s=10.0, on_evicted=evicted.append)
    stale, expiring, dropped, flushed = (make_tx(ALICE, 0), make_tx(BOB, 0),
                                         make_tx(CAROL, 0), make_tx(CAROL, 1))
    for tx in (stale, expiring, dropped, flushed):
        pool.add(tx, check=ledger.check)
    ledger.commit(pool, [make_tx(ALICE, 0, amount=9)])  # another tx took nonce 0
    assert evicted == [stale.hash]
    pool._by_hash[expiring.hash].added_at -= 20.0
    pool.expire(now=pool._by_hash[dropped.hash].added_at + 5.0)
    assert evicted == [stale.hash, expiring.hash]
    pool.drop_invalid(dropped.hash, Rejection(RejectionCode.UNAUTHORIZED, "not signed",
                                              Where.EXECUTION))
    assert evicted[2:] == [dropped.hash]
    pool.flush()
    assert evicted[3:] == [flushed.hash]
    final = make_tx(ALICE, 1)
    pool.add(final, check=ledger.check)
    ledger.commit(pool, [final])  # final, not evicted
    assert len(evicted) == 4


# ------------------------------------------------------------------ property

SENDERS = [Address(bytes([i + 1]) * 20) for i in range(3)]

add_op = st.tuples(st.just("add"), st.integers(0, len(SENDERS) - 1),
                   st.integers(-2, WINDOW + 2), st.integers(1, 3))
commit_op = st.tuples(st.just("commit"), st.integers(0, 6), st.integers(0, 400), st.just(0))
foreign_op = st.tuples(st.just("foreign"), st.integers(0, len(SENDERS) - 1), st.just(0),
                       st.integers(100, 10**9))
"""A block from another proposer: the sender's next nonce, by a tx this pool never saw."""


def check_invariants(pool: Mempool, ledger: FakeLedger) -> None:
    entries = list(pool._by_hash.values())
    assert pool.size_bytes == sum(len(e.tx.encoded) for e in entries) == \
        sum(e.size for e in entries)
    assert len(pool) == sum(len(by_nonce) for by_nonce in pool._by_sender.values())
    assert len(pool) <= pool.max_txs and pool.size_bytes <= pool.max_bytes
    for sender, by_nonce in pool._by_sender.items():
        assert by_nonce, "no empty per-sender maps"
        assert all(n >= ledger.get_nonce(sender) for n in by_nonce)
        assert all(pool._by_hash[h].tx.nonce == n for n, h in by_nonce.items())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(add_op, commit_op, foreign_op), max_size=60),
       st.integers(1, 12), st.integers(90, 1200))
def test_property_reap_never_gaps_or_duplicates(
        ops: list[tuple[str, int, int, int]], max_txs: int, max_bytes: int) -> None:
    ledger = FakeLedger()
    pool = make_pool(ledger, max_txs=max_txs, max_bytes=max_bytes)
    for op in ops:
        if op[0] == "add":
            _, index, offset, amount = op
            sender = SENDERS[index]
            tx = make_tx(sender, ledger.get_nonce(sender) + offset, amount)
            try:
                pool.add(tx, check=ledger.check)
            except MempoolError as e:
                assert e.code in ("nonce_too_low", "nonce_too_high", "nonce_in_use",
                                  "mempool_full")
        elif op[0] == "foreign":
            sender = SENDERS[op[1]]
            ledger.commit(pool, [make_tx(sender, ledger.get_nonce(sender), op[3])])
        else:
            _, reap_txs, reap_bytes, _ = op
            reaped = pool.reap(reap_txs, reap_bytes)
            assert len(reaped) <= reap_txs
            assert sum(len(tx.encoded) for tx in reaped) <= reap_bytes
            assert len({tx.hash for tx in reaped}) == len(reaped)
            expected = {s: ledger.get_nonce(s) for s in SENDERS}
            for tx in reaped:
                assert tx.nonce == expected[tx.sender], "a nonce gap or a duplicate nonce"
                expected[tx.sender] += 1
            ledger.commit(pool, reaped)
            assert all(tx.hash not in pool for tx in reaped)
        check_invariants(pool, ledger)
