"""The mempool: transactions admitted but not yet final, ordered per sender by nonce.

Admission (node/admission.py) checks the bytes and signatures; `add` then checks the
nonce window, the ledger's stateful rules and the caps, raising MempoolError with a
stable code. It also remembers, bounded, why recent transactions will never be final.
It never executes transactions; it offers ready runs of consecutive nonces to blocks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chain.crypto import Address, Hash32
from chain.tx import Transaction
from node.errors import MempoolError, MempoolFullError
from node.rejection import Rejection, RejectionCode, Where


@dataclass(slots=True)
class PendingTx:
    tx: Transaction
    size: int
    added_at: float


class Mempool:
    """Pending transactions, by hash and by (sender, nonce)."""

    def __init__(self, *, get_nonce: Callable[[Address], int],
                 max_txs: int, max_bytes: int, max_per_sender: int, ttl_s: float,
                 max_rejections: int,
                 on_evicted: Callable[[Hash32], None] = lambda tx_hash: None,
                 clock_s: Callable[[], float] | None = None) -> None:
        """`clock_s`: seconds of a clock that never goes back (arrival times, expiry);
        time.monotonic by default."""
        self._get_nonce = get_nonce
        self._clock_s = clock_s if clock_s is not None else time.monotonic
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_per_sender = max_per_sender
        self.ttl_s = ttl_s
        self.max_rejections = max_rejections
        self._on_evicted = on_evicted
        """Told each tx that leaves without becoming final (evicted, expired, flushed,
        dropped), so that the node drops what it keeps for it (its signature verdict)."""
        self._by_hash: OrderedDict[Hash32, PendingTx] = OrderedDict()
        self._by_sender: dict[Address, dict[int, Hash32]] = {}
        self._bytes = 0
        # The rejection memory: least recently recorded or read first out, so a flood of
        # refusals costs at most max_rejections entries (Rejection's size each).
        self._rejected: OrderedDict[Hash32, Rejection] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: Hash32) -> Transaction | None:
        entry = self._by_hash.get(tx_hash)
        return entry.tx if entry else None

    @property
    def rejection_count(self) -> int:
        """Rejections remembered now (at most max_rejections)."""
        return len(self._rejected)

    def get_rejection(self, tx_hash: Hash32) -> Rejection | None:
        rejection = self._rejected.get(tx_hash)
        if rejection is not None:
            self._rejected.move_to_end(tx_hash)  # asked about: keep it longest
        return rejection

    def record_rejection(self, tx_hash: Hash32, rejection: Rejection) -> None:
        self._rejected[tx_hash] = rejection
        self._rejected.move_to_end(tx_hash)
        while len(self._rejected) > self.max_rejections:
            self._rejected.popitem(last=False)

    def _evict(self, tx_hash: Hash32, rejection: Rejection) -> None:
        """Remove a pending tx that will never be final, and say why."""
        if self._remove(tx_hash) is not None:
            self.record_rejection(tx_hash, rejection)
            self._on_evicted(tx_hash)

    def pending_count(self, sender: Address) -> int:
        return len(self._by_sender.get(sender, ()))

    def next_nonce(self, sender: Address) -> int:
        """The nonce a new transaction of `sender` should use: after every pending one."""
        nonce = self._get_nonce(sender)
        pending = self._by_sender.get(sender, {})
        while nonce in pending:
            nonce += 1
        return nonce

    def get_wait_reason(self, tx: Transaction) -> str | None:
        """Why a pending tx is not yet ready for a block, or None if it is."""
        expected = self._get_nonce(tx.sender)
        pending = self._by_sender.get(tx.sender, {})
        while expected in pending and expected < tx.nonce:
            expected += 1
        if expected < tx.nonce:
            return f"waiting for nonce {expected} of this sender; this transaction has {tx.nonce}"
        return None

    def add(self, tx: Transaction, *, check: Callable[[Transaction, int], None]) -> None:
        """Admit `tx` (signatures already verified); raise MempoolError if refused.

        `check(tx, account_nonce)` runs the ledger's stateful admission rules.
        """
        if tx.hash in self._by_hash:
            return
        account_nonce = self._get_nonce(tx.sender)
        if tx.nonce < account_nonce:
            raise MempoolError(RejectionCode.NONCE_TOO_LOW,
                               f"nonce {tx.nonce} is already used; the account's next nonce "
                               f"is {account_nonce}")
        if tx.nonce >= account_nonce + self.max_per_sender:
            raise MempoolError(RejectionCode.NONCE_TOO_HIGH,
                               f"nonce {tx.nonce} is too far ahead of the account's next nonce "
                               f"{account_nonce} (window {self.max_per_sender})")
        by_nonce = self._by_sender.get(tx.sender, {})
        if tx.nonce in by_nonce:
            raise MempoolError(RejectionCode.NONCE_IN_USE,
                               f"another pending transaction of this sender has nonce "
                               f"{tx.nonce} ({by_nonce[tx.nonce].hex()})")
        check(tx, account_nonce)
        size = len(tx.encoded)
        if len(self._by_hash) >= self.max_txs or self._bytes + size > self.max_bytes:
            raise MempoolFullError(f"the mempool is full ({len(self._by_hash)} transactions, "
                                   f"{self._bytes} bytes): busy, retry later")
        self._by_hash[tx.hash] = PendingTx(tx, size, self._clock_s())
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx.hash
        self._bytes += size
        self._rejected.pop(tx.hash, None)

    def _remove(self, tx_hash: Hash32) -> PendingTx | None:
        entry = self._by_hash.pop(tx_hash, None)
        if entry is None:
            return None
        self._bytes -= entry.size
        by_nonce = self._by_sender.get(entry.tx.sender)
        if by_nonce is not None:
            by_nonce.pop(entry.tx.nonce, None)
            if not by_nonce:
                del self._by_sender[entry.tx.sender]
        return entry

    def reap(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Ready transactions for a block: per sender, consecutive nonces from the next one.

        Senders are served in the order their oldest pending transaction arrived.
        """
        chosen: list[Transaction] = []
        size = 0
        visited: set[Address] = set()
        for entry in self._by_hash.values():
            sender = entry.tx.sender
            if sender in visited:
                continue
            visited.add(sender)
            by_nonce = self._by_sender[sender]
            nonce = self._get_nonce(sender)
            while nonce in by_nonce:
                tx = self._by_hash[by_nonce[nonce]].tx
                if len(chosen) >= max_txs or size + len(tx.encoded) > max_bytes:
                    return chosen
                chosen.append(tx)
                size += len(tx.encoded)
                nonce += 1
        return chosen

    def update_after_commit(self, txs: Iterable[Transaction]) -> None:
        """Drop the committed txs and any pending tx whose nonce is now used."""
        senders: set[Address] = set()
        for tx in txs:
            self._remove(tx.hash)
            senders.add(tx.sender)
        for sender in senders:
            by_nonce = self._by_sender.get(sender)
            if not by_nonce:
                continue
            account_nonce = self._get_nonce(sender)
            for nonce in [n for n in by_nonce if n < account_nonce]:
                self._evict(by_nonce[nonce], Rejection(
                    RejectionCode.NONCE_USED,
                    f"another transaction with nonce {nonce} became final", Where.EVICTION))

    def drop_invalid(self, tx_hash: Hash32, rejection: Rejection) -> None:
        """Remove a tx that can never be applied (found while building a block)."""
        self._evict(tx_hash, rejection)

    def expire(self, now: float | None = None) -> list[Hash32]:
        """Drop transactions pending longer than the TTL; return their hashes."""
        deadline = (now if now is not None else self._clock_s()) - self.ttl_s
        # Entries are in arrival order (added_at never decreases along it): stop at the
        # first one still in time instead of scanning a full mempool every second.
        expired = []
        for tx_hash, entry in self._by_hash.items():
            if entry.added_at >= deadline:
                break
            expired.append(tx_hash)
        for tx_hash in expired:
            self._evict(tx_hash, Rejection(
                RejectionCode.EXPIRED, f"not included within {self.ttl_s:.0f} s", Where.EXPIRY))
        return expired

    def flush(self) -> int:
        count = len(self._by_hash)
        for tx_hash in list(self._by_hash):
            self._evict(tx_hash, Rejection(
                RejectionCode.FLUSHED, "the operator flushed the mempool", Where.EVICTION))
        return count
