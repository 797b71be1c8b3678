"""Moving a schema 1 data directory to schema 2 in place: `govchain migrate`.

Block by block, the header, certificate and tx records leave LevelDB for the history
segments: each block is appended and synced, then one synced batch writes its location
and new index entries, deletes its schema 1 rows and records how far the move got, so a
run cut short resumes where it stopped. A store that joined by state sync under schema
1 (meta `base_height` = the snapshot height H, headers and certificates of the proven
heights but no blocks up to H) first has those headers moved to the proven headers table
and its base height rewritten to H + 1, the first block it holds, in one batch. It never
changes the state, the head or the node's own tables, and it must not run while a node
has the directory open.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from chain import codec
from chain.crypto import compute_hash
from storage import schema, schema_v1
from storage.chain_store import HISTORY_DIR
from storage.errors import InconsistentDataError, SchemaVersionError
from storage.history import BlockLocation, HistoryStore, get_segment
from storage.kv import PlyvelStore, WriteBatch

MIGRATED_HEIGHT = schema.META + b"migrated_height"
"""Meta key kept only while a migration is under way: the last height moved."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What one run of the migration did."""

    from_version: int
    blocks_moved: int
    """Blocks moved by this run (a resumed run counts only its own)."""
    head_height: int
    history_bytes: int


def migrate_data_dir(path: str, progress: Progress | None = None) -> MigrationReport:
    """Move the schema 1 directory `path` to schema 2 (nothing to do at schema 2)."""
    kv = PlyvelStore(path)
    history = HistoryStore(os.path.join(path, HISTORY_DIR))
    try:
        version = int.from_bytes(kv.get(schema.META_SCHEMA_VERSION) or b"", "big")
        head = schema.decode_height(kv.get(schema.META_HEAD_HEIGHT) or bytes(8))
        if version == schema.SCHEMA_VERSION:
            return MigrationReport(version, 0, head, history.get_disk_bytes())
        if kv.get(schema.META_RESTORE) is not None:
            raise InconsistentDataError(
                f"{path} holds a state-sync restore that never finished: delete the data "
                "directory and join again (docs/state-sync.md); there is nothing to migrate")
        if version != schema_v1.VERSION:
            raise SchemaVersionError(f"{path} uses storage schema {version}; this "
                                     f"migration reads schema {schema_v1.VERSION} only")
        _move_restored_headers(kv)
        moved = _move_blocks(kv, history, head, progress)
        _finish(kv)
        return MigrationReport(version, moved, head, history.get_disk_bytes())
    finally:
        history.close()
        kv.close()


def _move_restored_headers(kv: PlyvelStore) -> None:
    """Schema 1's state-sync base (the snapshot height H) becomes schema 2's (H + 1) and
    the headers the restore proved become proven headers; done once, before any block
    moves (MIGRATED_HEIGHT then says H)."""
    raw = kv.get(schema.META_BASE_HEIGHT)
    if raw is None or kv.get(MIGRATED_HEIGHT) is not None:
        return  # never state-synced, or converted by a run cut short since
    restored = schema.decode_height(raw)
    batch = WriteBatch(kv)
    for key, header in kv.iterate(schema_v1.BLOCK_HEADER):
        height = schema.decode_height(key[len(schema_v1.BLOCK_HEADER):])
        if height > restored:
            break
        certificate = kv.get(schema_v1.certificate_key(height))
        if certificate is None:
            raise InconsistentDataError(f"the certificate of the proven header {height} is "
                                        f"missing from {kv.path}", height=height)
        batch.put(schema.proven_header_key(height), codec.encode([header, certificate]))
        batch.delete(key)
        batch.delete(schema_v1.certificate_key(height))
    batch.put(schema.META_BASE_HEIGHT, schema.encode_height(restored + 1))
    batch.put(MIGRATED_HEIGHT, schema.encode_height(restored))
    kv.write(batch, sync=True)


def _move_blocks(kv: PlyvelStore, history: HistoryStore, head: int,
                 progress: Progress | None) -> int:
    raw = kv.get(MIGRATED_HEIGHT)
    done = 0 if raw is None else schema.decode_height(raw)
    raw_base = kv.get(schema.META_BASE_HEIGHT)  # schema 2's meaning by now
    base = 1 if raw_base is None else schema.decode_height(raw_base)
    previous = _location(kv, done) if done >= base else None
    for height in range(done + 1, head + 1):
        same = previous is not None and get_segment(previous.height) == get_segment(height)
        previous = _move_block(kv, history, height, previous.end if same and previous else 0)
        if progress is not None:
            progress(height, head)
    return max(0, head - done)


def _move_block(kv: PlyvelStore, history: HistoryStore, height: int,
                offset: int) -> BlockLocation:
    header = kv.get(schema_v1.block_header_key(height))
    certificate = kv.get(schema_v1.certificate_key(height))
    if header is None or certificate is None:
        raise InconsistentDataError(f"block {height} or its certificate is missing from "
                                    f"{kv.path}: restore it from a backup first",
                                    height=height)
    rows = list(kv.iterate(schema_v1.tx_record_prefix(height)))
    records = [value for _, value in rows]
    location, offsets = history.append_block(height, header, certificate, records,
                                             offset=offset)
    batch = WriteBatch(kv)
    batch.put(schema.block_location_key(height), location.encode())
    for index, (record, frame) in enumerate(zip(records, offsets, strict=True)):
        tx_hash = compute_hash(codec.unpack_unchecked(record)[0])
        batch.put(schema.tx_index_key(tx_hash, height, index),
                  frame.to_bytes(schema.OFFSET_SIZE, "big"))
        batch.delete(schema_v1.tx_hash_key(tx_hash))
    for key, _ in rows:
        batch.delete(key)
    batch.delete(schema_v1.block_header_key(height))
    batch.delete(schema_v1.certificate_key(height))
    batch.put(MIGRATED_HEIGHT, schema.encode_height(height))
    kv.write(batch, sync=True)
    return location


def _location(kv: PlyvelStore, height: int) -> BlockLocation:
    raw = kv.get(schema.block_location_key(height))
    if raw is None:
        raise InconsistentDataError(f"the migration of {kv.path} says block {height} was "
                                    "moved, but its location is missing", height=height)
    return BlockLocation.decode(height, raw)


def _finish(kv: PlyvelStore) -> None:
    """Schema 2 from here on; then compact the emptied schema 1 tables away."""
    for prefix in schema_v1.TABLES:
        if next(kv.iterate(prefix), None) is not None:
            raise InconsistentDataError(
                f"{kv.path} still holds schema 1 rows under 0x{prefix.hex()} after every "
                "block moved (rows of no block): the directory is not a clean schema 1 one")
    batch = WriteBatch(kv)
    batch.put(schema.META_SCHEMA_VERSION, schema.SCHEMA_VERSION.to_bytes(4, "big"))
    batch.delete(MIGRATED_HEIGHT)
    kv.write(batch, sync=True)
    for prefix in schema_v1.TABLES:
        kv.compact(prefix)
