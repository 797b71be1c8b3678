"""Reading LevelDB's write-ahead log (the `NNNNNN.log` file) to cut it at a record.

The storage-fault tests tear the last write of a killed node: they need to know where
each logical record (one write batch) starts and ends, and which block height a batch
made the head. Format: leveldb/doc/log_format.md and write_batch.cc. Test code only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

BLOCK_SIZE = 32768
HEADER_SIZE = 7  # crc32c (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
TAG_DELETE, TAG_PUT = 0, 1


@dataclass(frozen=True)
class LogRecord:
    start: int
    """Offset of the record's first physical header in the file."""
    end: int
    """Offset just after its last fragment."""
    payload: bytes
    """The write batch: sequence (8), count (4), then the operations."""


def read_log_records(path: Path) -> list[LogRecord]:
    """The complete logical records of a LevelDB log file, in order."""
    data = path.read_bytes()
    records: list[LogRecord] = []
    offset = 0
    start = 0
    parts: list[bytes] = []
    while offset + HEADER_SIZE <= len(data):
        left_in_block = BLOCK_SIZE - offset % BLOCK_SIZE
        if left_in_block < HEADER_SIZE:
            offset += left_in_block  # zero trailer
            continue
        length, kind = struct.unpack_from("<HB", data, offset + 4)
        if kind == 0 and length == 0:
            break  # preallocated zeros: the end of what was written
        body = data[offset + HEADER_SIZE:offset + HEADER_SIZE + length]
        if len(body) < length:
            break  # a torn fragment at the end
        if kind in (FULL, FIRST):
            start, parts = offset, []
        parts.append(body)
        offset += HEADER_SIZE + length
        if kind in (FULL, LAST):
            records.append(LogRecord(start, offset, b"".join(parts)))
    return records


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def batch_puts(payload: bytes) -> dict[bytes, bytes]:
    """The keys a write batch puts, with their values (deletes are left out)."""
    (count,) = struct.unpack_from("<I", payload, 8)
    pos = 12
    puts: dict[bytes, bytes] = {}
    for _ in range(count):
        tag = payload[pos]
        pos += 1
        size, pos = _varint(payload, pos)
        key = payload[pos:pos + size]
        pos += size
        if tag == TAG_PUT:
            size, pos = _varint(payload, pos)
            puts[key] = payload[pos:pos + size]
            pos += size
    return puts
