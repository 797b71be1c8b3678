"""ChainStore on real LevelDB: commit, reopen, refusals, atomicity, reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plyvel
import pytest
from storage_builders import (
    KEYS,
    commit,
    make_block,
    make_genesis,
    make_txs,
    make_validator_set,
)

from chain import codec
from chain.crypto import compute_hash
from chain.results import compute_results_root
from chain.state_proof import compute_state_root, verify_state_proof
from chain.vote import CommitCertificate
from storage import schema
from storage.chain_store import ChainStore
from storage.errors import (
    AlreadyInitializedError,
    BlockMismatchError,
    GenesisMismatchError,
    NotContiguousError,
    NotInitializedError,
    SchemaVersionError,
    StalePreparedStateError,
    StateRootMismatchError,
    StorageError,
    UnknownHeightError,
)

GENESIS_STATE = {b"acct/alice": b"100", b"acct/bob": b"50", b"param/x": b"1"}


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def store(data_dir: str) -> Iterator[ChainStore]:
    s = ChainStore.open(data_dir, make_genesis())
    s.commit_genesis(GENESIS_STATE, make_validator_set())
    yield s
    s.close()


def test_genesis_head(store: ChainStore) -> None:
    genesis = make_genesis()
    assert store.is_initialized
    assert store.head_height == 0
    assert store.head_hash == genesis.hash
    assert store.head_timestamp_ms == genesis.genesis_time_ms
    assert store.head_state_root == compute_state_root(GENESIS_STATE.items())
    assert store.head_block() is None
    assert store.get_validator_set(0) == make_validator_set()
    assert store.get_validator_set(1) == make_validator_set()


def test_uninitialized_store_refuses_blocks(data_dir: str) -> None:
    s = ChainStore.open(data_dir, make_genesis())
    try:
        assert not s.is_initialized
        with pytest.raises(NotInitializedError):
            s.prepare_state({b"a": b"1"})
        with pytest.raises(NotInitializedError):
            _ = s.head_height
    finally:
        s.close()


def test_genesis_is_committed_once(store: ChainStore) -> None:
    with pytest.raises(AlreadyInitializedError):
        store.commit_genesis({}, make_validator_set())


def test_commit_and_reopen(data_dir: str, store: ChainStore) -> None:
    txs = make_txs(3)
    block1 = commit(store, {b"acct/alice": b"90", b"acct/carol": b"10"}, txs)
    block2 = commit(store, {b"acct/bob": None}, make_txs(2, nonce_base=3))
    assert store.head_height == 2
    assert store.head_block() == block2
    store.close()

    reopened = ChainStore.open(data_dir, make_genesis())
    try:
        assert reopened.head_height == 2
        assert reopened.head_hash == block2.hash
        assert reopened.head_timestamp_ms == block2.header.timestamp_ms
        assert reopened.head_state_root == block2.header.state_root
        assert reopened.get_block(1) == block1
        assert reopened.get_block(2) == block2
        assert reopened.get_block(3) is None
        # Served to syncing peers from the stored tx bytes, without decoding them.
        assert reopened.get_block_bytes(1) == block1.encoded
        assert reopened.get_block_bytes(2) == block2.encoded
        assert reopened.get_block_bytes(3) is None
        block1_again, records = reopened.get_block_with_records(1)
        assert block1_again == block1 and records == reopened.tx_records(1)
        assert len(records) == 3
        assert reopened.get_block_by_hash(block1.hash) == block1
        assert reopened.get_block_by_hash(bytes(32)) is None
        cert = reopened.get_certificate(2)
        assert isinstance(cert, CommitCertificate)
        assert cert.block_hash == block2.hash
        assert reopened.get_state(b"acct/alice") == b"90"
        assert reopened.get_state(b"acct/bob") is None
        assert list(reopened.iterate_state(b"acct/")) == [
            (b"acct/alice", b"90"), (b"acct/carol", b"10")]
        final = {b"acct/alice": b"90", b"acct/carol": b"10", b"param/x": b"1"}
        assert reopened.head_state_root == compute_state_root(final.items())
        record = reopened.get_tx(txs[1].hash)
        assert record is not None
        assert (record.height, record.index, record.tx) == (1, 1, txs[1])
        assert (record.code, record.message, record.events) == ("ok", "", ())
        assert reopened.get_tx(bytes(32)) is None
    finally:
        reopened.close()


def test_tx_results_are_stored(store: ChainStore) -> None:
    txs = make_txs(2)
    block, cert, prepared = make_block(store, {}, txs)
    results = [("ok", "", [{"type": "transfer", "amount": 1}]),
               ("insufficient_funds", "balance 0 < 5", [])]
    store.commit_block(block, cert, {}, results, None, prepared)
    record = store.get_tx(txs[1].hash)
    assert record is not None
    assert (record.code, record.message) == ("insufficient_funds", "balance 0 < 5")
    first = store.get_tx(txs[0].hash)
    assert first is not None and first.events == ({"type": "transfer", "amount": 1},)


def test_genesis_mismatch_is_refused(data_dir: str, store: ChainStore) -> None:
    store.close()
    other = make_genesis(chain_id="another-chain")
    with pytest.raises(GenesisMismatchError) as info:
        ChainStore.open(data_dir, other)
    message = info.value.message
    assert make_genesis().hash.hex() in message
    assert other.hash.hex() in message
    assert data_dir in message
    assert info.value.code == "genesis_mismatch"
    ChainStore.open(data_dir, make_genesis()).close()  # the lock was released


def test_result_leaves_give_the_header_results_root(store: ChainStore) -> None:
    txs = make_txs(2)
    block, cert, prepared = make_block(store, {}, txs)
    store.commit_block(block, cert, {}, [("ok", "", [])] * 2, None, prepared)
    leaves = store.get_result_leaves(block.height)
    assert [leaf.tx_hash for leaf in leaves] == [tx.hash for tx in txs]
    assert compute_results_root(leaves) == block.header.results_root


def test_invalid_data_dir_of_version_1_headers_is_refused(data_dir: str,
                                                          store: ChainStore) -> None:
    # What a node before results_root left: schema 1, headers of 11 items (version 1).
    block, cert, prepared = make_block(store, {})
    store.commit_block(block, cert, {}, [], None, prepared)
    store.close()
    old_header = list(block.header.to_value())
    del old_header[8]
    old_header[0] = 1
    db = plyvel.DB(data_dir)
    db.put(schema.META_SCHEMA_VERSION, (1).to_bytes(4, "big"))
    db.put(b"\x10" + schema.encode_height(1), codec.encode(old_header))  # schema 1's headers
    db.close()
    with pytest.raises(SchemaVersionError) as info:
        ChainStore.open(data_dir, make_genesis())
    message = info.value.message
    assert info.value.code == "schema_version"
    assert data_dir in message and "header version 1" in message
    assert "cannot be migrated" in message and "re-create the chain" in message
    db = plyvel.DB(data_dir)  # refused without a write: still the old directory
    assert db.get(schema.META_SCHEMA_VERSION) == (1).to_bytes(4, "big")
    db.close()


def test_second_open_of_a_data_dir_is_refused(data_dir: str, store: ChainStore) -> None:
    with pytest.raises(StorageError) as info:
        ChainStore.open(data_dir, make_genesis())
    assert info.value.code == "data_dir_locked"


def test_invalid_height_is_refused(store: ChainStore) -> None:
    commit(store, {b"a": b"1"})
    block, cert, prepared = make_block(store, {b"a": b"2"})
    future = dataclasses.replace(block, header=dataclasses.replace(block.header, height=3))
    with pytest.raises(NotContiguousError):
        store.commit_block(future, cert, {b"a": b"2"}, [], None, prepared)
    past = dataclasses.replace(block, header=dataclasses.replace(block.header, height=1))
    with pytest.raises(NotContiguousError):
        store.commit_block(past, cert, {b"a": b"2"}, [], None, prepared)
    assert store.head_height == 1


def test_invalid_parent_is_refused(store: ChainStore) -> None:
    block, _, prepared = make_block(store, {b"a": b"1"})
    orphan = dataclasses.replace(
        block, header=dataclasses.replace(block.header, prev_hash=compute_hash(b"x")))
    cert = CommitCertificate(1, 0, orphan.hash, ())
    with pytest.raises(NotContiguousError):
        store.commit_block(orphan, cert, {b"a": b"1"}, [], None, prepared)
    assert store.head_height == 0


def test_invalid_state_root_is_refused(store: ChainStore) -> None:
    block, cert, _ = make_block(store, {b"a": b"1"})
    with pytest.raises(StateRootMismatchError):
        store.commit_block(block, cert, {b"a": b"2"}, [], None)
    assert store.get_state(b"a") is None


def test_invalid_certificate_is_refused(store: ChainStore) -> None:
    block, cert, prepared = make_block(store, {})
    wrong = dataclasses.replace(cert, block_hash=compute_hash(b"other"))
    with pytest.raises(BlockMismatchError):
        store.commit_block(block, wrong, {}, [], None, prepared)


def test_invalid_tx_result_count_is_refused(store: ChainStore) -> None:
    block, cert, prepared = make_block(store, {}, make_txs(2))
    with pytest.raises(BlockMismatchError):
        store.commit_block(block, cert, {}, [("ok", "", [])], None, prepared)


def test_invalid_prepared_state_is_refused(store: ChainStore) -> None:
    block, cert, prepared = make_block(store, {b"a": b"1"})
    with pytest.raises(BlockMismatchError):
        store.commit_block(block, cert, {b"a": b"9"}, [], None, prepared)
    commit(store, {b"b": b"1"})
    block, cert, _ = make_block(store, {b"a": b"1"})
    with pytest.raises(StalePreparedStateError):  # prepared on the state before block 1
        store.commit_block(block, cert, {b"a": b"1"}, [], None, prepared)


def test_validator_set_change_applies_from_next_height(data_dir: str,
                                                       store: ChainStore) -> None:
    new_set = make_validator_set(KEYS[:3])
    block, cert, prepared = make_block(store, {}, next_validator_set=new_set)
    with pytest.raises(BlockMismatchError):  # header names the new set; None says unchanged
        store.commit_block(block, cert, {}, [], None, prepared)
    store.commit_block(block, cert, {}, [], new_set, prepared)
    commit(store, {})  # certified by the new set; header built from get_validator_set(2)
    store.close()
    reopened = ChainStore.open(data_dir, make_genesis())
    try:
        assert reopened.get_validator_set(1) == make_validator_set()
        assert reopened.get_validator_set(2) == new_set
        assert reopened.get_validator_set(3) == new_set
        with pytest.raises(UnknownHeightError):
            reopened.get_validator_set(4)
        assert reopened.get_block(2) is not None
        assert reopened.get_block(2).header.validator_set_hash == new_set.hash  # type: ignore[union-attr]
    finally:
        reopened.close()


def test_state_proof_against_head_root(store: ChainStore) -> None:
    commit(store, {b"acct/alice": b"1"})
    proof = store.get_state_proof(b"acct/alice")
    assert proof.height == 1
    assert proof.root == store.head_state_root
    assert verify_state_proof(proof, b"acct/alice", b"1", store.head_state_root)
    absent = store.get_state_proof(b"acct/nobody")
    assert verify_state_proof(absent, b"acct/nobody", None, store.head_state_root)


def test_crash_before_write_leaves_height_h(data_dir: str, store: ChainStore,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    commit(store, {b"a": b"1"})
    root_h = store.head_state_root
    block, cert, prepared = make_block(store, {b"a": b"2", b"b": b"3"}, make_txs(1))

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    kv = store._kv
    monkeypatch.setattr(kv, "write", crash)
    with pytest.raises(OSError):
        store.commit_block(block, cert, {b"a": b"2", b"b": b"3"}, [("ok", "", [])], None,
                           prepared)
    # The live store did not move either.
    assert store.head_height == 1
    assert store.head_state_root == root_h
    assert store.get_state(b"a") == b"1"
    monkeypatch.undo()
    store.close()

    reopened = ChainStore.open(data_dir, make_genesis())
    try:
        assert reopened.head_height == 1
        assert reopened.head_state_root == root_h
        assert reopened.get_state(b"b") is None
        assert reopened.get_block(2) is None
        assert reopened.get_tx(block.txs[0].hash) is None
        # And the same block commits cleanly afterwards.
        block2, cert2, prepared2 = make_block(reopened, {b"a": b"2", b"b": b"3"}, make_txs(1))
        assert block2 == block
        reopened.commit_block(block2, cert2, {b"a": b"2", b"b": b"3"}, [("ok", "", [])], None,
                              prepared2)
        assert reopened.head_height == 2
    finally:
        reopened.close()


def test_sign_state_and_evidence_survive_reopen(data_dir: str, store: ChainStore) -> None:
    assert store.load_sign_state() is None
    store.save_sign_state(b"h=5 r=0 step=prevote")
    store.save_sign_state(b"h=5 r=0 step=precommit")
    assert store.add_evidence(b"evidence-1")
    assert store.add_evidence(b"evidence-0")
    assert not store.add_evidence(b"evidence-1")
    store.close()
    reopened = ChainStore.open(data_dir, make_genesis())
    try:
        assert reopened.load_sign_state() == b"h=5 r=0 step=precommit"
        assert reopened.list_evidence() == [b"evidence-1", b"evidence-0"]
    finally:
        reopened.close()


def test_memory_store_behaves_the_same() -> None:
    s = ChainStore.open_memory(make_genesis())
    s.commit_genesis(GENESIS_STATE, make_validator_set())
    block = commit(s, {b"acct/alice": b"1"}, make_txs(1))
    assert s.head_hash == block.hash
    assert s.get_block(1) == block
    assert s.get_state(b"acct/alice") == b"1"
    assert s.get_tx(block.txs[0].hash) is not None


def test_decoded_block_cache_is_bounded_by_transactions(store: ChainStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: the cache was bounded in blocks only, so under load (large blocks) a
    # node held up to 64 full blocks of decoded transactions and its memory kept growing.
    import storage.chain_store as chain_store

    monkeypatch.setattr(chain_store, "RECENT_TXS", 25)
    for height in range(1, 6):
        commit(store, {b"k": bytes([height])}, make_txs(10, nonce_base=10 * height))
    cached = store._recent_blocks
    assert list(cached) == [4, 5] and store._recent_txs == 20
    assert store.get_block(1) is not None and store.get_block(1).txs == \
        make_txs(10, nonce_base=10)  # older blocks are read from the database
    commit(store, {b"k": b"big"}, make_txs(40, nonce_base=100))  # larger than the bound
    assert list(cached) == [6] and store._recent_txs == 40  # the head block stays


def test_state_reads_follow_every_commit(store: ChainStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Committed state is served from memory once read; a commit must never leave a stale
    # value behind, including for deleted keys and keys that did not exist.
    import storage.chain_store as chain_store

    monkeypatch.setattr(chain_store, "STATE_CACHE_ENTRIES", 4)
    assert store.get_state(b"acct/alice") == b"100"
    assert store.get_state(b"acct/dave") is None
    commit(store, {b"acct/alice": b"90", b"acct/dave": b"5", b"acct/bob": None})
    assert store.get_state(b"acct/alice") == b"90"
    assert store.get_state(b"acct/dave") == b"5"
    assert store.get_state(b"acct/bob") is None
    for i in range(10):  # more keys than the cache holds: it stays bounded
        assert store.get_state(b"acct/x%d" % i) is None
        assert len(store._state_cache) <= 4
    assert store.get_state(b"acct/alice") == b"90"  # read again from the database
    assert store.get_state(b"param/x") == b"1"


def test_a_read_racing_a_commit_does_not_cache_the_old_value(
        store: ChainStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader thread fetches a value from the database just before a block commits a
    # new one; the old value must not land in the cache after the commit's update.
    kv = store._kv
    real_get = kv.get

    def get_then_commit(key: bytes) -> bytes | None:
        value = real_get(key)
        monkeypatch.setattr(kv, "get", real_get)
        commit(store, {b"acct/alice": b"1"})  # lands between the read and the fill
        return value

    store._state_cache.clear()  # genesis filled it: make the next read go to the database
    monkeypatch.setattr(kv, "get", get_then_commit)
    assert store.get_state(b"acct/alice") == b"100"  # the reader saw the old state
    assert store.get_state(b"acct/alice") == b"1"  # but nothing stale was kept


def test_validator_sets_are_scanned_once_per_height(store: ChainStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Every vote and proposal a node receives asks for its height's validator set; each
    # ask was a reverse scan of the database.
    from storage import schema

    scans: list[bytes | None] = []
    real_iterate = store._kv.iterate

    def counting_iterate(prefix: bytes, **kwargs: Any) -> Any:
        if prefix == schema.VALIDATOR_SET:
            scans.append(kwargs.get("start"))
        return real_iterate(prefix, **kwargs)

    monkeypatch.setattr(store._kv, "iterate", counting_iterate)
    for _ in range(100):
        assert store.get_validator_set(1) == make_validator_set()
    assert len(scans) == 1
    # A commit may change the set of the next height: that one is read afresh, and the
    # heights before keep theirs.
    new_set = make_validator_set(KEYS[:3])
    block, cert, prepared = make_block(store, {}, next_validator_set=new_set)
    store.commit_block(block, cert, {}, [], new_set, prepared)
    for _ in range(100):
        assert store.get_validator_set(2) == new_set
        assert store.get_validator_set(1) == make_validator_set()
    assert len(scans) == 3
    with pytest.raises(UnknownHeightError):
        store.get_validator_set(3)


def test_validator_set_memory_is_bounded(store: ChainStore) -> None:
    # A client may ask for any past height (chain_validators): what is kept for them
    # stays bounded.
    from storage.chain_store import VALIDATOR_SET_CACHE_HEIGHTS

    for _ in range(VALIDATOR_SET_CACHE_HEIGHTS + 10):
        commit(store, {})
    for height in range(1, store.head_height + 2):
        assert store.get_validator_set(height) == make_validator_set()
    assert len(store._validator_sets) <= VALIDATOR_SET_CACHE_HEIGHTS
