"""Admission: may each transaction handed to this node wait in its mempool?

RPC and gossip decode through `decode_tx` (the size limit) and admit through
Node.submit_txs: chain id, signature, the mempool's and the ledger's rules, one verdict
each. A refusal never consumes a nonce or changes chain state; what it leaves is
bounded, and what it costs a relaying peer is decided here. Never relays or builds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chain.crypto import Address, Hash32
from chain.errors import ChainError
from chain.genesis import ChainParams
from chain.tx import Transaction, validate_chain_id
from ledger.errors import LedgerError
from ledger.execution import Ledger
from ledger.state import StateReader
from node.errors import MempoolError
from node.mempool import Mempool
from node.rejection import Rejection, RejectionCode, Where
from node.runtime import Verifier
from storage.chain_store import ChainStore


def _as_verdict(error: MempoolError) -> MempoolError:
    """`error`, raised on its way here, as a plain value to hand back. Its traceback (and
    its cause's) holds the frames that raised it, and they the batch being admitted and
    the list of verdicts: a reference cycle that kept every refused transaction, decoded,
    until the garbage collector's oldest generation ran (1 to 3 KiB a refusal)."""
    error.__traceback__ = None
    error.__cause__ = error.__context__ = None
    return error


class Admission:
    """The node's admission rules over its mempool, verifier and committed state."""

    def __init__(self, *, chain_id: str, ledger: Ledger, state: StateReader,
                 get_params: Callable[[], ChainParams], mempool: Mempool,
                 verifier: Verifier, store: ChainStore) -> None:
        self.chain_id = chain_id
        self.ledger = ledger
        self.state = state
        self._get_params = get_params
        """The chain parameters in force (governance may change them at a commit)."""
        self.mempool = mempool
        self.verifier = verifier
        self.store = store

    def decode_tx(self, data: bytes, tx_hash: Hash32 | None = None) -> Transaction:
        """A transaction from a client's or a peer's bytes; raises ChainError (malformed,
        too_large). The size limit in force is checked here, once, before decoding: every
        transaction from outside comes this way (`tx_hash`: see Transaction.decode)."""
        return Transaction.decode(data, max_size=self._get_params().max_tx_bytes,
                                  tx_hash=tx_hash)

    async def admit(self, txs: Sequence[Transaction]) -> list[MempoolError | None]:
        """Admit `txs` to the mempool; one error (or None) per tx, in order."""
        verdicts = await self.verifier.verify(txs)
        errors = [self._admit_one(tx, ok) for tx, ok in zip(txs, verdicts, strict=True)]
        for tx in txs:
            if tx.hash not in self.mempool:
                self.verifier.forget(tx.hash)  # refused, or already final: not on its way
        return errors

    def _admit_one(self, tx: Transaction, signature_ok: bool) -> MempoolError | None:
        try:
            self._validate_admissible(tx, signature_ok)
            if tx.hash in self.mempool:
                return None  # already pending: idempotent
            try:
                self.mempool.add(tx, check=self._check_ledger)
            except MempoolError as e:
                # Only a transaction whose nonce is used can be final already: look it
                # up then, not for every submission.
                if e.code is RejectionCode.NONCE_TOO_LOW and \
                        self.store.get_tx_location(tx.hash) is not None:
                    return None  # already final: idempotent
                raise
        except MempoolError as e:
            if not e.code.is_busy:
                self.mempool.record_rejection(tx.hash,
                                              Rejection(e.code, e.message, Where.ADMISSION))
            return _as_verdict(e)
        except ChainError as e:
            error = MempoolError(RejectionCode(e.code), e.message)
            self.mempool.record_rejection(tx.hash,
                                          Rejection(error.code, e.message, Where.ADMISSION))
            return error
        return None

    def _validate_admissible(self, tx: Transaction, signature_ok: bool) -> None:
        """The checks of the bytes alone, before any state is read (their size was
        checked where they were decoded, `decode_tx`)."""
        validate_chain_id(tx, self.chain_id)
        if not signature_ok:
            raise MempoolError(RejectionCode.BAD_SIGNATURE, "a signature does not verify "
                               "over the transaction's signing bytes")

    def _check_ledger(self, tx: Transaction, account_nonce: int) -> None:
        try:
            self.ledger.check_admission(self.state, tx, expected_nonce=account_nonce)
        except LedgerError as e:
            raise MempoolError(RejectionCode(e.code), e.message) from e

    def is_recently_seen(self, tx_hash: Hash32) -> bool:
        """True for a tx that is final or that this node refused for good (its bytes are
        wrong, or its nonce is used): no need to decode it again."""
        rejection = self.mempool.get_rejection(tx_hash)
        if rejection is not None and rejection.code.is_permanent:
            return True
        return self.store.get_tx_location(tx_hash) is not None

    def get_rejection_status(self, tx_hash: Hash32) -> dict[str, Any] | None:
        """tx_get's answer for a transaction this node refused or dropped, if it still
        remembers it (the rejection memory is bounded)."""
        rejection = self.mempool.get_rejection(tx_hash)
        if rejection is None:
            return None
        return {"hash": tx_hash.hex(), "status": "rejected", "code": rejection.code,
                "message": rejection.message, "where": rejection.where}


NONCE_CACHE_ENTRIES = 65_536
"""Account nonces kept between two commits (about 150 bytes each): a sender's nonce is
read for each of its transactions, and senders that do not exist are read too."""


class CommittedNonces:
    """Account nonces of the committed state, read once per height; cleared on commit.

    Bounded: a flood of transactions from accounts that do not exist adds one entry
    each, and while no block commits (no quorum) nothing else would clear them.
    """

    def __init__(self, read: Callable[[Address], int],
                 max_entries: int = NONCE_CACHE_ENTRIES) -> None:
        self._read = read
        self._max_entries = max_entries
        self._nonces: dict[Address, int] = {}

    def get(self, address: Address) -> int:
        nonce = self._nonces.get(address)
        if nonce is None:
            if len(self._nonces) >= self._max_entries:
                self._nonces.clear()  # all are read again from the state cache, cheaply
            nonce = self._nonces[address] = self._read(address)
        return nonce

    def clear(self) -> None:
        self._nonces.clear()

    def __len__(self) -> int:
        return len(self._nonces)


PENALTY_UNKNOWN_SENDERS = 5
"""Points a peer loses, at most once per interval, for relaying more transactions of
senders without an account than its allowance (docs/p2p.md#scoring-and-bans)."""


@dataclass(slots=True)
class _Allowance:
    tokens: float
    updated_at: float
    penalized_at: float


class UnknownSenderAllowance:
    """How many transactions of senders that have no account a peer may relay for free.

    An honest relay admitted them, so it knows the sender and we do not yet: we are a
    block or two behind it, which passes. A relay that goes on costs us a signature
    check each for nothing. Beyond `burst` (refilled at `per_s`), it is penalized
    mildly, at most once per `interval_s`: a sustained flood gets it banned in about
    twenty seconds, a lagging moment costs a few points that recover.
    """

    def __init__(self, *, burst: float = 10_000, per_s: float = 1_000,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 max_peers: int = 1024) -> None:
        self.burst = burst
        self.per_s = per_s
        self.interval_s = interval_s
        self._clock = clock
        self._max_peers = max_peers
        self._peers: dict[str, _Allowance] = {}

    def charge(self, peer_id: str, count: int) -> bool:
        """Count `count` such transactions from `peer_id`; True when it is to be
        penalized now."""
        now = self._clock()
        allowance = self._get(peer_id, now)
        allowance.tokens = min(self.burst, allowance.tokens
                               + (now - allowance.updated_at) * self.per_s) - count
        allowance.updated_at = now
        if allowance.tokens >= 0 or now - allowance.penalized_at < self.interval_s:
            return False
        allowance.penalized_at = now
        return True

    def _get(self, peer_id: str, now: float) -> _Allowance:
        allowance = self._peers.get(peer_id)
        if allowance is None:
            if len(self._peers) >= self._max_peers:  # forget the longest known
                del self._peers[next(iter(self._peers))]
            allowance = self._peers[peer_id] = _Allowance(self.burst, now, -float("inf"))
        return allowance

    def __len__(self) -> int:
        return len(self._peers)
