"""The signer's record of the last message it signed, and the never-sign-twice rule.

`SignGuard.sign` decides, persists (fdatasync) and only then answers: a signature never
leaves the signer before the record that forbids a conflicting one is on disk. The
record survives any crash of the signer process or the machine; losing the file (a new
disk) is the one way to lose the guard (docs/signer.md).

The file holds two fixed slots written in turn, each [magic, sequence, length, record,
SHA-256 of the rest]: a write overwrites the older slot in place and is made durable
with one fdatasync (no rename, no directory sync: about 2 ms instead of 16 ms on the
test machine's disk). A write torn by a crash leaves the other slot, the previous
record, whose successor was never answered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chain import codec
from chain.errors import MalformedError
from node.signer.protocol import (
    DoubleSignError,
    RegressionError,
    SignRequest,
    WrongChainError,
)

STATE_FORMAT = "govchain-signer-state/1"
log = logging.getLogger("govchain.signer")


@dataclass(frozen=True, slots=True)
class SignRecord:
    """The last message signed, with its signature (so that the same request is
    answered with the same bytes)."""

    request: SignRequest
    signature: bytes

    def encode(self) -> bytes:
        return codec.encode([STATE_FORMAT, self.request.to_value(), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> SignRecord:
        fmt, request, signature = codec.expect_tuple(codec.decode(data), 3, "sign state")
        if fmt != STATE_FORMAT:
            raise MalformedError(f"sign state format {fmt!r}, expected {STATE_FORMAT}")
        return cls(SignRequest.from_value(request),
                   codec.expect_bytes(signature, "sign state signature", size=64))


class SignStateFileError(Exception):
    """Raised when the sign state file exists but cannot be read: the signer does not
    start (starting without it could sign twice)."""


SLOT_BYTES = 512
SLOT_MAGIC = b"GCSS"
_SLOT_HEADER = struct.Struct(">4sQH")
_DIGEST_BYTES = 32


def encode_slot(sequence: int, record: bytes) -> bytes:
    body = _SLOT_HEADER.pack(SLOT_MAGIC, sequence, len(record)) + record
    slot = body + hashlib.sha256(body).digest()
    assert len(slot) <= SLOT_BYTES, "a sign record fits a slot"
    return slot.ljust(SLOT_BYTES, b"\0")


def decode_slot(slot: bytes) -> tuple[int, bytes] | None:
    """(sequence, record) of an intact slot; None for an empty (all-zero) one. Raises
    MalformedError for a torn or damaged one."""
    if not slot.strip(b"\0"):
        return None
    if len(slot) != SLOT_BYTES:
        raise MalformedError("short slot")
    magic, sequence, length = _SLOT_HEADER.unpack_from(slot)
    end = _SLOT_HEADER.size + length
    if magic != SLOT_MAGIC or end + _DIGEST_BYTES > SLOT_BYTES \
            or hashlib.sha256(slot[:end]).digest() != slot[end:end + _DIGEST_BYTES]:
        raise MalformedError("slot checksum mismatch")
    return sequence, slot[_SLOT_HEADER.size:end]


class SignGuard:
    """The chain id, the persisted last signature, and the rule over both."""

    def __init__(self, path: Path, chain_id: str) -> None:
        self.path = path
        self.chain_id = chain_id
        self._sequence = 0
        self.last: SignRecord | None = self._load()
        self._mutex = threading.Lock()
        self._fd = self._open()

    def _load(self) -> SignRecord | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        slots: list[tuple[int, bytes] | None] = []
        torn = 0
        for i in range(2):
            try:
                slots.append(decode_slot(data[i * SLOT_BYTES:(i + 1) * SLOT_BYTES]))
            except MalformedError:
                torn += 1
        intact = [slot for slot in slots if slot is not None]
        if len(data) != 2 * SLOT_BYTES or torn > 1 or (torn and not intact):
            raise SignStateFileError(f"sign state {self.path} is damaged; restore it from "
                                     "a backup, never delete it")
        if torn:
            # A write cut short by a crash: its signature was never sent.
            log.warning("sign state %s: the newer slot is torn; using the older one",
                        self.path)
        if not intact:
            return None
        self._sequence, data = max(intact)
        try:
            record = SignRecord.decode(data)
        except (MalformedError, ValueError) as e:
            raise SignStateFileError(f"sign state {self.path} is damaged ({e}); restore it "
                                     "from a backup, never delete it") from e
        if record.request.chain_id != self.chain_id:
            raise SignStateFileError(f"sign state {self.path} is of chain "
                                     f"{record.request.chain_id!r}, not {self.chain_id!r}")
        return record

    def _open(self) -> int:
        """The state file, created (two empty slots, synced with its directory) if new."""
        if not self.path.exists():
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, bytes(2 * SLOT_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return os.open(self.path, os.O_RDWR)

    def close(self) -> None:
        """Close the state file (once; later calls do nothing)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def check(self, request: SignRequest) -> bytes | None:
        """Raise if `request` may not be signed; return the kept signature when it is
        the very message signed last (a repeat), else None (a new message)."""
        if request.chain_id != self.chain_id:
            raise WrongChainError(f"this signer signs for chain {self.chain_id!r}, not "
                                  f"{request.chain_id!r}")
        last = self.last
        if last is None:
            return None
        if request.position == last.request.position:
            if request == last.request:
                return last.signature
            raise DoubleSignError(
                f"already signed {request.step.name.lower()} at height {request.height} "
                f"round {request.round} for another message")
        if request.position < last.request.position:
            raise RegressionError(
                f"height {request.height} round {request.round} "
                f"{request.step.name.lower()} is below the last signed, height "
                f"{last.request.height} round {last.request.round} "
                f"{last.request.step.name.lower()}")
        return None

    def sign(self, request: SignRequest, sign_bytes: Callable[[bytes], bytes]) -> bytes:
        """Check `request`, persist it, then sign it with `sign_bytes`; one call at a time
        (from any thread)."""
        with self._mutex:
            return self._sign(request, sign_bytes)

    def _sign(self, request: SignRequest, sign_bytes: Callable[[bytes], bytes]) -> bytes:
        kept = self.check(request)
        if kept is not None:
            return kept
        message = request.get_signing_bytes()
        # The signature is stored with the record, so it is made first; it stays in
        # this process until the record is durable.
        signature = sign_bytes(message)
        record = SignRecord(request, signature)
        self._write(record.encode())
        self.last = record
        return signature

    def _write(self, record: bytes) -> None:
        """Overwrite the older slot with `record` and make it durable."""
        sequence = self._sequence + 1
        os.pwrite(self._fd, encode_slot(sequence, record), (sequence % 2) * SLOT_BYTES)
        os.fdatasync(self._fd)
        self._sequence = sequence
