"""Merkle tree: proofs verify for every leaf and fail when anything is changed."""

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from chain import merkle


def test_empty_and_single():
    assert merkle.compute_root([]) == hashlib.sha256(b"").digest()
    assert merkle.compute_root([b"a"]) == hashlib.sha256(b"\x00a").digest()


def test_known_three_leaf_root():
    leaf = [hashlib.sha256(b"\x00" + x).digest() for x in (b"a", b"b", b"c")]
    left = hashlib.sha256(b"\x01" + leaf[0] + leaf[1]).digest()
    assert merkle.compute_root([b"a", b"b", b"c"]) == hashlib.sha256(
        b"\x01" + left + leaf[2]).digest()


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40, unique=True), st.data())
def test_proofs_verify_and_tampering_fails(leaves, data):
    index = data.draw(st.integers(0, len(leaves) - 1))
    root = merkle.compute_root(leaves)
    path = merkle.compute_proof(leaves, index)
    assert merkle.is_valid_proof(leaves[index], index, len(leaves), path, root)
    assert not merkle.is_valid_proof(leaves[index] + b"!", index, len(leaves), path, root)
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        if leaves[other] != leaves[index]:
            assert not merkle.is_valid_proof(leaves[index], other, len(leaves), path, root)
        assert not merkle.is_valid_proof(leaves[index], index, len(leaves), path[:-1], root)


def _split_root(leaves):
    """RFC 9162's definition, written out: split at the largest power of two < n."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _split_root(leaves[:k]) + _split_root(leaves[k:])).digest()


def test_level_by_level_root_is_the_split_definition_for_every_size_to_300():
    leaves = [i.to_bytes(2, "big") for i in range(300)]
    for size in range(1, 301):
        assert merkle.compute_root(leaves[:size]) == _split_root(leaves[:size]), size
