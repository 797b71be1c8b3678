"""The key schema: distinct tables, heights that iterate in order."""

from __future__ import annotations

from pathlib import Path

from storage import schema
from storage.kv import PlyvelStore, WriteBatch


def test_table_prefixes_are_distinct_single_bytes() -> None:
    prefixes = [value for name, value in vars(schema).items()
                if name.isupper() and isinstance(value, bytes) and len(value) == 1]
    assert len(prefixes) == 13
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
            batch.put(schema.block_header_key(h), b"")
            batch.put(schema.certificate_key(h), b"")  # another table, must not interleave
        store.write(batch)
        got = [schema.decode_height(k[1:]) for k, _ in store.iterate(schema.BLOCK_HEADER)]
        assert got == sorted(heights)
    finally:
        store.close()


def test_tx_records_of_a_height_do_not_mix_with_neighbours(tmp_path: Path) -> None:
    store = PlyvelStore(str(tmp_path / "db"))
    try:
        batch = WriteBatch(store)
        for height in (1, 2, 256):
            for index in (0, 1, 255, 256, 70_000):
                batch.put(schema.tx_record_key(height, index), b"%d/%d" % (height, index))
        store.write(batch)
        got = [v for _, v in store.iterate(schema.tx_record_prefix(2))]
        assert got == [b"2/0", b"2/1", b"2/255", b"2/256", b"2/70000"]
    finally:
        store.close()


def test_tx_location_round_trips() -> None:
    assert schema.decode_tx_location(schema.tx_location(2**40, 70_000)) == (2**40, 70_000)
