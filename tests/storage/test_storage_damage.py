"""Damaged LevelDB files are detected on read, never served; a full disk is named."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from storage import schema
from storage.damage import find_damage
from storage.errors import CorruptionError, DiskFullError, StorageError
from storage.kv import PlyvelStore, WriteBatch

VALUE = bytes(range(256)) * 4


def write_table(path: Path) -> None:
    """400 block locations of 1 KiB (a table by height) at heights 1..400, compacted
    into a table file."""
    store = PlyvelStore(str(path))
    batch = WriteBatch(store)
    for height in range(1, 401):
        batch.put(schema.block_location_key(height), VALUE)
    store.write(batch)
    store.close()
    db = plyvel.DB(str(path), compression=None)
    db.compact_range()
    db.close()


def damage_one_block(path: Path) -> None:
    table = max(path.glob("*.ldb"), key=lambda p: p.stat().st_size)
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0xFF
    table.write_bytes(bytes(data))


def test_invalid_flipped_byte_in_a_table_raises_instead_of_serving(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_table(path)
    damage_one_block(path)
    store = PlyvelStore(str(path))
    failures: list[StorageError] = []
    store.on_failure = failures.append
    read, damaged = 0, 0
    for height in range(1, 401):
        try:
            value = store.get(schema.block_location_key(height))
        except CorruptionError as e:
            damaged += 1
            assert "checksum mismatch" in e.message and "govchain audit" in e.message
            continue
        assert value == VALUE  # never a wrong value
        read += 1
    assert damaged > 0 and read > 0
    assert len(failures) == damaged
    with pytest.raises(CorruptionError):
        list(store.iterate(schema.BLOCK_LOCATION))
    store.close()


def test_find_damage_names_the_table_and_height(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_table(path)
    damage_one_block(path)
    found = find_damage(str(path))
    assert len(found) == 1, found
    assert found[0].startswith("block locations (0x14) unreadable after block locations, height ")


def test_find_damage_on_a_healthy_database_finds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_table(path)
    assert find_damage(str(path)) == []


def test_invalid_write_on_a_full_disk_is_disk_full(tmp_path: Path) -> None:
    store = PlyvelStore(str(tmp_path / "db"))
    failures: list[StorageError] = []
    store.on_failure = failures.append
    error = store._failed("writing to", plyvel.IOError(
        b"IO error: db/000003.log: No space left on device"))
    assert isinstance(error, DiskFullError) and error.code == "disk_full"
    assert f"the disk holding {tmp_path / 'db'} (mounted at " in error.message
    assert "bytes free" in error.message and "restart the node" in error.message
    assert failures == [error]
    assert store.get(b"missing") is None  # the store itself is untouched
    store.close()


def test_find_damage_names_a_table_file_damaged_throughout(tmp_path: Path) -> None:
    # When every data block from where a scan begins fails its checksum, the scan ends
    # at once with no error at all (plyvel reports the iterator's status only after a
    # step, not after its first seek); the point read find_damage makes where the scan
    # began does raise, so the table and its file are named.
    path = tmp_path / "db"
    db = plyvel.DB(str(path), create_if_missing=True)  # Snappy-compressed blocks
    for height in range(400):
        db.put(schema.block_location_key(height), b"location %d " % height * 5)
    db.compact_range()
    db.close()
    table = max(path.glob("*.ldb"), key=lambda p: p.stat().st_size)
    data = bytearray(table.read_bytes())
    for offset in range(0, len(data) - 48, 512):  # every block hit; the footer left
        data[offset] ^= 0xFF
    table.write_bytes(bytes(data))
    store = PlyvelStore(str(path))
    assert list(store.iterate(schema.BLOCK_LOCATION)) == []  # silently nothing
    store.close()
    found = find_damage(str(path))
    assert found == [f"block locations (0x14) unreadable from its start (in {table.name}): "
                     "Corruption: block checksum mismatch"], found
