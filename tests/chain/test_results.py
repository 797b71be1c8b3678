"""The results root and result proofs: leaves, roots, proofs, and what they refuse."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import codec, merkle
from chain.crypto import compute_hash
from chain.errors import MalformedError
from chain.results import (
    ResultLeaf,
    compute_events_hash,
    compute_result_proof,
    compute_results_root,
    encode_events,
    encode_result_leaf,
    is_valid_result_proof,
    validate_result_leaf,
)

TX_A, TX_B, TX_C = (compute_hash(b"tx %d" % i) for i in range(3))
EVENTS = [["transferred", {"amount": 250, "asset": "KGS", "from": b"\x01" * 20,
                           "to": b"\x02" * 20}]]
LEAVES = [ResultLeaf.of(TX_A, "ok", EVENTS),
          ResultLeaf.of(TX_B, "account_frozen", []),
          ResultLeaf.of(TX_C, "ok", [])]


def test_leaf_is_canonical_triple_of_tx_hash_code_and_events_hash():
    leaf = LEAVES[0]
    assert codec.decode(leaf.encoded) == (TX_A, "ok", compute_hash(codec.encode(EVENTS)))
    assert leaf.events_hash == compute_events_hash(EVENTS)
    assert ResultLeaf.decode(leaf.encoded) == leaf
    # No events is the hash of the empty array (0x90), not of nothing.
    assert LEAVES[1].events_hash == compute_hash(b"\x90")


def test_event_attribute_order_does_not_change_the_events_hash():
    unsorted = [["transferred", {"to": b"\x02" * 20, "from": b"\x01" * 20, "asset": "KGS",
                                 "amount": 250}]]
    assert compute_events_hash(unsorted) == compute_events_hash(EVENTS)


def test_results_root_is_the_merkle_root_of_the_encoded_leaves():
    assert compute_results_root(LEAVES) == merkle.compute_root([x.encoded for x in LEAVES])
    assert compute_results_root([]) == merkle.EMPTY_ROOT == compute_hash(b"")


@pytest.mark.parametrize("index", range(3))
def test_each_result_proves_under_the_root(index):
    root = compute_results_root(LEAVES)
    path = compute_result_proof(LEAVES, index)
    assert is_valid_result_proof(LEAVES[index].encoded, index, 3, path, root)


def test_refused_tx_proves_its_refusal_code_and_cannot_pass_as_ok():
    root = compute_results_root(LEAVES)
    path = compute_result_proof(LEAVES, 1)
    proven = validate_result_leaf(LEAVES[1].encoded, TX_B)
    assert is_valid_result_proof(LEAVES[1].encoded, 1, 3, path, root)
    assert proven.code == "account_frozen" and not proven.is_ok
    forged = ResultLeaf(TX_B, "ok", LEAVES[1].events_hash)
    assert not is_valid_result_proof(forged.encoded, 1, 3, path, root)


def test_invalid_forged_events_fail_the_proof():
    root = compute_results_root(LEAVES)
    path = compute_result_proof(LEAVES, 0)
    forged = ResultLeaf.of(TX_A, "ok", [["transferred", {**EVENTS[0][1], "amount": 2500}]])
    assert not is_valid_result_proof(forged.encoded, 0, 3, path, root)


def test_invalid_result_of_another_position_or_size_fails():
    root = compute_results_root(LEAVES)
    path = compute_result_proof(LEAVES, 2)
    assert not is_valid_result_proof(LEAVES[2].encoded, 1, 3, path, root)
    assert not is_valid_result_proof(LEAVES[2].encoded, 2, 4, path, root)
    assert not is_valid_result_proof(LEAVES[0].encoded, 2, 3, path, root)


def test_invalid_leaf_for_another_transaction_is_refused():
    with pytest.raises(MalformedError, match="is for transaction"):
        validate_result_leaf(LEAVES[0].encoded, TX_B)


@pytest.mark.parametrize("value", [
    [TX_A, "ok"],                                   # too short
    [TX_A[:31], "ok", compute_hash(b"")],           # short tx hash
    [TX_A, 7, compute_hash(b"")],                   # code not text
    [TX_A, "x" * 65, compute_hash(b"")],            # code too long
])
def test_invalid_leaf_encodings_are_refused(value):
    with pytest.raises(MalformedError):
        ResultLeaf.decode(codec.encode(value))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32),
                          st.sampled_from(["ok", "account_frozen", "insufficient_funds"])),
                min_size=1, max_size=40),
       st.data())
def test_any_result_proves_and_a_flipped_code_does_not(items, data):
    leaves = [ResultLeaf.of(h, code, []) for h, code in items]
    root = compute_results_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = compute_result_proof(leaves, index)
    assert is_valid_result_proof(leaves[index].encoded, index, len(leaves), path, root)
    flipped = ResultLeaf(leaves[index].tx_hash, "ok" if leaves[index].code != "ok" else "denied",
                         leaves[index].events_hash)
    assert not is_valid_result_proof(flipped.encoded, index, len(leaves), path, root)


@pytest.mark.parametrize("events", [
    EVENTS,
    [],
    # attributes out of key order (the mint module writes them so): sorted on encoding
    [["minted", {"to": b"\x01" * 20, "asset": "KGS", "amount": 5, "supply": 5}]],
    [["a", {"n": -1}], ["b", {"big": 2**64 - 1, "text": "x"}]],
])
def test_fast_leaf_encoding_gives_the_canonical_bytes(events):
    fast = encode_result_leaf(TX_A, "ok", events)
    assert fast == ResultLeaf.of(TX_A, "ok", events).encoded
    assert fast == codec.encode([TX_A, "ok", compute_hash(codec.encode(events))])
    assert encode_events(events) == codec.encode(events)


def test_invalid_fast_leaf_inputs_are_refused():
    with pytest.raises(MalformedError):
        encode_result_leaf(TX_A[:31], "ok", [])
    with pytest.raises(MalformedError):
        encode_result_leaf(TX_A, "x" * 65, [])
    with pytest.raises(MalformedError):  # no canonical form: a float
        encode_result_leaf(TX_A, "ok", [["e", {"x": 1.5}]])
