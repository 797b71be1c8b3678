"""The history store: final blocks, certificates and tx records in append-only segments.

Segment NNNNNN.seg holds the heights N*SEGMENT_HEIGHTS+1 ... (N+1)*SEGMENT_HEIGHTS as
frames [length u32][crc32 u32][payload]; where each block starts is kept by the caller
(ChainStore, as sequential LevelDB keys). Bytes once synced are never rewritten: a
segment only grows at its end, loses a tail that no committed head names, or goes
whole. It never decides what is committed: the LevelDB head does (docs/storage.md).
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from storage.errors import CorruptionError, StorageError

SEGMENT_HEIGHTS = 1024
"""Heights per segment: pruning frees whole segments, so this is its granularity; at
2,000 transfers a block a segment is about 400 MiB."""
SEGMENT_SUFFIX = ".seg"
FRAME = struct.Struct(">II")
"""Each frame's head: payload length, CRC-32 of the payload."""
LOCATION = struct.Struct(">QII")
"""A block's place in its segment: offset of its first frame, bytes of all its frames,
number of tx records."""
OPEN_FILES = 32
"""Segment files kept open for reading (the newest are read most)."""


class HistoryDamagedError(CorruptionError):
    """Raised when a segment file is shorter than its index says, or a frame in it fails
    its checksum or its framing: the file was cut short or altered on disk."""

    code = "history_damaged"

    def __init__(self, message: str, *, file: str, height: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        """The damaged segment file."""
        self.height = height
        """The height whose frames are damaged, where known."""


@dataclass(frozen=True, slots=True)
class BlockLocation:
    """Where a block's frames lie: header, certificate, then one frame per tx record."""

    height: int
    offset: int
    """Offset of the header frame in the block's segment."""
    length: int
    """Bytes of all the block's frames."""
    tx_count: int

    @property
    def end(self) -> int:
        return self.offset + self.length

    def encode(self) -> bytes:
        return LOCATION.pack(self.offset, self.length, self.tx_count)

    @classmethod
    def decode(cls, height: int, data: bytes) -> BlockLocation:
        if len(data) != LOCATION.size:
            raise StorageError(f"the stored location of block {height} is malformed")
        return cls(height, *LOCATION.unpack(data))


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block's stored bytes as appended: the caller decodes them."""

    header: bytes
    certificate: bytes
    tx_records: tuple[bytes, ...]


def get_segment(height: int) -> int:
    """The number of the segment holding `height` (1 ...)."""
    return (height - 1) // SEGMENT_HEIGHTS


def get_segment_last_height(segment: int) -> int:
    return (segment + 1) * SEGMENT_HEIGHTS


def segment_name(segment: int) -> str:
    return f"{segment:06d}{SEGMENT_SUFFIX}"


def encode_frames(payloads: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """The frames of `payloads` back to back, and each frame's offset in them."""
    parts: list[bytes] = []
    offsets: list[int] = []
    position = 0
    for payload in payloads:
        offsets.append(position)
        parts.append(FRAME.pack(len(payload), zlib.crc32(payload)))
        parts.append(payload)
        position += FRAME.size + len(payload)
    return b"".join(parts), offsets


class HistoryStore:
    """The segment files of one data directory (`directory` None: kept in memory, for the
    simulation and the golden image)."""

    def __init__(self, directory: str | None, *,
                 memory: dict[int, bytearray] | None = None) -> None:
        """`memory`: the segments of a simulated data directory (kept by its caller
        across a simulated reopen); without a directory and without it, a new one."""
        self.directory = directory
        self._memory: dict[int, bytearray] = {} if memory is None else memory
        self._sizes: dict[int, int] = {}
        self._readers: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    def close(self) -> None:
        with self._lock:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()

    def path_of(self, segment: int) -> str:
        if self.directory is None:
            return f"memory:{segment_name(segment)}"
        return os.path.join(self.directory, segment_name(segment))

    # -- listing --------------------------------------------------------------

    def list_segments(self) -> list[int]:
        """The numbers of the segments present, in order."""
        if self.directory is None:
            return sorted(self._memory)
        numbers = []
        for name in os.listdir(self.directory):
            stem, suffix = name[:-len(SEGMENT_SUFFIX)], name[-len(SEGMENT_SUFFIX):]
            if suffix == SEGMENT_SUFFIX and stem.isdigit():
                numbers.append(int(stem))
        return sorted(numbers)

    def get_size(self, segment: int) -> int:
        """Bytes in `segment` (0 when it is absent)."""
        if self.directory is None:
            return len(self._memory.get(segment, b""))
        try:
            return os.stat(self.path_of(segment)).st_size
        except FileNotFoundError:
            return 0

    def get_disk_bytes(self) -> int:
        return sum(self.get_size(segment) for segment in self.list_segments())

    # -- writing --------------------------------------------------------------

    def append_block(self, height: int, header: bytes, certificate: bytes,
                     tx_records: Sequence[bytes], *,
                     offset: int) -> tuple[BlockLocation, list[int]]:
        """Write block `height`'s frames at `offset` of its segment (the end of the
        previous block there, or 0) and sync them; return its location and each tx
        record frame's offset in the segment. Whatever lay at or beyond `offset` (a block
        whose head never landed) is cut off first."""
        data, offsets = encode_frames([header, certificate, *tx_records])
        segment = get_segment(height)
        self._write_at(segment, offset, data)
        location = BlockLocation(height, offset, len(data), len(tx_records))
        return location, [offset + relative for relative in offsets[2:]]

    def _write_at(self, segment: int, offset: int, data: bytes) -> None:
        if self.directory is None:
            buffer = self._memory.setdefault(segment, bytearray())
            del buffer[offset:]
            buffer.extend(data)
            return
        path = self.path_of(segment)
        created = not os.path.exists(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, offset)
            os.pwrite(fd, data, offset)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's name must survive a power cut too
            self._sync_directory()

    def truncate(self, segment: int, size: int) -> None:
        """Cut `segment` to `size` bytes (a tail no committed head names)."""
        if self.directory is None:
            del self._memory[segment][size:]
            return
        fd = os.open(self.path_of(segment), os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def copy_segment_to(self, segment: int, target: HistoryStore) -> None:
        """Copy `segment` as it is now into `target` (a snapshot's history), synced."""
        assert self.directory is not None and target.directory is not None
        with open(self.path_of(segment), "rb") as src, \
                open(target.path_of(segment), "wb") as dst:
            shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        target._sync_directory()

    def delete_segment(self, segment: int) -> None:
        with self._lock:
            fd = self._readers.pop(segment, None)
            if fd is not None:
                os.close(fd)
        if self.directory is None:
            self._memory.pop(segment, None)
            return
        try:
            os.unlink(self.path_of(segment))
        except FileNotFoundError:
            return
        self._sync_directory()

    def _sync_directory(self) -> None:
        assert self.directory is not None
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading --------------------------------------------------------------

    def read_block(self, location: BlockLocation) -> StoredBlock:
        """The block's frames, each checksum verified."""
        segment = get_segment(location.height)
        data = self._read(segment, location.offset, location.length, location.height)
        payloads = list(self._split_frames(data, segment, location))
        if len(payloads) != location.tx_count + 2:
            raise self._damaged(segment, f"block {location.height} holds {len(payloads)} "
                                f"frames, its index says {location.tx_count + 2}",
                                location.height)
        return StoredBlock(payloads[0], payloads[1], tuple(payloads[2:]))

    def read_frame(self, height: int, offset: int, *, limit: int | None = None) -> bytes:
        """The payload of the frame at `offset` of `height`'s segment, checksum verified;
        `limit`: the end of the block, which the frame must not pass."""
        segment = get_segment(height)
        head = self._read(segment, offset, FRAME.size, height)
        length, crc = FRAME.unpack(head)
        if limit is not None and offset + FRAME.size + length > limit:
            raise self._damaged(segment, f"a frame of block {height} at offset {offset} "
                                "runs past the block's end", height)
        payload = self._read(segment, offset + FRAME.size, length, height)
        if zlib.crc32(payload) != crc:
            raise self._damaged(segment, f"the frame of block {height} at offset {offset} "
                                "fails its checksum", height)
        return payload

    def _split_frames(self, data: bytes, segment: int,
                      location: BlockLocation) -> Iterator[bytes]:
        position = 0
        while position < len(data):
            if position + FRAME.size > len(data):
                raise self._damaged(segment, f"block {location.height} ends inside a frame",
                                    location.height)
            length, crc = FRAME.unpack_from(data, position)
            start = position + FRAME.size
            payload = data[start:start + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                raise self._damaged(
                    segment, f"the frame of block {location.height} at offset "
                    f"{location.offset + position} fails its checksum", location.height)
            yield payload
            position = start + length

    def _read(self, segment: int, offset: int, length: int, height: int) -> bytes:
        if self.directory is None:
            data = bytes(self._memory.get(segment, b"")[offset:offset + length])
        else:
            data = os.pread(self._reader(segment, height), length, offset)
        if len(data) != length:
            raise self._damaged(segment, f"it ends at {offset + len(data):,} bytes, inside "
                                f"block {height}: the file was cut short", height)
        return data

    def _reader(self, segment: int, height: int) -> int:
        with self._lock:
            fd = self._readers.get(segment)
            if fd is not None:
                self._readers.move_to_end(segment)
                return fd
            try:
                fd = os.open(self.path_of(segment), os.O_RDONLY)
            except FileNotFoundError as e:
                raise self._damaged(segment, f"it is missing, and holds block {height}",
                                    height) from e
            self._readers[segment] = fd
            while len(self._readers) > OPEN_FILES:
                os.close(self._readers.popitem(last=False)[1])
            return fd

    def _damaged(self, segment: int, what: str, height: int | None) -> HistoryDamagedError:
        path = self.path_of(segment)
        return HistoryDamagedError(
            f"the history segment {path} is damaged: {what}; restore the data directory "
            "from a backup or resync from peers (docs/reliability.md, \"Storage faults\")",
            file=path, height=height)
