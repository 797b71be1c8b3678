"""The key schema: distinct tables, heights that iterate in order."""

from __future__ import annotations

from pathlib import Path

from storage import schema
from storage.kv import PlyvelStore, WriteBatch


def test_table_prefixes_are_distinct_single_bytes() -> None:
    prefixes = [value for name, value in vars(schema).items()
                if name.isupper() and isinstance(value, bytes) and len(value) == 1]
    assert len(prefixes) == 12
    assert len(set(prefixes)) == len(prefixes)


def test_meta_keys_live_in_meta_table() -> None:
    for key in (schema.META_SCHEMA_VERSION, schema.META_GENESIS_HASH,
                schema.META_HEAD_HEIGHT, schema.META_GENESIS_STATE_ROOT):
        assert key.startswith(schema.META)


def test_heights_iterate_in_numeric_order_on_leveldb(tmp_path: Path) -> None:
    heights = [0, 1, 2, 255, 256, 257, 65_535, 65_536, 2**32, 2**40 + 7, 9, 10, 100]
    store = PlyvelStore(str(tmp_path / "db"))
    try:
        batch = WriteBatch(store)
        for h in heights:
            batch.put(schema.block_location_key(h), b"")
            batch.put(schema.validator_set_key(h), b"")  # another table, must not interleave
        store.write(batch)
        got = [schema.decode_height(k[1:]) for k, _ in store.iterate(schema.BLOCK_LOCATION)]
        assert got == sorted(heights)
    finally:
        store.close()


def test_tx_index_entries_of_one_hash_prefix_do_not_mix_with_neighbours(tmp_path: Path) -> None:
    store = PlyvelStore(str(tmp_path / "db"))
    shared, other = b"\x07" * 32, b"\x07" * 9 + b"\x08" + b"\x00" * 22
    try:
        batch = WriteBatch(store)
        for height, index in ((1, 0), (2, 70_000), (256, 1)):
            batch.put(schema.tx_index_key(shared, height, index), b"")
            batch.put(schema.tx_index_key(other, height, index), b"")
        store.write(batch)
        got = [schema.decode_tx_index_key(k) for k, _ in
               store.iterate(schema.tx_index_prefix(shared))]
        assert got == [(1, 0), (2, 70_000), (256, 1)]
    finally:
        store.close()


def test_tx_location_round_trips() -> None:
    assert schema.decode_tx_location(schema.tx_location(2**40, 70_000)) == (2**40, 70_000)
