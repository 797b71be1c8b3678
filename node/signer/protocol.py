"""The signer's wire format: length-prefixed canonical msgpack requests and responses.

Pure encoding and decoding; no sockets. Every frame is a 4-byte big-endian length and
then that many bytes of canonical msgpack (chain/codec.py). A frame longer than
MAX_FRAME_BYTES, or one that does not decode to a request of the shape below, is
refused with a typed error and never reaches the key. See docs/signer.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from chain import codec
from chain.crypto import DOMAIN_PROPOSAL, DOMAIN_VOTE, HASH_SIZE, Hash32, signing_bytes
from chain.errors import MalformedError
from chain.vote import MAX_ROUND, Proposal, Vote

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 4096
"""Largest frame either side accepts; a sign request is about 150 bytes."""
MAX_CHAIN_ID_CHARS = 64
FRAME_HEADER = struct.Struct(">I")


class SignerError(Exception):
    """Raised when the signer refuses a request; `code` is stable, sent on the wire."""

    code = "signer_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequestError(SignerError):
    """Raised when a frame is not a well-formed request of this protocol version."""

    code = "malformed_request"


class OversizedRequestError(SignerError):
    """Raised when a frame announces more than MAX_FRAME_BYTES."""

    code = "oversized_request"


class WrongChainError(SignerError):
    """Raised when a request names another chain id than the signer's."""

    code = "wrong_chain_id"


class DoubleSignError(SignerError):
    """Raised when a request would sign a second, different message at a (height, round,
    step) already signed."""

    code = "double_sign"


class RegressionError(SignerError):
    """Raised when a request is below the last (height, round, step) signed."""

    code = "height_regression"


class KeyUnavailableError(SignerError):
    """Raised when the key back end (the token) fails to sign."""

    code = "key_unavailable"


class SignerUnavailableError(SignerError):
    """Raised on the node's side when no signer is connected."""

    code = "signer_unavailable"


ERROR_TYPES: dict[str, type[SignerError]] = {cls.code: cls for cls in (
    SignerError, MalformedRequestError, OversizedRequestError, WrongChainError,
    DoubleSignError, RegressionError, KeyUnavailableError, SignerUnavailableError)}


class SignStep(IntEnum):
    """The consensus step of a signature, in the order they are signed in a round."""

    PROPOSAL = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True, slots=True)
class SignRequest:
    """What the node asks to be signed: one proposal or vote."""

    chain_id: str
    """The chain the message is for; must be the signer's."""
    step: SignStep
    """Proposal, prevote or precommit."""
    height: int
    """Height of the message."""
    round: int
    """Round of the message."""
    pol_round: int
    """A proposal's proof-of-lock round (-1 for none, and always -1 for a vote)."""
    block_hash: Hash32
    """The block signed for; empty for a nil vote (never for a proposal)."""

    @property
    def position(self) -> tuple[int, int, int]:
        """(height, round, step): signatures are made in increasing position only."""
        return (self.height, self.round, int(self.step))

    def get_signing_bytes(self) -> bytes:
        """The exact bytes the validator signs for this message (as chain/vote.py)."""
        if self.step is SignStep.PROPOSAL:
            return signing_bytes(DOMAIN_PROPOSAL, self.chain_id, Proposal.payload(
                self.height, self.round, self.pol_round, self.block_hash))
        return signing_bytes(DOMAIN_VOTE, self.chain_id, Vote.payload(
            int(self.step) - 1, self.height, self.round, self.block_hash))

    def to_value(self) -> list[Any]:
        return [self.chain_id, int(self.step), self.height, self.round, self.pol_round,
                self.block_hash]

    @classmethod
    def from_value(cls, value: Any) -> SignRequest:
        chain_id, step, height, round_, pol_round, block_hash = codec.expect_tuple(
            value, 6, "sign request")
        if not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS:
            raise MalformedError("sign request chain_id: expected a string of 1-64 chars")
        step = SignStep(codec.expect_int(step, "sign request step", lo=1, hi=3))
        round_ = codec.expect_int(round_, "sign request round", hi=MAX_ROUND)
        pol_round = codec.expect_int(pol_round, "sign request pol_round", lo=-1,
                                     hi=MAX_ROUND)
        block_hash = codec.expect_bytes(block_hash, "sign request block_hash",
                                        max_size=HASH_SIZE)
        if len(block_hash) not in (0, HASH_SIZE):
            raise MalformedError("sign request block_hash: expected 32 bytes or empty")
        if step is SignStep.PROPOSAL:
            if len(block_hash) != HASH_SIZE or pol_round >= round_:
                raise MalformedError("sign request: a proposal names a block and a "
                                     "pol_round below its round")
        elif pol_round != -1:
            raise MalformedError("sign request: a vote has pol_round -1")
        return cls(chain_id, step, codec.expect_int(height, "sign request height", lo=1),
                   round_, pol_round, Hash32(block_hash))

    @classmethod
    def of_message(cls, chain_id: str, message: Proposal | Vote) -> SignRequest:
        """The request that signs `message` (whose signature field is ignored)."""
        if isinstance(message, Proposal):
            return cls(chain_id, SignStep.PROPOSAL, message.height, message.round,
                       message.pol_round, message.block.hash)
        return cls(chain_id, SignStep(int(message.kind) + 1), message.height, message.round,
                   -1, message.block_hash)


# Request kinds.
GET_PUBLIC_KEY = "public_key"
SIGN = "sign"


@dataclass(frozen=True, slots=True)
class Request:
    """One request frame: [version, request_id, kind, body]."""

    request_id: int
    """Chosen by the node; echoed in the response."""
    kind: str
    """GET_PUBLIC_KEY (body None) or SIGN (body a SignRequest)."""
    sign: SignRequest | None = None

    def encode(self) -> bytes:
        body = self.sign.to_value() if self.sign is not None else None
        return encode_frame([PROTOCOL_VERSION, self.request_id, self.kind, body])

    @classmethod
    def decode(cls, payload: bytes) -> Request:
        """Raises MalformedRequestError for anything but a request of this version."""
        try:
            version, request_id, kind, body = codec.expect_tuple(codec.decode(payload), 4,
                                                                 "request")
            if version != PROTOCOL_VERSION:
                raise MalformedError(f"protocol version {version!r}; this signer speaks "
                                     f"{PROTOCOL_VERSION}")
            request_id = codec.expect_int(request_id, "request id")
            if kind == GET_PUBLIC_KEY and body is None:
                return cls(request_id, kind)
            if kind == SIGN:
                return cls(request_id, kind, SignRequest.from_value(body))
            raise MalformedError(f"unknown request kind {kind!r}")
        except (MalformedError, ValueError, TypeError) as e:
            raise MalformedRequestError(str(e)) from e


@dataclass(frozen=True, slots=True)
class Response:
    """One response frame: [version, request_id, "ok", result] or
    [version, request_id, "error", code, message]."""

    request_id: int
    result: bytes = b""
    """The public key or the 64-byte signature."""
    error: SignerError | None = None

    def encode(self) -> bytes:
        if self.error is not None:
            return encode_frame([PROTOCOL_VERSION, self.request_id, "error", self.error.code,
                                 self.error.message])
        return encode_frame([PROTOCOL_VERSION, self.request_id, "ok", self.result])

    @classmethod
    def decode(cls, payload: bytes) -> Response:
        try:
            value = codec.decode(payload)
            if not isinstance(value, list | tuple) or len(value) not in (4, 5) \
                    or value[0] != PROTOCOL_VERSION:
                raise MalformedError("not a signer response")
            request_id = codec.expect_int(value[1], "response id")
            if value[2] == "ok" and len(value) == 4:
                return cls(request_id, codec.expect_bytes(value[3], "result", max_size=64))
            if value[2] == "error" and len(value) == 5 and isinstance(value[3], str) \
                    and isinstance(value[4], str):
                return cls(request_id, error=ERROR_TYPES.get(value[3], SignerError)(value[4]))
            raise MalformedError("not a signer response")
        except (MalformedError, ValueError, TypeError) as e:
            raise MalformedRequestError(f"the signer's response: {e}") from e


def encode_frame(value: Any) -> bytes:
    payload = codec.encode(value)
    return FRAME_HEADER.pack(len(payload)) + payload


def decode_frame_length(header: bytes) -> int:
    """The payload length a frame header announces; raises OversizedRequestError."""
    (length,) = FRAME_HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise OversizedRequestError(f"a frame of {length} bytes; at most {MAX_FRAME_BYTES}")
    return int(length)
