"""Golden bytes of the storage formats: a refactor cannot change what is on disk silently.

tests/fixtures/golden/storage.json holds the exact bytes (hex) of fixed sign states and
sign locks (node.node's encoders), tx records, one key of each schema table (and the
meta keys and the numbers in keys), the state tree's leaf and node hashing and its
roots over a small fixed state, state proofs (binary and JSON), and the whole database
image of a store holding a genesis state, one block and a sign state. The objects are
built in tests/fixtures/golden/storage_cases.py from fixed seeds, heights, timestamps
and hashes.

Each case is (a) encoded and compared with the stored bytes, (b) decoded from the
stored bytes and compared with the object, (c) the decoded object encoded again and
compared with the stored bytes. The store image is decoded by opening a store over it.

The golden file is changed only on purpose, when a format is meant to change (with a
new prefix or SCHEMA_VERSION where the schema says so):
`python -m tests.fixtures.golden.make` rewrites it from the current code; review the
diff, since every changed case is a changed format.
"""

from __future__ import annotations

import hashlib
import inspect

import pytest

from chain.crypto import compute_hash
from storage import schema
from storage.kv import MemoryStore, WriteBatch
from storage.state_tree import StateTree
from tests.fixtures.golden import Case, load
from tests.fixtures.golden import storage_cases as s
from tests.fixtures.golden.storage_cases import (
    compute_bucket_hash,
    compute_node_hash,
    verify_state_proof,
)

CASES = s.cases()
GOLDEN = load("storage")
DECODABLE = [case for case in CASES if case.decode is not None]
IMAGE = {bytes.fromhex(name.rsplit("/", 1)[1]): data for name, data in GOLDEN.items()
         if name.startswith("store/")}
FILES = {name.split("/", 1)[1]: data for name, data in GOLDEN.items()
         if name.startswith("history/")}


def _ids(case: Case) -> str:
    return case.name


def test_the_golden_file_holds_exactly_the_cases():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert sorted(GOLDEN) == sorted(names), \
        "cases and storage.json differ: rewrite it with python -m tests.fixtures.golden.make"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_encoding_is_the_golden_bytes(case: Case):
    assert case.encode(case.value).hex() == GOLDEN[case.name].hex()


@pytest.mark.parametrize("case", DECODABLE, ids=_ids)
def test_golden_bytes_decode_to_the_object(case: Case):
    assert case.decode is not None
    assert case.decode(GOLDEN[case.name]) == case.expected


@pytest.mark.parametrize("case", DECODABLE, ids=_ids)
def test_decoded_object_encodes_to_the_golden_bytes(case: Case):
    assert case.decode is not None
    assert case.encode(case.decode(GOLDEN[case.name])).hex() == GOLDEN[case.name].hex()


# ---------------------------------------------------------------- schema


def test_every_table_and_every_key_builder_has_a_golden_key():
    names = {name[len("key/"):] for name in GOLDEN if name.startswith("key/")}
    assert {GOLDEN[f"key/{name}"][:1] for name in names} == set(s.TABLES)
    builders = {name for name, item in vars(schema).items() if inspect.isfunction(item)
                and not name.startswith("decode_")
                and (name.endswith("_key") or name.endswith("_prefix"))}
    meta = {name.lower() for name in vars(schema) if name.startswith("META_")}
    assert builders | meta == names


def test_the_stored_schema_version_is_the_golden_one():
    assert IMAGE[schema.META_SCHEMA_VERSION] == GOLDEN["value/schema_version"]


# ---------------------------------------------------------------- state tree


def _reference_root(bucket_hashes: dict[int, bytes]) -> bytes:
    """The root by the documented rule, from the non-empty buckets' hashes: a binary
    Merkle tree of node hashes over 65,536 leaves (empty leaves hash H(0x00))."""
    level, empty = dict(bucket_hashes), compute_bucket_hash(b"")
    for _ in range(16):
        level = {i: compute_node_hash(level.get(2 * i, empty), level.get(2 * i + 1, empty))
                 for i in {j >> 1 for j in level}}
        empty = compute_node_hash(empty, empty)
    return level.get(0, empty)


def _bucket_entries(step: str) -> dict[int, bytes]:
    prefix = f"state/{step}/bucket_entries/"
    return {int(name[len(prefix):], 16): data for name, data in GOLDEN.items()
            if name.startswith(prefix)}


def test_golden_bucket_entries_are_sorted_key_and_value_hashes():
    entries = _bucket_entries("genesis")
    expected: dict[int, list[bytes]] = {}
    for key, value in s.STATE.items():
        key_hash = hashlib.sha256(key).digest()
        expected.setdefault(int.from_bytes(key_hash[:2], "big"), []).append(
            key_hash + hashlib.sha256(value).digest())
    assert entries == {b: b"".join(sorted(items)) for b, items in expected.items()}
    assert len(entries[0x081A]) == 2 * 64  # the two keys that share a bucket


def test_golden_roots_follow_from_the_golden_leaves():
    assert GOLDEN["state/root_empty"] == _reference_root({})
    assert GOLDEN["state/leaf_hash_empty_bucket"] == hashlib.sha256(b"\x00").digest()
    left, right = compute_hash(b"left"), compute_hash(b"right")
    assert GOLDEN["state/node_hash"] == hashlib.sha256(b"\x01" + left + right).digest()
    leaves: dict[int, bytes] = {}
    for step in ("genesis", "block_1"):
        for bucket, entries in _bucket_entries(step).items():
            leaf = GOLDEN[f"state/{step}/leaf_hash/{bucket:04x}"]
            assert leaf == hashlib.sha256(b"\x00" + entries).digest()
            leaves[bucket] = leaf
        assert _reference_root({b: h for b, h in leaves.items()
                                if h != compute_bucket_hash(b"")}) == \
            GOLDEN[f"state/root_{step}"]


def test_a_tree_reloaded_from_the_golden_image_has_the_golden_root():
    kv = MemoryStore()
    batch = WriteBatch(kv)
    for key, value in IMAGE.items():
        batch.put(key, value)
    kv.write(batch)
    assert StateTree(kv).root == GOLDEN["state/root_block_1"]


@pytest.mark.parametrize("name", ["present", "absent"])
def test_golden_state_proofs_verify(name: str):
    key = s.PRESENT_KEY if name == "present" else s.ABSENT_KEY
    value = s.FINAL_STATE.get(key)
    root = GOLDEN["state/root_block_1"]
    for encoding in ("state_proof", "state_proof_json"):
        case = next(c for c in CASES if c.name == f"{encoding}/{name}")
        assert case.decode is not None
        proof = case.decode(GOLDEN[case.name])
        assert verify_state_proof(proof, key, value, root)
        assert not verify_state_proof(proof, key, b"forged", root)


# ---------------------------------------------------------------- a whole store


def test_a_store_opened_on_the_golden_image_reads_the_objects_back():
    store = s.open_store(IMAGE, FILES)  # checks genesis, schema version, head and tree root
    head = store.head
    assert (head.height, head.hash, head.state_root) == (
        1, s.STORE_BLOCK.hash, GOLDEN["state/root_block_1"])
    assert s.read_content(store) == s.CONTENT
    assert store.get_validator_set(0) == store.get_validator_set(1) == s.VSET
    for key in sorted({*s.STATE, *s.STATE_CHANGES}):
        assert store.get_state(key) == s.FINAL_STATE.get(key)
        proof = store.get_state_proof(key)
        assert verify_state_proof(proof, key, s.FINAL_STATE.get(key), head.state_root)


def test_the_objects_read_back_write_the_golden_image_again():
    content = s.read_content(s.open_store(IMAGE, FILES))
    rebuilt = s.build_store(content)
    assert s.store_pairs(rebuilt) == IMAGE
    assert s.history_files(rebuilt) == FILES
