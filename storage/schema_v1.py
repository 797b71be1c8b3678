"""The keys of storage schema 1 that schema 2 moved out of LevelDB, for the migration.

Schema 1 kept block headers, certificates, tx records and a tx hash index in LevelDB;
schema 2 keeps the first three in history segments and indexes txs by a short hash
prefix. Only storage.migration reads these keys; nothing may write them.
"""

from __future__ import annotations

from storage.schema import encode_height

VERSION = 1
BLOCK_HEADER = b"\x10"
CERTIFICATE = b"\x12"
TX_HASH = b"\x20"
TX_RECORD = b"\x21"
TABLES = (BLOCK_HEADER, CERTIFICATE, TX_HASH, TX_RECORD)


def block_header_key(height: int) -> bytes:
    return BLOCK_HEADER + encode_height(height)


def certificate_key(height: int) -> bytes:
    return CERTIFICATE + encode_height(height)


def tx_hash_key(tx_hash: bytes) -> bytes:
    return TX_HASH + tx_hash


def tx_record_prefix(height: int) -> bytes:
    return TX_RECORD + encode_height(height)
