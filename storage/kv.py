"""The key-value protocol under all of storage, and its two backends.

`PlyvelStore` (LevelDB) is what nodes and integration tests use; `MemoryStore` is a
dict for the pure simulation only. Writes happen only through an atomic
`WriteBatch`; this module never knows what the keys mean (see storage.schema).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import plyvel

from storage.errors import CorruptionError, DataDirLockedError, StorageError


class KVStore(Protocol):
    """An ordered byte-string map with prefix scans and atomic batches."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None."""
        ...

    def iterate(self, prefix: bytes, *, start: bytes | None = None,
                reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key begins with `prefix`, in byte order.

        With `start`, forward scans begin at the first key >= start and reverse
        scans at the last key <= start.
        """
        ...

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        """Apply all of `batch` atomically; with `sync`, durable when this returns."""
        ...

    def close(self) -> None:
        """Release the store; no call is valid afterwards."""
        ...


class WriteBatch:
    """Buffered puts and deletes, applied atomically by KVStore.write.

    `get` reads through the batch: it sees the batch's own writes first, then the
    store it was made for.
    """

    __slots__ = ("_ops", "_store")

    def __init__(self, store: KVStore | None = None) -> None:
        self._ops: dict[bytes, bytes | None] = {}
        self._store = store

    def put(self, key: bytes, value: bytes) -> None:
        self._ops[key] = value

    def delete(self, key: bytes) -> None:
        self._ops[key] = None

    def get(self, key: bytes) -> bytes | None:
        if key in self._ops:
            return self._ops[key]
        return self._store.get(key) if self._store is not None else None

    @property
    def ops(self) -> Mapping[bytes, bytes | None]:
        """Key to new value (None = delete); the last write of each key wins."""
        return self._ops

    def __len__(self) -> int:
        return len(self._ops)


def compute_prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _scan_bounds(prefix: bytes, start: bytes | None,
                 reverse: bool) -> tuple[bytes, bytes | None]:
    """[low, high) key bounds of a scan, following the KVStore.iterate contract."""
    low, high = prefix, compute_prefix_end(prefix)
    if start is None:
        return low, high
    if not reverse:
        return max(low, start), high
    # Keys <= start are exactly the keys < start + b"\x00".
    stop = start + b"\x00"
    return low, stop if high is None else min(stop, high)


class PlyvelStore:
    """LevelDB through plyvel: one database directory, synced batches."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._db = plyvel.DB(path, create_if_missing=True, paranoid_checks=True,
                                 write_buffer_size=32 * 1024 * 1024,
                                 lru_cache_size=64 * 1024 * 1024, bloom_filter_bits=10)
        except plyvel.CorruptionError as e:
            raise CorruptionError(
                f"the database in {path} is corrupt ({e}); restore it from a backup or "
                "move it aside and resync from peers") from e
        except plyvel.IOError as e:
            if "lock" in str(e).lower():
                raise DataDirLockedError(
                    f"the database in {path} is in use by another process ({e}); stop the "
                    "other node using this data directory, or choose another one") from e
            raise StorageError(f"cannot open the database in {path}: {e}") from e

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def iterate(self, prefix: bytes, *, start: bytes | None = None,
                reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        low, high = _scan_bounds(prefix, start, reverse)
        if high is not None and low >= high:
            return
        if reverse:
            # plyvel's reverse scan with a `start` bound misses the lower bound key when it
            # is the only key at or above it, so bound below by hand.
            with self._db.iterator(stop=high, reverse=True) as it:
                for key, value in it:
                    if key < low:
                        return
                    yield key, value
            return
        with self._db.iterator(start=low or None, stop=high) as it:
            yield from it

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        wb = self._db.write_batch(sync=sync)
        for key, value in batch.ops.items():
            if value is None:
                wb.delete(key)
            else:
                wb.put(key, value)
        try:
            wb.write()
        except plyvel.Error as e:
            raise StorageError(
                f"writing to the database in {self.path} failed: {e}; check free disk "
                "space and permissions, then restart the node") from e

    def copy_snapshot_to(self, path: str, batch_bytes: int = 4 * 1024 * 1024) -> int:
        """Copy a consistent point-in-time view of every key into a new database at
        `path` (which must not exist) while writes go on; returns the keys copied."""
        copied = 0
        target = plyvel.DB(path, create_if_missing=True, error_if_exists=True)
        try:
            snapshot = self._db.snapshot()
            try:
                wb = target.write_batch()
                size = 0
                with snapshot.iterator() as it:
                    for key, value in it:
                        wb.put(key, value)
                        copied += 1
                        size += len(key) + len(value)
                        if size >= batch_bytes:
                            wb.write()
                            wb, size = target.write_batch(), 0
                wb.write()
            finally:
                snapshot.close()
        finally:
            target.close()
        return copied

    def close(self) -> None:
        self._db.close()


class MemoryStore:
    """A dict-backed store for the deterministic simulation; nothing is durable."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def iterate(self, prefix: bytes, *, start: bytes | None = None,
                reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        low, high = _scan_bounds(prefix, start, reverse)
        keys = sorted(k for k in self._data if k >= low and (high is None or k < high))
        if reverse:
            keys.reverse()
        # Values are captured now, like the snapshot a LevelDB iterator reads.
        items = [(k, self._data[k]) for k in keys]
        yield from items

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        for key, value in batch.ops.items():
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value

    def close(self) -> None:
        self._data = {}
