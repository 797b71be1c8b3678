"""State proofs and the pure hashing rules of the bucketed state tree.

A key lives in bucket = first 16 bits of sha256(key). A bucket's hash covers its
sorted (sha256(key), sha256(value)) entries; the root is a binary Merkle tree over
the 65,536 bucket hashes. This module does no I/O and trusts no node: an SDK can
check a proof with it alone. Never import the database from here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chain import codec
from chain.crypto import HASH_SIZE, Hash32
from chain.errors import MalformedError

BUCKET_BITS = 16
BUCKET_COUNT = 1 << BUCKET_BITS
ENTRY_SIZE = 2 * HASH_SIZE
PROOF_VERSION = 1

_LEAF_TAG = b"\x00"
_NODE_TAG = b"\x01"


def compute_key_hash(key: bytes) -> Hash32:
    return Hash32(hashlib.sha256(key).digest())


def compute_value_hash(value: bytes) -> Hash32:
    return Hash32(hashlib.sha256(value).digest())


def get_bucket(key_hash: bytes) -> int:
    """The bucket of a key, from the first 16 bits of its hash."""
    return (key_hash[0] << 8) | key_hash[1]


def compute_bucket_hash(entries: bytes) -> Hash32:
    """Hash of a bucket given its entries: concatenated 64-byte (key hash, value hash),
    sorted by key hash. The empty bucket hashes to H(0x00)."""
    return Hash32(hashlib.sha256(_LEAF_TAG + entries).digest())


def compute_node_hash(left: bytes, right: bytes) -> Hash32:
    return Hash32(hashlib.sha256(_NODE_TAG + left + right).digest())


EMPTY_BUCKET_HASH = compute_bucket_hash(b"")


def compute_tree_root(bucket_hashes: dict[int, bytes]) -> Hash32:
    """Root over 65,536 buckets; `bucket_hashes` lists the non-empty ones."""
    level = [bucket_hashes.get(i, EMPTY_BUCKET_HASH) for i in range(BUCKET_COUNT)]
    while len(level) > 1:
        level = [compute_node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return Hash32(level[0])


def compute_state_root(items: Iterable[tuple[bytes, bytes]]) -> Hash32:
    """The state root of a whole state from scratch (reference; slow, for checks)."""
    buckets: dict[int, list[bytes]] = {}
    for key, value in items:
        key_hash = compute_key_hash(key)
        buckets.setdefault(get_bucket(key_hash), []).append(
            key_hash + compute_value_hash(value))
    return compute_tree_root(
        {b: compute_bucket_hash(b"".join(sorted(entries))) for b, entries in buckets.items()})


@dataclass(frozen=True)
class StateProof:
    """Proof that a key has a given value, or no value, under a state root."""

    height: int
    """The height whose state the node claims this proves (informational)."""
    root: Hash32
    """The root the node claims; verifiers use a root from a certified header instead."""
    entries: tuple[tuple[Hash32, Hash32], ...]
    """All (key hash, value hash) entries of the key's bucket, sorted by key hash."""
    siblings: tuple[Hash32, ...]
    """The 16 sibling hashes on the bucket's path, from the bucket up to the root."""

    def to_value(self) -> list[Any]:
        return [PROOF_VERSION, self.height, self.root,
                [[kh, vh] for kh, vh in self.entries], list(self.siblings)]

    def encode(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_value(cls, value: Any) -> StateProof:
        version, height, root, entries, siblings = codec.expect_tuple(value, 5, "state proof")
        if version != PROOF_VERSION:
            raise MalformedError(f"state proof version {version!r} is not supported")
        if not isinstance(entries, tuple) or not isinstance(siblings, tuple):
            raise MalformedError("state proof: entries and siblings must be arrays")
        if len(siblings) != BUCKET_BITS:
            raise MalformedError(f"state proof: expected {BUCKET_BITS} siblings")
        return cls(
            height=codec.expect_int(height, "state proof height"),
            root=Hash32(codec.expect_bytes(root, "state proof root", size=HASH_SIZE)),
            entries=tuple(_entry_from_value(e) for e in entries),
            siblings=tuple(Hash32(codec.expect_bytes(s, "state proof sibling", size=HASH_SIZE))
                           for s in siblings),
        )

    @classmethod
    def decode(cls, data: bytes) -> StateProof:
        return cls.from_value(codec.decode(data, max_size=1024 * 1024))

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict, bytes as lowercase hex."""
        return {
            "version": PROOF_VERSION,
            "height": self.height,
            "root": self.root.hex(),
            "entries": [{"key_hash": kh.hex(), "value_hash": vh.hex()} for kh, vh in self.entries],
            "siblings": [s.hex() for s in self.siblings],
        }

    @classmethod
    def from_json(cls, doc: Any) -> StateProof:
        try:
            value = [doc["version"], doc["height"], bytes.fromhex(doc["root"]),
                     tuple((bytes.fromhex(e["key_hash"]), bytes.fromhex(e["value_hash"]))
                           for e in doc["entries"]),
                     tuple(bytes.fromhex(s) for s in doc["siblings"])]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedError(f"state proof JSON is incomplete or malformed: {e!r}") from e
        return cls.from_value(tuple(value))


def _entry_from_value(value: Any) -> tuple[Hash32, Hash32]:
    key_hash, value_hash = codec.expect_tuple(value, 2, "state proof entry")
    return (Hash32(codec.expect_bytes(key_hash, "entry key hash", size=HASH_SIZE)),
            Hash32(codec.expect_bytes(value_hash, "entry value hash", size=HASH_SIZE)))


def verify_state_proof(proof: StateProof, key: bytes, value: bytes | None,
                       root: bytes) -> bool:
    """True when `proof` shows that `key` holds `value` (None: is absent) under `root`.

    `root` must come from a header the caller trusts (a certified block), never from
    the proof itself.
    """
    if len(proof.siblings) != BUCKET_BITS:
        return False
    key_hash = compute_key_hash(key)
    bucket = get_bucket(key_hash)
    found: bytes | None = None
    previous = b""
    for entry_key_hash, entry_value_hash in proof.entries:
        if len(entry_key_hash) != HASH_SIZE or len(entry_value_hash) != HASH_SIZE:
            return False
        if get_bucket(entry_key_hash) != bucket or entry_key_hash <= previous:
            return False
        previous = entry_key_hash
        if entry_key_hash == key_hash:
            found = entry_value_hash
    expected = None if value is None else compute_value_hash(value)
    if found != expected:
        return False
    node = compute_bucket_hash(b"".join(kh + vh for kh, vh in proof.entries))
    index = bucket
    for sibling in proof.siblings:
        if len(sibling) != HASH_SIZE:
            return False
        node = compute_node_hash(sibling, node) if index & 1 else compute_node_hash(node, sibling)
        index >>= 1
    return node == root
