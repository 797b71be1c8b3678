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


_ORDERED_EVENT_KEYS: set[tuple[str, ...]] = set()
"""Key tuples of event attributes seen in canonical (sorted) order; a block's events
repeat a few shapes, so most events skip the sort."""


def is_plain_events(events: Any) -> bool:
    """True when `events` is a list of `[kind, {text key: bytes, text or integer}]`, each
    map's keys in order: canonical as it stands, so msgpack packs it as codec.encode
    would. A generic canonical walk per event cost 5 % of a loaded node's time."""
    if type(events) is not list:
        return False
    for event in events:
        if type(event) is not list or len(event) != 2:
            return False
        kind, attributes = event
        if type(kind) is not str or type(attributes) is not dict:
            return False
        keys = tuple(attributes)
        if keys not in _ORDERED_EVENT_KEYS:
            if any(type(key) is not str for key in keys) or list(keys) != sorted(keys):
                return False
            if len(_ORDERED_EVENT_KEYS) < 1024:
                _ORDERED_EVENT_KEYS.add(keys)
        for item in attributes.values():
            kind_of_item = type(item)
            if kind_of_item is int:
                if not codec.INT_MIN <= item <= codec.INT_MAX:
                    return False
            elif kind_of_item is not bytes and kind_of_item is not str:
                return False
    return True


def encode_events(events: Sequence[Any]) -> bytes:
    """codec.encode(events), packed directly when `is_plain_events` (the same bytes)."""
    if is_plain_events(events):
        return codec.pack_unchecked(events)
    return codec.encode(list(events))


def compute_events_hash(events: Sequence[Any]) -> Hash32:
    """H(codec.encode(events)): `events` is the list of [kind, {attribute: value}]."""
    return compute_hash(encode_events(events))


def encode_result_leaf(tx_hash: bytes, code: str, events: Sequence[Any]) -> bytes:
    """The encoded leaf of a result, `codec.encode([tx_hash, code, events_hash])`, without
    building a ResultLeaf (a block's root encodes one per transaction)."""
    if type(tx_hash) is not bytes or len(tx_hash) != HASH_SIZE or type(code) is not str \
            or len(code) > MAX_CODE_LEN:
        raise MalformedError("a result leaf needs a 32-byte tx hash and a code of at most "
                             f"{MAX_CODE_LEN} characters")
    return codec.pack_unchecked([tx_hash, code, compute_events_hash(events)])


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


def compute_results_root_of_encoded(leaves: Sequence[bytes]) -> Hash32:
    """compute_results_root over leaves already encoded (`encode_result_leaf`)."""
    return merkle.compute_root(leaves)


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
