"""Locating damage in a LevelDB data directory that LevelDB refuses to read.

`find_damage` reads every table of the schema in key order with checksums verified
and names, for each table that cannot be read to its end, the last key read and the
height it belongs to: where a restore or resync must start. It never writes a key
(opening LevelDB may still turn its log into a table, as every open does).
"""

from __future__ import annotations

from storage import schema
from storage.errors import StorageError
from storage.kv import PlyvelStore, get_error_text

TABLES = {
    schema.META: "meta", schema.BLOCK_HEADER: "block headers",
    schema.BLOCK_HASH: "block hash index", schema.CERTIFICATE: "commit certificates",
    schema.VALIDATOR_SET: "validator sets", schema.TX_HASH: "tx hash index",
    schema.TX_RECORD: "tx records", schema.STATE: "state",
    schema.TREE_BUCKET: "state-tree buckets", schema.TREE_BUCKET_HASH: "state-tree bucket hashes",
    schema.SIGN_STATE: "sign state", schema.EVIDENCE: "evidence",
    schema.EVIDENCE_HASH: "evidence index",
}
BY_HEIGHT = (schema.BLOCK_HEADER, schema.CERTIFICATE, schema.VALIDATOR_SET, schema.TX_RECORD)


def describe_key(key: bytes) -> str:
    """A stored key as a person reads it: its table, and the height where it has one."""
    prefix = key[:1]
    name = TABLES.get(prefix, f"unknown table 0x{prefix.hex()}")
    if prefix in BY_HEIGHT and len(key) >= 1 + schema.HEIGHT_SIZE:
        return f"{name}, height {schema.decode_height(key[1:1 + schema.HEIGHT_SIZE])}"
    return f"{name}, key {key.hex()}"


def find_damage(path: str) -> list[str]:
    """One line per unreadable table (empty when everything reads); or the reason the
    database does not open at all."""
    try:
        kv = PlyvelStore(path)
    except StorageError as e:
        return [e.message]
    found = []
    try:
        for prefix, name in TABLES.items():
            last: bytes | None = None
            try:
                for key, _ in kv.iterate(prefix):
                    last = key
            except StorageError as e:
                where = f"after {describe_key(last)}" if last is not None else "from its start"
                cause = e.__cause__
                text = get_error_text(cause) if isinstance(cause, Exception) else e.message
                found.append(f"{name} (0x{prefix.hex()}) unreadable {where}: {text}")
    finally:
        kv.close()
    return found
