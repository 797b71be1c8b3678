"""A holder node's store of private record payloads and its read log, beside the chain.

Its own LevelDB (HOME/private/payloads/, beside the chain database HOME/data/), never
the consensus state: nothing here is replicated, hashed into a state root, served by
state sync or copied by a chain snapshot. Each payload is sealed with a SecretBox
(XSalsa20-Poly1305, pynacl) under a random key of its own, kept in a file of its own
(HOME/private/keys/): an erasure unlinks the key file and deletes the ciphertext, so
what LevelDB's files may keep of the ciphertext until a compaction rewrites them
cannot be opened (LevelDB keeps an overwritten value in its table files until then,
which is why the key is not in LevelDB). The read log is append-only: entries are
numbered from 0 and indexed by record.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.secret
import nacl.utils

from chain import codec
from storage.kv import PlyvelStore, WriteBatch

PAYLOAD_PREFIX = b"payload/v1/"
"""payload/v1/<namespace>/<key> -> SecretBox(record key).encrypt([salt, payload])."""
READ_LOG_PREFIX = b"readlog/v1/"
"""readlog/v1/<seq 8 BE> -> a read-log entry (chain.commitment.encode_read_entry form)."""
READ_INDEX_PREFIX = b"readidx/v1/"
"""readidx/v1/<namespace>/<key>\\x00<seq 8 BE> -> empty: the entries of one record."""
READ_LOG_NEXT_KEY = b"readlog-next/v1"
"""readlog-next/v1 -> the sequence number of the next entry."""


def _record_id(namespace: str, key: str) -> bytes:
    assert "/" not in namespace and "\x00" not in key
    return namespace.encode() + b"/" + key.encode()


class PrivateStore:
    """Encrypted payloads and the read log of one holder node."""

    def __init__(self, path: str) -> None:
        self._keys = Path(path) / "keys"
        self._keys.mkdir(parents=True, exist_ok=True)
        self._db = PlyvelStore(str(Path(path) / "payloads"))
        value = self._db.get(READ_LOG_NEXT_KEY)
        self._next_seq = 0 if value is None else int.from_bytes(value, "big")

    def close(self) -> None:
        self._db.close()

    # ---------------------------------------------------------------- payloads

    def get_key_path(self, namespace: str, key: str) -> Path:
        """The file of the record's SecretBox key (named by a hash of the record id)."""
        return self._keys / (hashlib.sha256(_record_id(namespace, key)).hexdigest() + ".key")

    def has_payload(self, namespace: str, key: str) -> bool:
        return self.get_key_path(namespace, key).exists()

    def put_payload(self, namespace: str, key: str, salt: bytes, payload: bytes) -> None:
        box_key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
        sealed = nacl.secret.SecretBox(box_key).encrypt(codec.encode([salt, payload]))
        path = self.get_key_path(namespace, key)
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as f:
            f.write(box_key)
            f.flush()
            os.fsync(f.fileno())
        batch = WriteBatch()
        batch.put(PAYLOAD_PREFIX + _record_id(namespace, key), bytes(sealed))
        self._db.write(batch)
        os.replace(partial, path)  # the key last: a payload counts as held once both are

    def get_payload(self, namespace: str, key: str) -> tuple[bytes, bytes] | None:
        """(salt, payload), or None when this node does not hold it (or it was erased)."""
        try:
            box_key = self.get_key_path(namespace, key).read_bytes()
        except FileNotFoundError:
            return None
        sealed = self._db.get(PAYLOAD_PREFIX + _record_id(namespace, key))
        if sealed is None:
            return None
        salt, payload = codec.decode(nacl.secret.SecretBox(box_key).decrypt(sealed))
        return bytes(salt), bytes(payload)

    def erase_payload(self, namespace: str, key: str) -> bool:
        """Delete the key file and the ciphertext; True if there was something to erase."""
        path = self.get_key_path(namespace, key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        db_key = PAYLOAD_PREFIX + _record_id(namespace, key)
        batch = WriteBatch()
        batch.delete(db_key)
        self._db.write(batch)
        self._db.compact(db_key, db_key + b"\x00")
        return existed

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
