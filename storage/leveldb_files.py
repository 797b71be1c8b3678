"""Reading LevelDB's own files (CURRENT, the MANIFEST, the log) without opening it.

LevelDB's open replays the log into a table and deletes it, and goes on without a
word when that log is missing or ends inside a record: what an open would drop must
be looked at before it. Read only: it never writes, locks or repairs a file. Formats:
leveldb's doc/log_format.md and db/version_edit.cc (version 1.22).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

BLOCK_SIZE = 32768
HEADER_SIZE = 7  # crc32c (4), length (2), type (1)
ZERO, FULL, FIRST, MIDDLE, LAST = 0, 1, 2, 3, 4
SEQUENCE_SIZE = 8
"""An internal key is the user key and 8 bytes of sequence number and type."""

# VersionEdit field tags (db/version_edit.cc).
COMPARATOR, LOG_NUMBER, NEXT_FILE, LAST_SEQUENCE = 1, 2, 3, 4
COMPACT_POINTER, DELETED_FILE, NEW_FILE, PREV_LOG_NUMBER = 5, 6, 7, 9


class UnreadableFileError(ValueError):
    """Raised when a file is not in the format this reader knows (LevelDB judges it)."""


@dataclass(frozen=True, slots=True)
class TableFile:
    """One live table file of the database, as the MANIFEST lists it."""

    number: int
    """The file number: the table is NNNNNN.ldb."""
    level: int
    """Its level: level-0 tables may overlap each other, deeper ones do not."""
    smallest: bytes
    """The smallest user key it holds."""
    largest: bytes
    """The largest user key it holds."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the current MANIFEST says: the log LevelDB replays and the live tables."""

    log_number: int
    """The log of the writes since the last open (0: none yet)."""
    tables: tuple[TableFile, ...]
    """The live tables, by level and then by smallest key."""


@dataclass(frozen=True, slots=True)
class LogScan:
    """How far a log-format file holds whole records."""

    size: int
    """The file's size in bytes."""
    whole_end: int
    """The offset just after its last whole record (and any padding after it)."""

    @property
    def torn_bytes(self) -> int:
        """Bytes at the end that are not a whole record: a write cut short."""
        return self.size - self.whole_end


def log_name(number: int) -> str:
    return f"{number:06d}.log"


def table_name(path: str, number: int) -> str:
    """The table file's name: NNNNNN.ldb, or NNNNNN.sst as older LevelDB wrote them."""
    legacy = f"{number:06d}.sst"
    return legacy if os.path.exists(os.path.join(path, legacy)) else f"{number:06d}.ldb"


def find_missing_log(path: str) -> str | None:
    """The log the MANIFEST names as current when it is not there (its writes since the
    last open are lost), else None. Read twice, so that a log switch by a process
    writing the database at that moment is not taken for a loss."""
    name = None
    for _ in range(2):
        manifest = read_manifest(path)
        if manifest is None or manifest.log_number == 0:
            return None
        name = log_name(manifest.log_number)
        if os.path.exists(os.path.join(path, name)):
            return None
    return name


def read_records(data: bytes) -> tuple[list[bytes], LogScan]:
    """The whole logical records of a log-format file (a log or a MANIFEST), and how
    far they reach. A record cut short at the end is left out, as LevelDB does."""
    records: list[bytes] = []
    parts: list[bytes] | None = None  # the fragments of a record begun, not finished
    offset = whole_end = 0
    while offset < len(data):
        left_in_block = BLOCK_SIZE - offset % BLOCK_SIZE
        if left_in_block < HEADER_SIZE or _is_zero_header(data, offset):
            offset += left_in_block  # a block's zero trailer, or zeros a writer left
        elif len(data) - offset < HEADER_SIZE:
            break  # a header cut short
        else:
            length, kind = struct.unpack_from("<HB", data, offset + 4)
            end = offset + HEADER_SIZE + length
            if end > len(data):
                break  # a fragment cut short
            parts = _add_fragment(records, parts, kind, data[offset + HEADER_SIZE:end])
            offset = end
        if parts is None:
            whole_end = min(offset, len(data))
    return records, LogScan(len(data), whole_end)


def _is_zero_header(data: bytes, offset: int) -> bool:
    return data[offset + 4:offset + HEADER_SIZE] == b"\x00\x00\x00"


def _add_fragment(records: list[bytes], parts: list[bytes] | None, kind: int,
                  body: bytes) -> list[bytes] | None:
    """Add one physical fragment; the fragments of the record still open, if any."""
    if kind == FULL and parts is None:
        records.append(body)
        return None
    if kind == FIRST and parts is None:
        return [body]
    if kind == MIDDLE and parts is not None:
        return [*parts, body]
    if kind == LAST and parts is not None:
        records.append(b"".join([*parts, body]))
        return None
    raise UnreadableFileError(f"log fragment of type {kind} out of place")


def scan_log(path: str) -> LogScan:
    """How far the log file at `path` holds whole records."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return read_records(data)[1]
    except UnreadableFileError:
        return LogScan(len(data), len(data))  # damaged inside: LevelDB's checksums judge


def read_manifest(path: str) -> Manifest | None:
    """The current MANIFEST of the database directory `path`, or None when there is
    none or it is not in the format this reader knows (LevelDB then judges it)."""
    try:
        with open(os.path.join(path, "CURRENT")) as f:
            name = f.read().strip()
        if not name.startswith("MANIFEST-") or os.sep in name:
            return None
        with open(os.path.join(path, name), "rb") as f:
            records, _ = read_records(f.read())
        return _apply_edits(records)
    except (OSError, UnicodeDecodeError, UnreadableFileError):
        return None


def _apply_edits(records: list[bytes]) -> Manifest:
    log_number = 0
    live: dict[tuple[int, int], TableFile] = {}
    for record in records:
        for tag, fields in _decode_edit(record):
            if tag == LOG_NUMBER:
                log_number = fields[0]
            elif tag == DELETED_FILE:
                live.pop((fields[0], fields[1]), None)
            elif tag == NEW_FILE:
                level, number, smallest, largest = fields
                live[(level, number)] = TableFile(number, level, smallest[:-SEQUENCE_SIZE],
                                                  largest[:-SEQUENCE_SIZE])
    tables = sorted(live.values(), key=lambda t: (t.level, t.smallest, t.number))
    return Manifest(log_number, tuple(tables))


# The fields of each tag: "v" a varint, "s" a length-prefixed string.
_FIELDS = {COMPARATOR: "s", LOG_NUMBER: "v", NEXT_FILE: "v", LAST_SEQUENCE: "v",
           COMPACT_POINTER: "vs", DELETED_FILE: "vv", NEW_FILE: "vvvss", PREV_LOG_NUMBER: "v"}


def _decode_edit(record: bytes) -> list[tuple[int, list[Any]]]:
    """The (tag, fields) of one VersionEdit; NEW_FILE's size is dropped."""
    edits = []
    pos = 0
    while pos < len(record):
        tag, pos = _varint(record, pos)
        if tag not in _FIELDS:
            raise UnreadableFileError(f"MANIFEST field tag {tag} is unknown")
        fields: list[Any] = []
        for kind in _FIELDS[tag]:
            value, pos = _varint(record, pos)
            if kind == "s":
                if pos + value > len(record):
                    raise UnreadableFileError("MANIFEST string runs past its record")
                fields.append(record[pos:pos + value])
                pos += value
            else:
                fields.append(value)
        if tag == NEW_FILE:
            del fields[2]
        edits.append((tag, fields))
    return edits


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise UnreadableFileError("a varint runs past its record")
