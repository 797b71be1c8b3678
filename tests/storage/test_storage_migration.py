"""`govchain migrate`: a schema 1 directory moved to schema 2 in place, resumably."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chain import codec
from chain.crypto import compute_hash
from storage import history, schema, schema_v1
from storage.chain_store import HISTORY_DIR, ChainStore
from storage.errors import InconsistentDataError, SchemaVersionError
from storage.history import BlockLocation, HistoryStore
from storage.kv import PlyvelStore, WriteBatch
from storage.migration import migrate_data_dir
from tests.storage.storage_builders import commit, make_genesis, make_txs, make_validator_set

GENESIS = make_genesis()


def make_schema_1(path: Path, blocks: int) -> list:
    """A schema 1 directory as a schema 1 node left it: built at schema 2, then its
    history put back under the schema 1 keys. Returns the blocks."""
    store = ChainStore.open(str(path), GENESIS)
    store.commit_genesis({b"k": b"0"}, make_validator_set())
    built = [commit(store, {b"k": str(h).encode()}, make_txs(3, nonce_base=h * 10))
             for h in range(1, blocks + 1)]
    store.close()
    downgrade_to_schema_1(path)
    return built


def downgrade_to_schema_1(path: Path) -> None:
    """Put the history of the closed schema 2 store at `path` back under the schema 1
    keys (headers, certificates, tx records and the 32-byte tx hash index in LevelDB)
    and remove its segments."""
    kv = PlyvelStore(str(path))
    segments = HistoryStore(str(path / HISTORY_DIR))
    head = schema.decode_height(kv.get(schema.META_HEAD_HEIGHT))
    batch = WriteBatch(kv)
    for height in range(1, head + 1):
        stored = segments.read_block(BlockLocation.decode(
            height, kv.get(schema.block_location_key(height))))
        batch.put(schema_v1.block_header_key(height), stored.header)
        batch.put(schema_v1.certificate_key(height), stored.certificate)
        for index, record in enumerate(stored.tx_records):
            batch.put(schema_v1.tx_record_prefix(height) + index.to_bytes(4, "big"), record)
            tx_hash = compute_hash(codec.unpack_unchecked(record)[0])
            batch.put(schema_v1.tx_hash_key(tx_hash), schema.tx_location(height, index))
        batch.delete(schema.block_location_key(height))
    for key, _ in kv.iterate(schema.TX_INDEX):
        batch.delete(key)
    batch.put(schema.META_SCHEMA_VERSION, (1).to_bytes(4, "big"))
    kv.write(batch)
    segments.close()
    kv.close()
    shutil.rmtree(path / HISTORY_DIR)


def test_migrate_moves_every_block_and_tx(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)
    blocks = make_schema_1(tmp_path, 9)
    with pytest.raises(SchemaVersionError, match="govchain migrate"):
        ChainStore.open(str(tmp_path), GENESIS)
    report = migrate_data_dir(str(tmp_path))
    assert (report.from_version, report.blocks_moved, report.head_height) == (1, 9, 9)
    store = ChainStore.open(str(tmp_path), GENESIS)
    assert [store.get_block(h) for h in range(1, 10)] == blocks
    record = store.get_tx(blocks[6].txs[2].hash)
    assert record is not None and (record.height, record.index) == (7, 2)
    store.close()
    kv = PlyvelStore(str(tmp_path))
    assert all(next(kv.iterate(prefix), None) is None for prefix in schema_v1.TABLES)
    kv.close()
    assert migrate_data_dir(str(tmp_path)).blocks_moved == 0  # schema 2 already


def test_a_migration_cut_short_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)
    blocks = make_schema_1(tmp_path, 9)

    def stop_at_6(height: int, head: int) -> None:
        if height == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate_data_dir(str(tmp_path), progress=stop_at_6)
    with open(tmp_path / HISTORY_DIR / "000001.seg", "ab") as f:
        f.write(b"a block appended whose batch never landed")
    report = migrate_data_dir(str(tmp_path))
    assert report.blocks_moved == 3
    store = ChainStore.open(str(tmp_path), GENESIS)
    assert [store.get_block(h) for h in range(1, 10)] == blocks
    assert codec.decode(store.tx_records(9)[0])[1] == "ok"
    store.close()


def test_migrate_a_state_synced_schema_1_store(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A schema 1 node that joined by state sync at height 4 (its `base_height`), with the
    # headers its restore proved (2: a set change, say; 4: the snapshot's), then followed
    # blocks 5-9.
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)
    blocks = make_schema_1(tmp_path, 9)
    kv = PlyvelStore(str(tmp_path))
    batch = WriteBatch(kv)
    for height in range(1, 5):
        for key, _ in kv.iterate(schema_v1.tx_record_prefix(height)):
            batch.delete(key)
        for tx in blocks[height - 1].txs:
            batch.delete(schema_v1.tx_hash_key(tx.hash))
        batch.delete(schema.block_hash_key(blocks[height - 1].hash))
        if height in (1, 3):
            batch.delete(schema_v1.block_header_key(height))
            batch.delete(schema_v1.certificate_key(height))
    batch.put(schema.META_BASE_HEIGHT, schema.encode_height(4))
    kv.write(batch)
    certificates = {h: kv.get(schema_v1.certificate_key(h)) for h in (2, 4)}
    kv.close()

    report = migrate_data_dir(str(tmp_path))
    assert (report.blocks_moved, report.head_height) == (5, 9)
    store = ChainStore.open(str(tmp_path), GENESIS)
    try:
        assert store.base_height == 5  # the first block it holds
        assert store.get_block(4) is None
        assert [store.get_block(h) for h in range(5, 10)] == blocks[4:]
        for height in (2, 4):
            assert store.get_block_header(height) == blocks[height - 1].header
            certificate = store.get_certificate(height)
            assert certificate is not None and certificate.encoded == certificates[height]
        assert store.get_block_header(3) is None
        assert store.get_tx(blocks[2].txs[0].hash) is None
        assert store.get_tx(blocks[6].txs[1].hash) is not None
    finally:
        store.close()
    kv = PlyvelStore(str(tmp_path))
    assert all(next(kv.iterate(prefix), None) is None for prefix in schema_v1.TABLES)
    kv.close()


def test_invalid_migrate_refuses_an_unfinished_restore(tmp_path: Path) -> None:
    kv = PlyvelStore(str(tmp_path))
    batch = WriteBatch(kv)
    batch.put(schema.META_RESTORE, b"marker")
    kv.write(batch)
    kv.close()
    with pytest.raises(InconsistentDataError, match="state-sync restore that never finished"):
        migrate_data_dir(str(tmp_path))
