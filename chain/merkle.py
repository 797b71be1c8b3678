"""Merkle tree over a list of leaves, with inclusion proofs (RFC 9162 shape).

Leaf hash = H(0x00 || leaf), node hash = H(0x01 || left || right), split at the
largest power of two below the size; the empty tree's root is H(""). Used for the
transaction root of a block. Pure and allocation-light: the proof checker needs
only the leaf, its index, the tree size and the path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chain.crypto import Hash32, compute_hash

EMPTY_ROOT = compute_hash(b"")
_LEAF_TAG = b"\x00"
_NODE_TAG = b"\x01"


def compute_leaf_hash(leaf: bytes) -> Hash32:
    return compute_hash(_LEAF_TAG + leaf)


def compute_node_hash(left: bytes, right: bytes) -> Hash32:
    return compute_hash(_NODE_TAG + left + right)


def _split(size: int) -> int:
    """The largest power of two strictly less than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> Hash32:
    if len(hashes) == 1:
        return Hash32(hashes[0])
    k = _split(len(hashes))
    return compute_node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def compute_root(leaves: Sequence[bytes]) -> Hash32:
    """The Merkle root of `leaves` (each leaf is hashed with the 0x00 prefix).

    Computed level by level, pairing neighbours and carrying an unpaired last node up
    as it is: the same tree as the split at the largest power of two (`_root_of_hashes`
    states it that way), without the recursion and the copies of every sub-list, for
    the tx root of blocks of thousands of transactions.
    """
    if not leaves:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    level = [sha256(_LEAF_TAG + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [sha256(_NODE_TAG + level[i] + level[i + 1]).digest()
                  for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return Hash32(level[0])


def compute_proof(leaves: Sequence[bytes], index: int) -> tuple[Hash32, ...]:
    """The audit path of leaf `index`, from the leaf's sibling up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is outside a tree of {len(leaves)}")
    hashes = [compute_leaf_hash(leaf) for leaf in leaves]
    path: list[Hash32] = []
    _collect_path(hashes, index, path)
    return tuple(path)


def _collect_path(hashes: Sequence[bytes], index: int, path: list[Hash32]) -> None:
    if len(hashes) == 1:
        return
    k = _split(len(hashes))
    if index < k:
        _collect_path(hashes[:k], index, path)
        path.append(_root_of_hashes(hashes[k:]))
    else:
        _collect_path(hashes[k:], index - k, path)
        path.append(_root_of_hashes(hashes[:k]))


def is_valid_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                   root: bytes) -> bool:
    """True when `path` proves `leaf` is at `index` of a tree of `size` with `root`."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    result: bytes = compute_leaf_hash(leaf)
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = compute_node_hash(sibling, result)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = compute_node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root
