"""A holder node's store of private record payloads and its read log, beside the chain.

Its own LevelDB (HOME/private/payloads/, beside the chain database HOME/data/), never
the consensus state: nothing here is replicated, hashed into a state root, served by
state sync or copied by a chain snapshot. Each payload is sealed with a SecretBox
(XSalsa20-Poly1305, pynacl) under a random key of its own. The keys are not in LevelDB
(LevelDB keeps an overwritten or deleted value in its table files until a compaction
rewrites them): the keys of the records written together are kept in one key file
(HOME/private/keys/<id>.keys, one 64-byte slot per record: a hash of the record's name
and its key), so that a batch of records costs one synced LevelDB write and one fsynced
key file, not two disk flushes per record. An erasure rewrites the record's key file
without its key (the slot zeroed; the file unlinked once every slot is) and deletes the
ciphertext, so that what LevelDB's files may keep of the ciphertext cannot be opened.
The read log is append-only: entries are numbered from 0 and indexed by record.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nacl.secret
import nacl.utils

from chain import codec
from storage.kv import PlyvelStore, WriteBatch

PAYLOAD_PREFIX = b"payload/v1/"
"""payload/v1/<namespace>/<key> -> [key file id, slot, SecretBox(record key).encrypt([salt,
payload])]: the record's key is slot `slot` of HOME/private/keys/<key file id hex>.keys."""
READ_LOG_PREFIX = b"readlog/v1/"
"""readlog/v1/<seq 8 BE> -> a read-log entry (chain.commitment.encode_read_entry form)."""
READ_INDEX_PREFIX = b"readidx/v1/"
"""readidx/v1/<namespace>/<key>\\x00<seq 8 BE> -> empty: the entries of one record."""
READ_LOG_NEXT_KEY = b"readlog-next/v1"
"""readlog-next/v1 -> the sequence number of the next entry."""
KEY_SLOT_BYTES = 64
"""A key file slot: SHA-256 of the record's name (32 bytes), then its SecretBox key (32);
all zeros once erased."""
MAX_BATCH_RECORDS = 1024
"""Most records one put_payloads call takes (one key file of at most 64 KiB)."""
_EMPTY_SLOT = bytes(KEY_SLOT_BYTES)


def _record_id(namespace: str, key: str) -> bytes:
    assert "/" not in namespace and "\x00" not in key
    return namespace.encode() + b"/" + key.encode()


def _record_hash(namespace: str, key: str) -> bytes:
    return hashlib.sha256(_record_id(namespace, key)).digest()


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """Replace `path` by `data` atomically, durable when this returns."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    _fsync_directory(path.parent)


class PrivateStore:
    """Encrypted payloads and the read log of one holder node (safe across threads)."""

    def __init__(self, path: str) -> None:
        self._keys = Path(path) / "keys"
        self._keys.mkdir(parents=True, exist_ok=True)
        for partial in self._keys.glob("*.partial"):
            partial.unlink()  # a key file a crash interrupted: its records are not held
        self._db = PlyvelStore(str(Path(path) / "payloads"))
        self._lock = threading.Lock()
        """Held by every payload write and erasure: each rewrites key files."""
        value = self._db.get(READ_LOG_NEXT_KEY)
        self._next_seq = 0 if value is None else int.from_bytes(value, "big")

    def close(self) -> None:
        self._db.close()

    # ---------------------------------------------------------------- payloads

    def _key_file(self, file_id: bytes) -> Path:
        return self._keys / (file_id.hex() + ".keys")

    def _get_entry(self, namespace: str, key: str
                   ) -> tuple[bytes, int, bytes, bytes | None] | None:
        """(key file id, slot, sealed payload, box key or None once gone), or None."""
        value = self._db.get(PAYLOAD_PREFIX + _record_id(namespace, key))
        if value is None:
            return None
        file_id, slot, sealed = codec.decode(value)
        try:
            with open(self._key_file(file_id), "rb") as f:
                f.seek(slot * KEY_SLOT_BYTES)
                entry = f.read(KEY_SLOT_BYTES)
        except FileNotFoundError:
            entry = b""  # written to LevelDB, but a crash came before its key file
        box_key = (entry[32:] if len(entry) == KEY_SLOT_BYTES
                   and entry[:32] == _record_hash(namespace, key) else None)
        return bytes(file_id), int(slot), bytes(sealed), box_key

    def get_box_key(self, namespace: str, key: str) -> bytes | None:
        """The record's SecretBox key, or None when this node does not hold it."""
        entry = self._get_entry(namespace, key)
        return None if entry is None else entry[3]

    def has_payload(self, namespace: str, key: str) -> bool:
        return self.get_box_key(namespace, key) is not None

    def put_payload(self, namespace: str, key: str, salt: bytes, payload: bytes) -> None:
        self.put_payloads([(namespace, key, salt, payload)])

    def put_payloads(self, records: Sequence[tuple[str, str, bytes, bytes]]) -> int:
        """Seal and keep (namespace, key, salt, payload) records, durable when this returns:
        one synced LevelDB write, then one new key file fsynced with its directory (the
        keys last: a payload counts as held once both are written). Records held already
        are left as they are; returns how many were written."""
        assert len(records) <= MAX_BATCH_RECORDS, "split the records into batches"
        with self._lock:
            fresh: dict[bytes, tuple[str, str, bytes, bytes]] = {}
            for record in records:
                if not self.has_payload(record[0], record[1]):
                    fresh[_record_id(record[0], record[1])] = record
            if not fresh:
                return 0
            file_id = nacl.utils.random(16)
            slots, batch = [], WriteBatch()
            for slot, (namespace, key, salt, payload) in enumerate(fresh.values()):
                box_key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
                sealed = nacl.secret.SecretBox(box_key).encrypt(codec.encode([salt, payload]))
                batch.put(PAYLOAD_PREFIX + _record_id(namespace, key),
                          codec.encode([file_id, slot, bytes(sealed)]))
                slots.append(_record_hash(namespace, key) + box_key)
            self._db.write(batch)
            _write_durably(self._key_file(file_id), b"".join(slots))
            return len(fresh)

    def get_payload(self, namespace: str, key: str) -> tuple[bytes, bytes] | None:
        """(salt, payload), or None when this node does not hold it (or it was erased)."""
        entry = self._get_entry(namespace, key)
        if entry is None or entry[3] is None:
            return None
        salt, payload = codec.decode(nacl.secret.SecretBox(entry[3]).decrypt(entry[2]))
        return bytes(salt), bytes(payload)

    def erase_payload(self, namespace: str, key: str) -> bool:
        """Remove the key from its key file (rewritten durably, or unlinked once it holds no
        key), then delete and compact the ciphertext; True if there was a key to erase."""
        with self._lock:
            entry = self._get_entry(namespace, key)
            if entry is None:
                return False
            file_id, slot, _sealed, box_key = entry
            if box_key is not None:
                path = self._key_file(file_id)
                slots = bytearray(path.read_bytes())
                start = slot * KEY_SLOT_BYTES
                slots[start:start + KEY_SLOT_BYTES] = _EMPTY_SLOT
                if slots.count(0) == len(slots):
                    path.unlink()
                    _fsync_directory(self._keys)
                else:
                    _write_durably(path, bytes(slots))
            db_key = PAYLOAD_PREFIX + _record_id(namespace, key)
            batch = WriteBatch()
            batch.delete(db_key)
            self._db.write(batch)
            self._db.compact(db_key, db_key + b"\x00")
            return box_key is not None

    # ---------------------------------------------------------------- read log

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append_read(self, namespace: str, key: str, entry: dict[str, Any]) -> int:
        """Append `entry` (its "seq" is set here) and return its sequence number."""
        seq = self._next_seq
        data = codec.encode({**entry, "seq": seq})
        batch = WriteBatch()
        batch.put(READ_LOG_PREFIX + seq.to_bytes(8, "big"), data)
        batch.put(READ_INDEX_PREFIX + _record_id(namespace, key) + b"\x00"
                  + seq.to_bytes(8, "big"), b"")
        batch.put(READ_LOG_NEXT_KEY, (seq + 1).to_bytes(8, "big"))
        self._db.write(batch)
        self._next_seq = seq + 1
        return seq

    def get_read(self, seq: int) -> dict[str, Any] | None:
        data = self._db.get(READ_LOG_PREFIX + seq.to_bytes(8, "big"))
        return None if data is None else dict(codec.decode(data))

    def iterate_record_reads(self, namespace: str, key: str, start_seq: int = 0
                             ) -> Iterator[int]:
        """The sequence numbers of the record's entries, from `start_seq`, in order."""
        prefix = READ_INDEX_PREFIX + _record_id(namespace, key) + b"\x00"
        for index_key, _ in self._db.iterate(prefix, start=prefix + start_seq.to_bytes(8, "big")):
            yield int.from_bytes(index_key[len(prefix):], "big")
