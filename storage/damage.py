"""Locating damage in a LevelDB data directory.

`find_file_damage` looks, before any open, for what an open would drop without a
word: the log it replays missing, or ending inside a record. `find_damage` reads
every table of the schema in key order with checksums verified and names, for each
table that cannot be read to its end, the last key read, its height and the table
files holding what follows: where a restore or resync must start. Neither writes a
key (opening LevelDB may still turn its log into a table, as every open does).
"""

from __future__ import annotations

import os

from storage import schema
from storage.errors import DataDirLockedError, StorageError
from storage.kv import PlyvelStore, compute_prefix_end, get_error_text
from storage.leveldb_files import (
    LogScan,
    Manifest,
    find_missing_log,
    read_manifest,
    scan_log,
    table_name,
)

TABLES = {
    schema.META: "meta", schema.BLOCK_HASH: "block hash index",
    schema.VALIDATOR_SET: "validator sets", schema.BLOCK_LOCATION: "block locations",
    schema.PROVEN_HEADER: "proven headers",
    schema.TX_INDEX: "tx index", schema.STATE: "state",
    schema.TREE_BUCKET: "state-tree buckets", schema.TREE_BUCKET_HASH: "state-tree bucket hashes",
    schema.SIGN_STATE: "sign state", schema.EVIDENCE: "evidence",
    schema.EVIDENCE_HASH: "evidence index",
}
BY_HEIGHT = (schema.VALIDATOR_SET, schema.BLOCK_LOCATION, schema.PROVEN_HEADER)
HISTORY_HEADER = b"history:header"
HISTORY_CERTIFICATE = b"history:certificate"
HISTORY_TX_RECORD = b"history:tx_record"
HISTORY_PARTS = {
    HISTORY_HEADER: "block headers (history segments)",
    HISTORY_CERTIFICATE: "commit certificates (history segments)",
    HISTORY_TX_RECORD: "tx records (history segments)",
}
"""The kinds of record in the history segments (storage.history), named like tables by
the audit; not LevelDB prefixes."""
LOCKS_FILE = "/proc/locks"
"""The kernel's table of file locks (Linux)."""


def describe_key(key: bytes) -> str:
    """A stored key as a person reads it: its table, and the height where it has one."""
    prefix = key[:1]
    name = TABLES.get(prefix, f"unknown table 0x{prefix.hex()}")
    if prefix in BY_HEIGHT and len(key) >= 1 + schema.HEIGHT_SIZE:
        return f"{name}, height {schema.decode_height(key[1:1 + schema.HEIGHT_SIZE])}"
    return f"{name}, key {key.hex()}"


def find_file_damage(path: str) -> list[str]:
    """One line per log an open would drop writes of without a word (empty when none).

    Call it before opening the database: the open rewrites the log, and with it the
    evidence. The database must not be in use (DataDirLockedError otherwise)."""
    _validate_not_in_use(path)
    manifest = read_manifest(path)
    if manifest is None:
        return []  # no MANIFEST this reader knows: LevelDB's open will judge it
    missing = find_missing_log(path)
    found = [f"the log {missing} is missing: the MANIFEST names it as the log of the "
             "writes since the database was last opened, and an open would go on without "
             "them: restore the data directory (docs/reliability.md, \"Storage faults\")"
             ] if missing else []
    for name in _replayed_logs(path, manifest):
        scan = scan_log(os.path.join(path, name))
        if scan.torn_bytes:
            found.append(_describe_torn_log(name, scan))
    return found


def _replayed_logs(path: str, manifest: Manifest) -> list[str]:
    """The logs an open replays: those numbered from the MANIFEST's log on."""
    names = []
    for name in sorted(os.listdir(path)):
        stem, dot, extension = name.partition(".")
        if dot and extension == "log" and stem.isdigit() and int(stem) >= manifest.log_number:
            names.append(name)
    return names


def _describe_torn_log(name: str, scan: LogScan) -> str:
    return (f"the log {name} ends inside a record: its last {scan.torn_bytes:,} of "
            f"{scan.size:,} bytes are not a whole write, and an open would drop them and "
            "whatever followed them. A crash or power cut while writing leaves this (start "
            "the node once: it drops that last unacknowledged write; then audit again); "
            "otherwise the file was cut short: restore the data directory")


def _validate_not_in_use(path: str) -> None:
    """Raise DataDirLockedError when a process holds LevelDB's LOCK of `path`.

    Read from the kernel's lock table, not by taking the lock: opening and closing the
    LOCK file would drop the lock LevelDB holds if this process has the database open
    (closing any descriptor of a file drops the process's POSIX locks on it). Where
    there is no such table (not Linux), nothing is checked."""
    try:
        info = os.stat(os.path.join(path, "LOCK"))
        with open(LOCKS_FILE) as f:
            table = f.read()
    except OSError:
        return
    lock = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    if any(lock in line.split() for line in table.splitlines()):
        raise DataDirLockedError(
            f"the database in {path} is in use by another process; stop the node using "
            "this data directory, or audit a snapshot of it")


def find_damage(path: str) -> list[str]:
    """One line per unreadable table (empty when everything reads); or the reason the
    database does not open at all."""
    try:
        kv = PlyvelStore(path)
    except StorageError as e:
        return [e.message]
    manifest = read_manifest(path)
    found = []
    try:
        for prefix, name in TABLES.items():
            last: bytes | None = None
            try:
                for key, _ in kv.iterate(prefix):
                    last = key
                # When every data block from where a scan begins fails its checksum,
                # the scan ends at once without an error (plyvel reports the
                # iterator's status only after a step, not after its first seek): a
                # table file damaged throughout looks empty. Point reads of keys the
                # MANIFEST says its files hold read those blocks again, and raise.
                for probe in _probe_keys(manifest, prefix, last):
                    kv.get(probe)
            except StorageError as e:
                where = f"after {describe_key(last)}" if last is not None else "from its start"
                files = _files_holding(path, manifest, prefix, last)
                cause = e.__cause__
                text = get_error_text(cause) if isinstance(cause, Exception) else e.message
                found.append(f"{name} (0x{prefix.hex()}) unreadable {where}{files}: {text}")
    finally:
        kv.close()
    return found


def _probe_keys(manifest: Manifest | None, prefix: bytes, last: bytes | None) -> list[bytes]:
    """Keys of table `prefix` whose point read must open each file holding its keys:
    where its scan began and ended, and the smallest and largest key of every table
    file in its range (keys that file holds, so its filter cannot skip the read)."""
    high = compute_prefix_end(prefix)
    keys = {prefix} if last is None else {prefix, last + b"\x00"}
    for table in manifest.tables if manifest is not None else ():
        for key in (table.smallest, table.largest):
            if key.startswith(prefix) and (high is None or key < high):
                keys.add(key)
    return sorted(keys)


def _files_holding(path: str, manifest: Manifest | None, prefix: bytes,
                   last: bytes | None) -> str:
    """' (in NNNNNN.ldb)': the table files that may hold the keys of table `prefix` after
    `last`, one of which failed its checksum (LevelDB's message names no file)."""
    if manifest is None:
        return ""
    high = compute_prefix_end(prefix)
    names: list[str] = []
    levels_seen: set[int] = set()
    for table in manifest.tables:  # by level, then by smallest key
        if (table.largest <= last) if last is not None else (table.largest < prefix):
            continue
        if (high is not None and table.smallest >= high) or table.level in levels_seen:
            continue
        if table.level > 0:  # a deeper level's tables do not overlap: the first one holds it
            levels_seen.add(table.level)
        names.append(table_name(path, table.number))
    if not names:
        return ""
    return f" (in {names[0]})" if len(names) == 1 else f" (in one of {', '.join(names)})"
