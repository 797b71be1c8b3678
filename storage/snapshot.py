"""State snapshots on disk for state sync: export at a committed height, and restore.

Export reads a point-in-time view of the state tables (never the live ones) and writes
a manifest and chunk files beside the database; restore writes verified chunks into an
empty data directory marked "restore in progress", which no ChainStore opens until
the last batch. Nothing here verifies a peer's data: chain.snapshot does, first.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chain import codec
from chain.crypto import Hash32
from chain.snapshot import (
    CHUNK_TARGET_BYTES,
    MAX_CHUNK_BYTES,
    SNAPSHOT_FORMAT,
    LightBlock,
    SnapshotChunk,
    SnapshotManifest,
    SnapshotOffer,
    VerifiedChunk,
)
from chain.state_proof import BUCKET_COUNT, EMPTY_BUCKET_HASH, compute_tree_root
from chain.vote import ValidatorSet
from storage import schema
from storage.errors import StorageError
from storage.kv import PlyvelStore, SnapshotView, WriteBatch

SNAPSHOTS_KEPT = 2
"""Complete snapshots kept on disk (the newest); older ones are deleted."""
META_FILE = "snapshot.json"
MANIFEST_FILE = "manifest.bin"
PART_SUFFIX = ".part"
SPILL_GROUPS = 256
"""Export sorts the state by key hash in 256 spill files (by the hash's first byte):
one pass over the state, then one group in memory at a time (about 1/256 of it)."""
SPILL_FLUSH_BYTES = 64 * 1024
ENTRY_OVERHEAD_BYTES = 8
"""msgpack framing of one [key, value] entry in a chunk (array and two bin headers)."""
_RECORD = struct.Struct(">II")


class SnapshotExportError(StorageError):
    """Raised when a state snapshot cannot be exported (the state cannot be cut into
    chunks, or the view disagrees with the head's state root)."""

    code = "snapshot_export"


class RestoreError(StorageError):
    """Raised when a restore cannot start or finish (the directory is not empty, a
    chunk is missing, the written state does not give the certified root)."""

    code = "restore_failed"


class ExportCancelled(Exception):
    """Raised inside an export when its `cancelled` event is set (node stopping)."""


# ------------------------------------------------------------------ export


@dataclass(frozen=True)
class SnapshotFiles:
    """A complete state snapshot on disk, ready to serve."""

    path: Path
    """Its directory: HOME/state-snapshots/HEIGHT."""
    height: int
    """The committed height whose state it holds."""
    manifest_hash: Hash32
    """sha256 of manifest.bin."""
    chunk_count: int
    """Files chunk-00000.bin ... in the directory."""
    state_bytes: int
    """Bytes of keys and values in all chunks."""
    seconds: float
    """How long the export took."""

    @property
    def offer(self) -> SnapshotOffer:
        return SnapshotOffer(self.height, self.manifest_hash, self.chunk_count)

    def read_manifest(self) -> bytes:
        return (self.path / MANIFEST_FILE).read_bytes()

    def read_chunk(self, index: int) -> bytes:
        if not 0 <= index < self.chunk_count:
            raise StorageError(f"snapshot {self.height} has no chunk {index}")
        return (self.path / chunk_file_name(index)).read_bytes()


def chunk_file_name(index: int) -> str:
    return f"chunk-{index:05d}.bin"


def export_state_snapshot(view: SnapshotView, height: int, state_root: bytes, root: Path,
                          genesis_hash: bytes, *, cancelled: threading.Event | None = None,
                          target_bytes: int = CHUNK_TARGET_BYTES) -> SnapshotFiles:
    """Write the state `view` holds (the state after `height`, whose root is
    `state_root`) to ROOT/HEIGHT: built in ROOT/HEIGHT.part, renamed once complete."""
    started = time.monotonic()
    final = root / str(height)
    work = root / f"{height}{PART_SUFFIX}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        bucket_hashes = _read_bucket_hashes(view)
        if compute_tree_root(_non_empty(bucket_hashes)) != state_root:
            raise SnapshotExportError(f"the state view of height {height} does not give "
                                      "the head's state root")
        _spill_state(view, work, cancelled)
        starts, state_bytes = _write_chunks(work, height, target_bytes, cancelled)
        manifest = SnapshotManifest(height, Hash32(bytes(state_root)), bucket_hashes,
                                    tuple(starts))
        _write_file(work / MANIFEST_FILE, manifest.encoded)
        files = SnapshotFiles(final, height, manifest.hash, len(starts), state_bytes,
                              time.monotonic() - started)
        _write_file(work / META_FILE, json.dumps(_meta_doc(files, genesis_hash)).encode())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
        return files
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _read_bucket_hashes(view: SnapshotView) -> bytes:
    hashes: list[bytes] = [EMPTY_BUCKET_HASH] * BUCKET_COUNT
    for key, value in view.iterate(schema.TREE_BUCKET_HASH):
        hashes[schema.decode_tree_bucket_hash_key(key)] = value
    return b"".join(hashes)


def _non_empty(bucket_hashes: bytes) -> dict[int, bytes]:
    return {b: bucket_hashes[b * 32:b * 32 + 32] for b in range(BUCKET_COUNT)
            if bucket_hashes[b * 32:b * 32 + 32] != EMPTY_BUCKET_HASH}


def _spill_path(work: Path, group: int) -> Path:
    return work / f"spill-{group:03d}"


def _spill_state(view: SnapshotView, work: Path, cancelled: threading.Event | None) -> None:
    """Append each state entry, as (key hash, key, value), to the spill file of its key
    hash's first byte; buffers are flushed at SPILL_FLUSH_BYTES, so memory stays small."""
    buffers = [bytearray() for _ in range(SPILL_GROUPS)]
    sha256 = hashlib.sha256
    pack = _RECORD.pack
    strip = len(schema.STATE)
    for count, (stored_key, value) in enumerate(view.iterate(schema.STATE)):
        if cancelled is not None and count & 0xFFF == 0 and cancelled.is_set():
            raise ExportCancelled
        key = stored_key[strip:]
        key_hash = sha256(key).digest()
        buffer = buffers[key_hash[0]]
        buffer += pack(len(key), len(value)) + key_hash + key + value
        if len(buffer) >= SPILL_FLUSH_BYTES:
            _flush_spill(work, key_hash[0], buffer)
    for group, buffer in enumerate(buffers):
        _flush_spill(work, group, buffer)


def _flush_spill(work: Path, group: int, buffer: bytearray) -> None:
    if not buffer:
        return
    with open(_spill_path(work, group), "ab") as f:
        f.write(buffer)
    buffer.clear()


def _read_spill(work: Path, group: int) -> list[tuple[bytes, bytes, bytes]]:
    """(key hash, key, value) of one spill group, sorted by key hash; the file is removed."""
    path = _spill_path(work, group)
    data = path.read_bytes()
    path.unlink()
    records = []
    at = 0
    while at < len(data):
        key_size, value_size = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        key_hash = data[at:at + 32]
        key = data[at + 32:at + 32 + key_size]
        value = data[at + 32 + key_size:at + 32 + key_size + value_size]
        at += 32 + key_size + value_size
        records.append((key_hash, key, value))
    records.sort()
    return records


class _ChunkWriter:
    """Cuts the sorted entries into chunks at bucket boundaries and writes each file."""

    def __init__(self, work: Path, height: int, target_bytes: int) -> None:
        self.work = work
        self.height = height
        self.target_bytes = target_bytes
        self.starts: list[int] = [0]
        self.entries: list[tuple[bytes, bytes]] = []
        self.size = 0
        self.state_bytes = 0

    def add_bucket(self, bucket: int, entries: list[tuple[bytes, bytes]]) -> None:
        size = sum(len(k) + len(v) + ENTRY_OVERHEAD_BYTES for k, v in entries)
        if size > MAX_CHUNK_BYTES - 1024:
            raise SnapshotExportError(
                f"state-tree bucket {bucket} holds {size:,} bytes, more than one chunk may "
                f"carry ({MAX_CHUNK_BYTES:,}): this state cannot be served by state sync "
                "(docs/state-sync.md, \"Limits\")")
        if self.entries and self.size + size > self.target_bytes:
            self._write(end=bucket)
            self.starts.append(bucket)
        self.entries.extend(entries)
        self.size += size
        self.state_bytes += size - ENTRY_OVERHEAD_BYTES * len(entries)

    def finish(self) -> None:
        self._write(end=BUCKET_COUNT)

    def _write(self, end: int) -> None:
        index = len(self.starts) - 1
        chunk = SnapshotChunk(self.height, index, self.starts[-1], end, tuple(self.entries))
        data = chunk.encode()
        assert len(data) <= MAX_CHUNK_BYTES, "a chunk's size estimate was too low"
        _write_file(self.work / chunk_file_name(index), data)
        self.entries = []
        self.size = 0


def _write_chunks(work: Path, height: int, target_bytes: int,
                  cancelled: threading.Event | None) -> tuple[list[int], int]:
    writer = _ChunkWriter(work, height, target_bytes)
    for group in range(SPILL_GROUPS):
        if cancelled is not None and cancelled.is_set():
            raise ExportCancelled
        if not _spill_path(work, group).exists():
            continue
        for bucket, entries in _group_by_bucket(_read_spill(work, group)):
            writer.add_bucket(bucket, entries)
    writer.finish()
    return writer.starts, writer.state_bytes


def _group_by_bucket(records: list[tuple[bytes, bytes, bytes]]
                     ) -> Iterator[tuple[int, list[tuple[bytes, bytes]]]]:
    current = -1
    entries: list[tuple[bytes, bytes]] = []
    for key_hash, key, value in records:
        bucket = (key_hash[0] << 8) | key_hash[1]
        if bucket != current:
            if entries:
                yield current, entries
            current, entries = bucket, []
        entries.append((key, value))
    if entries:
        yield current, entries


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _meta_doc(files: SnapshotFiles, genesis_hash: bytes) -> dict[str, object]:
    return {"format": SNAPSHOT_FORMAT, "genesis_hash": bytes(genesis_hash).hex(),
            "height": files.height, "manifest_hash": files.manifest_hash.hex(),
            "chunks": files.chunk_count, "state_bytes": files.state_bytes,
            "seconds": round(files.seconds, 3)}


def list_state_snapshots(root: Path, genesis_hash: bytes) -> list[SnapshotFiles]:
    """The complete snapshots of this chain under `root`, newest first."""
    found = []
    for path in root.glob("*") if root.is_dir() else ():
        if not path.name.isdigit():
            continue
        try:
            doc = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError):
            continue  # not finished, or not ours
        if doc.get("format") != SNAPSHOT_FORMAT or \
                doc.get("genesis_hash") != bytes(genesis_hash).hex():
            continue
        found.append(SnapshotFiles(path, int(doc["height"]),
                                   Hash32(bytes.fromhex(doc["manifest_hash"])),
                                   int(doc["chunks"]), int(doc["state_bytes"]),
                                   float(doc["seconds"])))
    return sorted(found, key=lambda s: s.height, reverse=True)


def prune_state_snapshots(root: Path, genesis_hash: bytes, keep: int = SNAPSHOTS_KEPT) -> None:
    """Delete all but the `keep` newest complete snapshots, and unfinished ones."""
    for snapshot in list_state_snapshots(root, genesis_hash)[keep:]:
        shutil.rmtree(snapshot.path, ignore_errors=True)
    for path in root.glob(f"*{PART_SUFFIX}") if root.is_dir() else ():
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ restore


def encode_restore_marker(height: int, manifest_hash: bytes) -> bytes:
    """The marker's value: [height, manifest hash] of the snapshot being restored."""
    return codec.encode([height, manifest_hash])


def decode_restore_marker(data: bytes) -> tuple[int, bytes]:
    height, manifest_hash = codec.expect_tuple(codec.decode(data), 2, "restore marker")
    return codec.expect_int(height, "restore height"), codec.expect_bytes(
        manifest_hash, "restore manifest hash", size=32)


class DataDirStatus(enum.Enum):
    """What a data directory holds, as far as state sync cares."""

    EMPTY = "empty"  # no database, or one holding no chain (never initialized)
    RESTORING = "restoring"  # an interrupted restore: start it over
    IN_USE = "in_use"  # a chain store: state sync never touches it


def get_data_dir_status(path: Path) -> DataDirStatus:
    if not (path / "CURRENT").exists():
        return DataDirStatus.EMPTY
    kv = PlyvelStore(str(path))
    try:
        if kv.get(schema.META_RESTORE) is not None:
            return DataDirStatus.RESTORING
        identity = {schema.META_SCHEMA_VERSION, schema.META_GENESIS_HASH}
        for key, _ in kv.iterate(b""):
            if key not in identity:
                return DataDirStatus.IN_USE
        return DataDirStatus.EMPTY  # opened once, genesis never committed
    finally:
        kv.close()


@dataclass(frozen=True)
class RestoredChain:
    """What a restore writes besides the state: the proven headers and validator sets."""

    genesis_hash: Hash32
    """The chain's genesis hash (the store's identity)."""
    genesis_state_root: Hash32
    """The genesis state's root, as a store initialized from genesis records it."""
    light_blocks: tuple[LightBlock, ...]
    """Every light block the walk proved, ending with the one at the snapshot height."""
    validator_sets: tuple[tuple[int, ValidatorSet], ...]
    """(height from which it certifies, set) of each set the walk proved, rising."""

    @property
    def height(self) -> int:
        return self.light_blocks[-1].header.height


class StateRestore:
    """Writes one verified snapshot into an empty data directory, chunk by chunk."""

    def __init__(self, kv: PlyvelStore, manifest: SnapshotManifest) -> None:
        self._kv = kv
        self.manifest = manifest
        self.written: set[int] = set()
        """The chunk indexes written so far."""

    @classmethod
    def begin(cls, path: Path, manifest: SnapshotManifest) -> StateRestore:
        """Mark `path` (empty) as restoring `manifest`'s snapshot; durable on return."""
        status = get_data_dir_status(path)
        if status is DataDirStatus.IN_USE:
            raise RestoreError(f"{path} holds a chain already: state sync restores only "
                               "into an empty data directory")
        shutil.rmtree(path, ignore_errors=True)
        kv = PlyvelStore(str(path))
        batch = WriteBatch()
        batch.put(schema.META_RESTORE, encode_restore_marker(manifest.height, manifest.hash))
        kv.write(batch, sync=True)
        return cls(kv, manifest)

    def write_chunk(self, index: int, verified: VerifiedChunk) -> None:
        """Add a chunk proven by `verify_chunk`: its state entries and bucket hashes.

        Not synced: the last batch is, and a crash before it leaves the marker, so the
        whole restore starts over."""
        self._kv.write_pairs(_chunk_rows(verified), sync=False)
        self.written.add(index)

    def finish(self, chain: RestoredChain) -> None:
        """Write the headers, certificates, validator sets and meta in one synced batch
        that removes the marker: from then on the directory is a chain store whose head is
        `chain.height` and whose base height (first block held) is the next one."""
        missing = set(range(self.manifest.chunk_count)) - self.written
        if missing:
            raise RestoreError(f"chunk {min(missing)} of {self.manifest.chunk_count} was "
                               "never written")
        head = chain.light_blocks[-1].header
        if head.height != self.manifest.height or self._compute_root() != head.state_root:
            raise RestoreError(f"the restored state does not give the state root of the "
                               f"certified header at {head.height}")
        batch = WriteBatch()
        for light_block in chain.light_blocks:
            batch.put(schema.proven_header_key(light_block.header.height), codec.encode(
                [light_block.header.encoded, light_block.certificate.encoded]))
        for height, validator_set in chain.validator_sets:
            batch.put(schema.validator_set_key(height), codec.encode(validator_set.to_value()))
        batch.put(schema.META_SCHEMA_VERSION, schema.SCHEMA_VERSION.to_bytes(4, "big"))
        batch.put(schema.META_GENESIS_HASH, chain.genesis_hash)
        batch.put(schema.META_GENESIS_STATE_ROOT, chain.genesis_state_root)
        batch.put(schema.META_HEAD_HEIGHT, schema.encode_height(head.height))
        # The first block this store will hold is the one after the restored state's.
        batch.put(schema.META_BASE_HEIGHT, schema.encode_height(head.height + 1))
        batch.delete(schema.META_RESTORE)
        self._kv.write(batch, sync=True)

    def _compute_root(self) -> bytes:
        hashes = {schema.decode_tree_bucket_hash_key(key): value
                  for key, value in self._kv.iterate(schema.TREE_BUCKET_HASH)}
        return compute_tree_root(hashes)

    def close(self) -> None:
        self._kv.close()


def _chunk_rows(verified: VerifiedChunk) -> Iterator[tuple[bytes, bytes]]:
    """The database rows of a verified chunk: its state entries, its buckets' entries
    and their hashes (keys as storage.schema builds them)."""
    state_key = schema.state_key
    for key, value in verified.chunk.entries:
        yield state_key(key), value
    for bucket, entries, bucket_hash in verified.buckets:
        yield schema.tree_bucket_key(bucket), entries
        yield schema.tree_bucket_hash_key(bucket), bucket_hash


def discard_restore(path: Path) -> None:
    """Delete an interrupted restore (or an empty database) so that it can start over."""
    if get_data_dir_status(path) is DataDirStatus.IN_USE:
        raise RestoreError(f"{path} holds a chain: it is not deleted")
    shutil.rmtree(path, ignore_errors=True)
