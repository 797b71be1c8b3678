"""The key-value protocol under all of storage, and its two backends.

`PlyvelStore` (LevelDB) is what nodes and integration tests use; `MemoryStore` is a
dict for the pure simulation only. Writes happen only through an atomic
`WriteBatch`; this module never knows what the keys mean (see storage.schema).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

import plyvel

from storage.errors import CorruptionError, DataDirLockedError, DiskFullError, StorageError
from storage.leveldb_files import find_missing_log

NO_SPACE = os.strerror(errno.ENOSPC)
"""The text LevelDB puts in an IOError when the disk is full."""


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
    """LevelDB through plyvel: one database directory, synced batches.

    Every read verifies LevelDB's block checksums, so a damaged file raises
    CorruptionError instead of returning wrong bytes; so does opening a database whose
    current log is missing, which LevelDB itself would open as an older one. A failed
    read or write is also told to `on_failure` (the node stops on it: a disk that
    failed once is not trusted to serve or take more data).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.on_failure: Callable[[StorageError], None] | None = None
        # LevelDB opens without the log of the writes since the last open and says
        # nothing: the database would be an older one, sign state included.
        missing = find_missing_log(path)
        if missing is not None:
            raise CorruptionError(
                f"the database in {path} is corrupt (its log {missing} is missing: the "
                "writes since it was last opened are lost); restore it from a backup or "
                "move it aside and resync from peers (docs/reliability.md, \"Storage "
                "faults\")")
        try:
            self._db = plyvel.DB(path, create_if_missing=True, paranoid_checks=True,
                                 write_buffer_size=32 * 1024 * 1024,
                                 lru_cache_size=64 * 1024 * 1024, bloom_filter_bits=10)
        except plyvel.CorruptionError as e:
            notes = "".join(f"; LevelDB's LOG: {line}" for line in _corruption_notes(path))
            raise CorruptionError(
                f"the database in {path} is corrupt ({get_error_text(e)}{notes}); restore "
                "it from a backup or move it aside and resync from peers (docs/reliability.md, "
                "\"Storage faults\")") from e
        except plyvel.IOError as e:
            if "lock" in get_error_text(e).lower():
                raise DataDirLockedError(
                    f"the database in {path} is in use by another process "
                    f"({get_error_text(e)}); stop the other node using this data directory, "
                    "or choose another one") from e
            if NO_SPACE in get_error_text(e):
                raise DiskFullError(
                    f"cannot open the database in {path}: {describe_disk(path)} is full; "
                    "free space on it or move the data directory to a bigger disk") from e
            raise StorageError(
                f"cannot open the database in {path}: {get_error_text(e)}") from e

    def get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key, verify_checksums=True)
        except plyvel.Error as e:
            raise self._failed("reading from", e) from e
        return value

    def iterate(self, prefix: bytes, *, start: bytes | None = None,
                reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        try:
            yield from self._iterate(prefix, start, reverse)
        except plyvel.Error as e:
            raise self._failed("reading from", e) from e

    def _iterate(self, prefix: bytes, start: bytes | None,
                 reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        low, high = _scan_bounds(prefix, start, reverse)
        if high is not None and low >= high:
            return
        if reverse:
            # plyvel's reverse scan with a `start` bound misses the lower bound key when it
            # is the only key at or above it, so bound below by hand.
            with self._db.iterator(stop=high, reverse=True, verify_checksums=True) as it:
                for key, value in it:
                    if key < low:
                        return
                    yield key, value
            return
        with self._db.iterator(start=low or None, stop=high, verify_checksums=True) as it:
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
            raise self._failed("writing to", e) from e

    def write_pairs(self, pairs: Iterable[tuple[bytes, bytes]], *, sync: bool) -> None:
        """Put every (key, value) of `pairs` in one atomic batch, streamed into LevelDB
        with no WriteBatch dict in between: for bulk loads (a state-sync restore)."""
        wb = self._db.write_batch(sync=sync)
        put = wb.put
        for key, value in pairs:
            put(key, value)
        try:
            wb.write()
        except plyvel.Error as e:
            raise self._failed("writing to", e) from e

    def _failed(self, doing: str, e: plyvel.Error) -> StorageError:
        """The typed error for a failed read or write, told to `on_failure` first."""
        text = get_error_text(e)
        error: StorageError
        if isinstance(e, plyvel.CorruptionError):
            error = CorruptionError(
                f"{doing} the database in {self.path} failed: it is corrupt ({text}); stop "
                "the node, run `govchain audit`, then restore the data directory from a "
                "backup or resync it from peers (docs/reliability.md, \"Storage faults\")")
        elif NO_SPACE in text:
            error = DiskFullError(
                f"{doing} the database in {self.path} failed: {describe_disk(self.path)} is "
                "full. Nothing half-written is kept: the database stays at its last "
                "committed block. Free space on that disk (or move the data directory to a "
                "bigger one), then restart the node")
        else:
            error = StorageError(
                f"{doing} the database in {self.path} failed: {text}; check the disk and "
                "its permissions (the system log may say more), then restart the node")
        if self.on_failure is not None:
            self.on_failure(error)
        return error

    def compact_prefix(self, prefix: bytes) -> None:
        """Compact the keys under `prefix` down the levels: the space of keys deleted
        there is freed now, not when later writes happen to reach their files (they may
        never, for a range no longer written)."""
        self.compact(prefix, compute_prefix_end(prefix))

    def get_property(self, name: bytes) -> bytes | None:
        """A LevelDB property such as b"leveldb.stats" (for benchmarks and metrics)."""
        value: bytes | None = self._db.get_property(name)
        return value

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

    def compact(self, start: bytes | None = None, stop: bytes | None = None) -> None:
        """Compact the key range [start, stop) (all keys by default), so that deleted
        values may leave LevelDB's files (LevelDB may still keep them in a table file
        it did not rewrite)."""
        try:
            self._db.compact_range(start=start, stop=stop)
        except plyvel.Error as e:
            raise self._failed("compacting", e) from e

    def open_view(self) -> SnapshotView:
        """A read-only view of every key as of now (a LevelDB snapshot: O(1), and writes
        go on beside it); close it soon, since it keeps LevelDB from dropping the values
        it can still see."""
        snapshot = self._db.snapshot()
        return SnapshotView(snapshot.get, snapshot.iterator, snapshot.close)


class SnapshotView:
    """A consistent read-only view of a store at one moment, for long reads (a state
    snapshot export) that must not see the commits made while they run."""

    def __init__(self, get: Callable[..., bytes | None], iterator: Callable[..., object],
                 close: Callable[[], None]) -> None:
        self._get = get
        self._iterator = iterator
        self._close = close

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._get(key, verify_checksums=True)
        except plyvel.Error as e:
            raise StorageError(f"reading a snapshot view failed: {get_error_text(e)}") from e

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) under `prefix` in key order, as of the view's moment."""
        try:
            with self._iterator(prefix=prefix, verify_checksums=True) as it:  # type: ignore[attr-defined]
                yield from it
        except plyvel.Error as e:
            raise StorageError(f"reading a snapshot view failed: {get_error_text(e)}") from e

    def close(self) -> None:
        self._close()


def get_error_text(e: Exception) -> str:
    """plyvel's message (it carries bytes) as text."""
    arg = e.args[0] if e.args else e
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _corruption_notes(path: str, limit: int = 3) -> list[str]:
    """What LevelDB's own LOG (rewritten at each open) says about corruption it met:
    it names the damaged file, which LevelDB's error does not."""
    try:
        with open(os.path.join(path, "LOG"), errors="replace") as f:
            lines = [line.split(" ", 2)[-1].strip() for line in f if "Corruption" in line]
    except OSError:
        return []
    return lines[:limit]


def describe_disk(path: str) -> str:
    """'the disk holding PATH (mounted at M, F of T bytes free)', as far as is known."""
    mount = os.path.realpath(path)
    while not os.path.ismount(mount) and mount != os.path.dirname(mount):
        mount = os.path.dirname(mount)
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return f"the disk holding {path} (mounted at {mount})"
    return (f"the disk holding {path} (mounted at {mount}, {usage.free:,} of "
            f"{usage.total:,} bytes free)")


class MemoryStore:
    """A dict-backed store for the deterministic simulation; nothing is durable.

    Its keys are also kept in a sorted list, so that a scan costs a binary search and
    the keys it returns, not a pass over the whole store.
    """

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self.segments: dict[int, bytearray] = {}
        """The history segments of this simulated data directory (storage.history)."""

    def copy(self) -> MemoryStore:
        """Another store holding the same data (simulated nodes start from one genesis)."""
        other = MemoryStore()
        other._data = dict(self._data)
        other._keys = list(self._keys)
        other.segments = {number: bytearray(data) for number, data in self.segments.items()}
        return other

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def iterate(self, prefix: bytes, *, start: bytes | None = None,
                reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        low, high = _scan_bounds(prefix, start, reverse)
        keys = self._keys
        keys = keys[bisect.bisect_left(keys, low):
                    len(keys) if high is None else bisect.bisect_left(keys, high)]
        if reverse:
            keys.reverse()
        # Values are captured now, like the snapshot a LevelDB iterator reads.
        items = [(k, self._data[k]) for k in keys]
        yield from items

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        data, keys = self._data, self._keys
        for key, value in batch.ops.items():
            if value is None:
                if data.pop(key, None) is not None:
                    del keys[bisect.bisect_left(keys, key)]
            else:
                if key not in data:
                    bisect.insort(keys, key)
                data[key] = value

    def close(self) -> None:
        self._data = {}
        self._keys = []
        self.segments = {}

    def open_view(self) -> SnapshotView:
        frozen = dict(self._data)

        def get(key: bytes, **_: object) -> bytes | None:
            return frozen.get(key)

        def iterator(prefix: bytes, **_: object) -> contextlib.AbstractContextManager[
                Iterator[tuple[bytes, bytes]]]:
            return contextlib.nullcontext(iter(sorted(
                (k, v) for k, v in frozen.items() if k.startswith(prefix))))

        return SnapshotView(get, iterator, frozen.clear)
