"""The results root: what a block header commits to about the outcome of its transactions.

Each transaction of a block has one result leaf, `codec.encode([tx_hash, code,
events_hash])` with `events_hash = H(codec.encode(events))`; the header's
`results_root` is the Merkle root (chain.merkle) over these leaves in block order. The
human message of a result is not committed: it may be reworded without a protocol
change. Pure: builds and checks leaves and proofs, never reads a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain import codec, merkle
from chain.crypto import HASH_SIZE, Hash32, compute_hash
from chain.errors import MalformedError

OK_CODE = "ok"
"""The result code of a transaction that succeeded; any other code is a refusal."""

MAX_CODE_LEN = 64
"""Longest result code (the ledger's rejection codes are short snake_case names)."""


def compute_events_hash(events: Sequence[Any]) -> Hash32:
    """H(codec.encode(events)): `events` is the list of [kind, {attribute: value}]."""
    return compute_hash(codec.encode(list(events)))


@dataclass(frozen=True, slots=True)
class ResultLeaf:
    """One transaction's committed result."""

    tx_hash: Hash32
    """The hash of the transaction this is the result of."""
    code: str
    """"ok" when it succeeded, else the ledger's rejection code."""
    events_hash: Hash32
    """H(codec.encode(events)) of the events it emitted ([] when it failed)."""

    @property
    def is_ok(self) -> bool:
        return self.code == OK_CODE

    @property
    def encoded(self) -> bytes:
        return codec.encode([self.tx_hash, self.code, self.events_hash])

    @classmethod
    def of(cls, tx_hash: bytes, code: str, events: Sequence[Any]) -> ResultLeaf:
        return cls(Hash32(bytes(tx_hash)), code, compute_events_hash(events))

    @classmethod
    def decode(cls, data: bytes) -> ResultLeaf:
        """The leaf of `data`; raises MalformedError unless it is a canonical leaf."""
        tx_hash, code, events_hash = codec.expect_tuple(
            codec.decode(data, max_size=256), 3, "result leaf")
        return cls(Hash32(codec.expect_bytes(tx_hash, "result tx_hash", size=HASH_SIZE)),
                   codec.expect_str(code, "result code", max_len=MAX_CODE_LEN),
                   Hash32(codec.expect_bytes(events_hash, "result events_hash",
                                             size=HASH_SIZE)))


def compute_results_root(leaves: Sequence[ResultLeaf]) -> Hash32:
    """The Merkle root over the encoded leaves, in block order (H("") for no tx)."""
    return merkle.compute_root([leaf.encoded for leaf in leaves])


def compute_result_proof(leaves: Sequence[ResultLeaf], index: int) -> tuple[Hash32, ...]:
    """The audit path of leaf `index` to the results root (chain.merkle.compute_proof)."""
    return merkle.compute_proof([leaf.encoded for leaf in leaves], index)


def is_valid_result_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                          results_root: bytes) -> bool:
    """True when `path` proves the encoded `leaf` at `index` of `size` under the root."""
    return merkle.is_valid_proof(leaf, index, size, path, results_root)


def validate_result_leaf(data: bytes, tx_hash: bytes) -> ResultLeaf:
    """The decoded leaf; raises MalformedError unless it is canonical and names `tx_hash`."""
    leaf = ResultLeaf.decode(data)
    if leaf.tx_hash != tx_hash:
        raise MalformedError(f"the result leaf is for transaction {leaf.tx_hash.hex()}, "
                             f"not {bytes(tx_hash).hex()}")
    return leaf
