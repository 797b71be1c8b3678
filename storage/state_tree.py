"""The authenticated state tree: root updates per block over the changed keys only.

Bucket entries and bucket hashes live in the database; the 131,071 tree nodes above
them live in memory, rebuilt from the stored bucket hashes at open. `prepare` is
speculative (it changes nothing); only `on_committed`, called after the batch that
holds the prepared ops is durable, moves the tree. Hashing rules: chain.state_proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from chain.crypto import Hash32
from chain.state_proof import (
    BUCKET_BITS,
    BUCKET_COUNT,
    EMPTY_BUCKET_HASH,
    ENTRY_SIZE,
    StateProof,
    compute_bucket_hash,
    compute_key_hash,
    get_bucket,
)
from storage import schema
from storage.errors import InconsistentDataError, StalePreparedStateError
from storage.kv import KVStore, WriteBatch

# Inlined copy of proof.compute_node_hash for the hot loops; must stay identical.
_NODE_TAG = b"\x01"

LARGE_UPDATE_BUCKETS = 4096
"""A change touching more buckets than this is prepared on a whole copy of the node
array (a pointer copy of about 1 MB, cheaper than a dict of that many nodes, and
committing is a swap); a smaller one lists only the nodes it changes, which costs a
few microseconds where the copy costs milliseconds."""


def _empty_tree_nodes() -> list[bytes]:
    """Every node of the tree over empty buckets (heap layout; index 0 unused): each
    level holds one hash, that of a subtree of empty buckets of its height."""
    nodes = [b""] * (2 * BUCKET_COUNT)
    width, level_hash = BUCKET_COUNT, bytes(EMPTY_BUCKET_HASH)
    while width:
        nodes[width:2 * width] = [level_hash] * width
        width, level_hash = width >> 1, hashlib.sha256(_NODE_TAG + level_hash
                                                       + level_hash).digest()
    return nodes


_EMPTY_TREE = _empty_tree_nodes()


@dataclass(frozen=True)
class PreparedState:
    """State changes with their new root and everything needed to commit them."""

    base_root: Hash32
    """The root of the state these changes apply to."""
    root: Hash32
    """The root after the changes."""
    changes: Mapping[bytes, bytes | None]
    """State key -> new value, None to delete."""
    buckets: Mapping[int, bytes]
    """Bucket -> its new sorted entries (empty bytes: bucket now empty)."""
    bucket_hashes: Mapping[int, bytes]
    """Bucket -> the hash of its new entries."""
    nodes: list[bytes] | None
    """For a change of many buckets, every tree node hash after it (heap layout: root
    1, bucket b at 65,536 + b); never mutated once prepared. None for a smaller one."""
    node_updates: Mapping[int, bytes]
    """For a smaller change, the tree nodes it gives a new hash, by heap index."""

    def apply_to(self, batch: WriteBatch) -> None:
        """Add the state values, bucket entries and bucket hashes to `batch`."""
        for key, value in self.changes.items():
            if value is None:
                batch.delete(schema.state_key(key))
            else:
                batch.put(schema.state_key(key), value)
        for bucket, entries in self.buckets.items():
            if entries:
                batch.put(schema.tree_bucket_key(bucket), entries)
                batch.put(schema.tree_bucket_hash_key(bucket),
                          self.bucket_hashes[bucket])
            else:
                batch.delete(schema.tree_bucket_key(bucket))
                batch.delete(schema.tree_bucket_hash_key(bucket))


class StateTree:
    """The in-memory tree over the state stored in `kv`."""

    def __init__(self, kv: KVStore) -> None:
        self._kv = kv
        self._nodes: list[bytes] = _EMPTY_TREE
        self.reload()

    def reload(self) -> None:
        """Rebuild every node from the stored bucket hashes (at open).

        Subtrees of empty buckets have a known hash per level: only the paths above
        stored buckets are hashed, all 65,535 nodes once many buckets are stored.
        """
        nodes = _EMPTY_TREE.copy()
        stored: set[int] = set()
        for key, value in self._kv.iterate(schema.TREE_BUCKET_HASH):
            if len(value) != 32 or len(key) != 3:
                raise InconsistentDataError(
                    f"the state-tree bucket hash (0x32) at key {key.hex()} is malformed; the "
                    "database is damaged: restore it from a backup or resync from peers")
            index = BUCKET_COUNT + schema.decode_tree_bucket_hash_key(key)
            nodes[index] = value
            stored.add(index)
        sha256 = hashlib.sha256
        if len(stored) > LARGE_UPDATE_BUCKETS:
            for i in range(BUCKET_COUNT - 1, 0, -1):
                nodes[i] = sha256(_NODE_TAG + nodes[2 * i] + nodes[2 * i + 1]).digest()
        else:
            dirty = stored
            for _ in range(BUCKET_BITS):
                dirty = {i >> 1 for i in dirty}
                for i in dirty:
                    nodes[i] = sha256(_NODE_TAG + nodes[2 * i] + nodes[2 * i + 1]).digest()
        self._nodes = nodes

    @property
    def root(self) -> Hash32:
        return Hash32(self._nodes[1])

    def compute_root(self, changes: Mapping[bytes, bytes | None]) -> Hash32:
        """The root after `changes`, without committing anything."""
        return self.prepare(changes).root

    def prepare(self, changes: Mapping[bytes, bytes | None]) -> PreparedState:
        """Compute the new buckets, nodes and root of `changes`; change nothing."""
        sha256 = hashlib.sha256
        updates: dict[int, dict[bytes, bytes | None]] = {}
        for key, value in changes.items():
            key_hash = sha256(key).digest()
            bucket = (key_hash[0] << 8) | key_hash[1]
            value_hash = None if value is None else sha256(value).digest()
            per_bucket = updates.get(bucket)
            if per_bucket is None:
                updates[bucket] = {key_hash: value_hash}
            else:
                per_bucket[key_hash] = value_hash

        buckets: dict[int, bytes] = {}
        bucket_hashes: dict[int, bytes] = {}
        get = self._kv.get
        for bucket, bucket_updates in updates.items():
            stored = get(schema.tree_bucket_key(bucket))
            entries = _apply_bucket_updates(stored or b"", bucket_updates)
            buckets[bucket] = entries
            bucket_hashes[bucket] = compute_bucket_hash(entries)
        # Copy-on-write, of the whole node array for a change of many buckets, else of
        # the changed nodes only (LARGE_UPDATE_BUCKETS).
        if len(updates) > LARGE_UPDATE_BUCKETS:
            nodes = self._nodes.copy()
            for bucket, bucket_hash in bucket_hashes.items():
                nodes[BUCKET_COUNT + bucket] = bucket_hash
            dirty = {BUCKET_COUNT + b for b in updates}
            for _ in range(BUCKET_BITS):
                dirty = {i >> 1 for i in dirty}
                for p in dirty:
                    nodes[p] = sha256(_NODE_TAG + nodes[2 * p] + nodes[2 * p + 1]).digest()
            return PreparedState(base_root=self.root, root=Hash32(nodes[1]),
                                 changes=dict(changes), buckets=buckets,
                                 bucket_hashes=bucket_hashes, nodes=nodes, node_updates={})
        base = self._nodes
        changed = {BUCKET_COUNT + b: h for b, h in bucket_hashes.items()}
        dirty = set(changed)
        for _ in range(BUCKET_BITS):
            dirty = {i >> 1 for i in dirty}
            for p in dirty:
                left, right = 2 * p, 2 * p + 1
                changed[p] = sha256(_NODE_TAG + changed.get(left, base[left])
                                    + changed.get(right, base[right])).digest()
        root = changed.get(1, base[1])
        return PreparedState(base_root=self.root, root=Hash32(root), changes=dict(changes),
                             buckets=buckets, bucket_hashes=bucket_hashes, nodes=None,
                             node_updates=changed)

    def on_committed(self, prepared: PreparedState) -> None:
        """Move the in-memory tree to `prepared`, whose ops are now durable."""
        if prepared.base_root != self.root:
            raise StalePreparedStateError(
                "the prepared state was computed on another state root; prepare it again")
        if prepared.nodes is not None:
            self._nodes = prepared.nodes
            return
        # In place: any other state prepared on this tree is stale now (its base root
        # is no longer the root), and is refused as such.
        nodes = self._nodes
        for index, node_hash in prepared.node_updates.items():
            nodes[index] = node_hash

    def get_proof(self, key: bytes, *, height: int) -> StateProof:
        """Inclusion or non-inclusion proof of `key` against the committed root."""
        bucket = get_bucket(compute_key_hash(key))
        stored = self._kv.get(schema.tree_bucket_key(bucket)) or b""
        entries = tuple((Hash32(stored[i:i + 32]), Hash32(stored[i + 32:i + ENTRY_SIZE]))
                        for i in range(0, len(stored), ENTRY_SIZE))
        if compute_bucket_hash(stored) != self._nodes[BUCKET_COUNT + bucket]:
            raise InconsistentDataError(
                f"state tree bucket {bucket} does not match its hash; the database is "
                "damaged: restore it from a backup or resync from peers")
        siblings = []
        index = BUCKET_COUNT + bucket
        while index > 1:
            siblings.append(Hash32(self._nodes[index ^ 1]))
            index >>= 1
        return StateProof(height=height, root=self.root, entries=entries,
                          siblings=tuple(siblings))


def _apply_bucket_updates(entries: bytes, updates: dict[bytes, bytes | None]) -> bytes:
    """The sorted entries of a bucket after `updates` (key hash -> value hash or None).

    Entries are fixed-size and sorted, so each update is a binary search and a splice
    of the bytes; a block usually touches one or two entries of a bucket.
    """
    for key_hash, value_hash in updates.items():
        lo, hi = 0, len(entries) // ENTRY_SIZE
        while lo < hi:
            mid = (lo + hi) >> 1
            start = mid * ENTRY_SIZE
            if entries[start:start + 32] < key_hash:
                lo = mid + 1
            else:
                hi = mid
        at = lo * ENTRY_SIZE
        present = entries[at:at + 32] == key_hash
        tail = entries[at + ENTRY_SIZE:] if present else entries[at:]
        if value_hash is None:
            entries = entries[:at] + tail
        else:
            entries = entries[:at] + key_hash + value_hash + tail
    return entries
