"""The bucketed state tree: roots, speculative preparation, proofs."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import Hash32
from chain.errors import MalformedError
from chain.state_proof import (
    EMPTY_BUCKET_HASH,
    StateProof,
    compute_key_hash,
    compute_state_root,
    compute_tree_root,
    get_bucket,
    verify_state_proof,
)
from storage.errors import StalePreparedStateError
from storage.kv import MemoryStore, WriteBatch
from storage.state_tree import LARGE_UPDATE_BUCKETS, StateTree

keys_st = st.binary(min_size=1, max_size=12)
state_st = st.dictionaries(keys_st, st.binary(max_size=20), max_size=40)


def commit(tree: StateTree, kv: MemoryStore, changes: dict[bytes, bytes | None]) -> None:
    prepared = tree.prepare(changes)
    batch = WriteBatch(kv)
    prepared.apply_to(batch)
    kv.write(batch)
    tree.on_committed(prepared)


def test_empty_tree_root() -> None:
    assert StateTree(MemoryStore()).root == compute_tree_root({})
    assert compute_state_root([]) == compute_tree_root({0: EMPTY_BUCKET_HASH})


@settings(max_examples=40, deadline=None)
@given(state=state_st, data=st.data())
def test_root_is_independent_of_insertion_order_and_block_split(
        state: dict[bytes, bytes], data: st.DataObject) -> None:
    order = data.draw(st.permutations(list(state)))
    splits = data.draw(st.lists(st.integers(0, len(order)), max_size=4))
    kv = MemoryStore()
    tree = StateTree(kv)
    bounds = [0, *sorted(splits), len(order)]
    for lo, hi in itertools.pairwise(bounds):
        commit(tree, kv, {k: state[k] for k in order[lo:hi]})
    assert tree.root == compute_state_root(state.items())
    assert StateTree(kv).root == tree.root  # rebuilt from stored bucket hashes


@settings(max_examples=40, deadline=None)
@given(state=state_st, deletes=st.lists(keys_st, max_size=10),
       updates=st.dictionaries(keys_st, st.binary(max_size=5), max_size=10))
def test_updates_and_deletes_match_a_fresh_tree(
        state: dict[bytes, bytes], deletes: list[bytes], updates: dict[bytes, bytes]) -> None:
    kv = MemoryStore()
    tree = StateTree(kv)
    commit(tree, kv, dict(state))
    changes: dict[bytes, bytes | None] = {k: None for k in deletes}
    changes.update(updates)
    commit(tree, kv, changes)
    final = {k: v for k, v in {**state, **changes}.items() if v is not None}
    assert tree.root == compute_state_root(final.items())


def test_deleting_everything_returns_the_empty_root() -> None:
    kv = MemoryStore()
    tree = StateTree(kv)
    empty = tree.root
    commit(tree, kv, {b"a": b"1", b"b": b"2"})
    assert tree.root != empty
    commit(tree, kv, {b"a": None, b"b": None})
    assert tree.root == empty
    assert list(kv.iterate(b"")) == []  # no empty buckets left behind


def test_prepare_is_speculative_and_repeatable() -> None:
    kv = MemoryStore()
    tree = StateTree(kv)
    commit(tree, kv, {b"a": b"1"})
    base = tree.root
    candidate_a = tree.prepare({b"a": b"2"})
    candidate_b = tree.prepare({b"b": b"3"})
    assert tree.root == base
    assert candidate_a.root != candidate_b.root
    assert tree.compute_root({b"a": b"2"}) == candidate_a.root
    assert kv.get(b"\x30a") == b"1"
    batch = WriteBatch(kv)
    candidate_b.apply_to(batch)
    kv.write(batch)
    tree.on_committed(candidate_b)
    assert tree.root == compute_state_root([(b"a", b"1"), (b"b", b"3")])
    with pytest.raises(StalePreparedStateError):
        tree.on_committed(candidate_a)


def test_large_and_small_changes_build_the_same_tree() -> None:
    # Above LARGE_UPDATE_BUCKETS changed buckets a change is prepared on a copy of the
    # whole node array, below on the changed nodes only; opening a store rebuilds the
    # tree the same two ways (many stored buckets, or few).
    state = {b"k%d" % i: b"v%d" % i for i in range(3 * LARGE_UPDATE_BUCKETS)}
    at_once_kv, in_steps_kv = MemoryStore(), MemoryStore()
    at_once, in_steps = StateTree(at_once_kv), StateTree(in_steps_kv)
    commit(at_once, at_once_kv, dict(state))
    items = list(state.items())
    for start in range(0, len(items), 500):
        commit(in_steps, in_steps_kv, dict(items[start:start + 500]))
    assert at_once.root == in_steps.root == compute_state_root(state.items())
    assert StateTree(at_once_kv).root == at_once.root
    commit(at_once, at_once_kv, {key: None for key in list(state)[10:]})
    assert at_once.root == compute_state_root(items[:10])
    assert StateTree(at_once_kv).root == at_once.root


def make_tree(state: dict[bytes, bytes]) -> StateTree:
    kv = MemoryStore()
    tree = StateTree(kv)
    commit(tree, kv, dict(state))
    return tree


@settings(max_examples=30, deadline=None)
@given(state=state_st.filter(bool), absent=keys_st)
def test_proofs_of_inclusion_and_absence_verify(state: dict[bytes, bytes],
                                                absent: bytes) -> None:
    tree = make_tree(state)
    for key, value in state.items():
        proof = tree.get_proof(key, height=3)
        assert verify_state_proof(proof, key, value, tree.root)
        assert not verify_state_proof(proof, key, value + b"x", tree.root)
        assert not verify_state_proof(proof, key, None, tree.root)
    if absent not in state:
        proof = tree.get_proof(absent, height=3)
        assert verify_state_proof(proof, absent, None, tree.root)
        assert not verify_state_proof(proof, absent, b"", tree.root)


def same_bucket_keys() -> tuple[bytes, bytes]:
    seen: dict[int, bytes] = {}
    i = 0
    while True:
        key = b"k%d" % i
        bucket = get_bucket(compute_key_hash(key))
        if bucket in seen:
            return seen[bucket], key
        seen[bucket] = key
        i += 1


def test_tampered_proofs_fail() -> None:
    first, second = same_bucket_keys()
    tree = make_tree({first: b"1", second: b"2", b"other": b"3"})
    proof = tree.get_proof(first, height=1)
    assert len(proof.entries) == 2
    assert verify_state_proof(proof, first, b"1", tree.root)
    (kh0, vh0), entry1 = proof.entries
    tampered = [
        dataclasses.replace(proof, entries=((kh0, compute_key_hash(b"2")), entry1)),
        dataclasses.replace(proof, entries=(entry1,)),  # other entry dropped
        dataclasses.replace(proof, entries=(entry1, (kh0, vh0))),  # unsorted
        dataclasses.replace(proof, siblings=(Hash32(proof.siblings[0][::-1]),
                                             *proof.siblings[1:])),
        dataclasses.replace(proof, siblings=proof.siblings[:-1]),
    ]
    for bad in tampered:
        assert not verify_state_proof(bad, first, b"1", tree.root)
    assert not verify_state_proof(proof, first, b"1", bytes(32))
    # Dropping the key's own entry must not pass as a proof of absence either.
    without = dataclasses.replace(
        proof, entries=tuple(e for e in proof.entries if e[0] != compute_key_hash(first)))
    assert not verify_state_proof(without, first, None, tree.root)


def test_proof_round_trips_through_msgpack_and_json() -> None:
    first, second = same_bucket_keys()
    tree = make_tree({first: b"1", second: b"2"})
    proof = tree.get_proof(first, height=7)
    assert StateProof.decode(proof.encode()) == proof
    doc = json.loads(json.dumps(proof.to_json()))
    assert doc["root"] == tree.root.hex()
    assert StateProof.from_json(doc) == proof
    assert verify_state_proof(StateProof.from_json(doc), first, b"1", tree.root)


def test_malformed_proof_is_refused() -> None:
    tree = make_tree({b"a": b"1"})
    doc = tree.get_proof(b"a", height=1).to_json()
    with pytest.raises(MalformedError):
        StateProof.from_json({**doc, "siblings": doc["siblings"][:3]})
    with pytest.raises(MalformedError):
        StateProof.from_json({**doc, "root": "zz"})
    with pytest.raises(MalformedError):
        StateProof.from_json({**doc, "version": 2})
