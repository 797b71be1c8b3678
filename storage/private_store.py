"""A holder node's store of private record payloads and its read log, beside the chain.

Its own LevelDB (HOME/private/, beside the chain database HOME/data/), never the
consensus state: nothing here is replicated, hashed into a state root, served by state
sync or copied by a chain snapshot. Each payload is sealed
with a SecretBox (XSalsa20-Poly1305, pynacl) under a random key of its own, kept
under a separate key, so an erasure deletes both and what may linger in LevelDB's
files until compaction is ciphertext without its key. The read log is append-only:
entries are numbered from 0 and indexed by record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import nacl.secret
import nacl.utils

from chain import codec
from storage.kv import PlyvelStore, WriteBatch

PAYLOAD_PREFIX = b"payload/v1/"
"""payload/v1/<namespace>/<key> -> SecretBox(record key).encrypt([salt, payload])."""
RECORD_KEY_PREFIX = b"boxkey/v1/"
"""boxkey/v1/<namespace>/<key> -> the record's 32-byte SecretBox key."""
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
        self._db = PlyvelStore(path)
        value = self._db.get(READ_LOG_NEXT_KEY)
        self._next_seq = 0 if value is None else int.from_bytes(value, "big")

    def close(self) -> None:
        self._db.close()

    # ---------------------------------------------------------------- payloads

    def has_payload(self, namespace: str, key: str) -> bool:
        return self._db.get(RECORD_KEY_PREFIX + _record_id(namespace, key)) is not None

    def put_payload(self, namespace: str, key: str, salt: bytes, payload: bytes) -> None:
        record_id = _record_id(namespace, key)
        box_key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
        sealed = nacl.secret.SecretBox(box_key).encrypt(codec.encode([salt, payload]))
        batch = WriteBatch()
        batch.put(PAYLOAD_PREFIX + record_id, bytes(sealed))
        batch.put(RECORD_KEY_PREFIX + record_id, box_key)
        self._db.write(batch)

    def get_payload(self, namespace: str, key: str) -> tuple[bytes, bytes] | None:
        """(salt, payload), or None when this node does not hold it (or it was erased)."""
        record_id = _record_id(namespace, key)
        box_key = self._db.get(RECORD_KEY_PREFIX + record_id)
        sealed = self._db.get(PAYLOAD_PREFIX + record_id)
        if box_key is None or sealed is None:
            return None
        salt, payload = codec.decode(nacl.secret.SecretBox(box_key).decrypt(sealed))
        return bytes(salt), bytes(payload)

    def erase_payload(self, namespace: str, key: str) -> bool:
        """Delete the payload and its key, then compact them out of LevelDB's files;
        True if there was something to erase."""
        record_id = _record_id(namespace, key)
        existed = self._db.get(RECORD_KEY_PREFIX + record_id) is not None
        batch = WriteBatch()
        batch.delete(PAYLOAD_PREFIX + record_id)
        batch.delete(RECORD_KEY_PREFIX + record_id)
        self._db.write(batch)
        self._db.compact()
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
