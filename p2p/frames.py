"""Wire frames: canonical msgpack `[type_tag, request_id, payload]` in binary WebSocket
messages, with a size limit per message type and a payload shape per type.

Pure code: no I/O. Decoding raises only FrameError subclasses, never anything else,
whatever bytes a peer sends. Consensus and state-sync payloads (TX, PROPOSAL, VOTE,
blocks, certificates, light blocks, manifests, chunks) are opaque bytes here: p2p
never decodes chain objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from chain import codec
from chain.crypto import compute_hash
from chain.errors import MalformedError, TooLargeError
from chain.snapshot import MAX_CHUNK_BYTES, MAX_LIGHT_BLOCK_BYTES, MAX_MANIFEST_BYTES
from p2p.errors import MalformedFrameError, OversizedFrameError, UnknownMessageTypeError

PROTOCOL_VERSION = 2  # 2: AUTH signs the TLS channel binding

KiB = 1024
MiB = 1024 * KiB

# Largest frame of any type; the WebSocket layer refuses bigger messages outright.
MAX_FRAME_BYTES = 16 * MiB
# Longest ERROR text and most addresses in a PEERS answer.
MAX_ERROR_TEXT = 256
MAX_PEER_ADDRESSES = 64
MAX_ADDRESS_TEXT = 262
MAX_BLOCKS_PER_RESPONSE = 256
MAX_VOTES_PER_RESPONSE = 4096
MAX_BLOCKS_PER_REQUEST = 256
MAX_TXS_PER_BATCH = 4096
MAX_SNAPSHOT_OFFERS = 16
MAX_LIGHT_BLOCKS_PER_RESPONSE = 64
MAX_PRIVATE_PAYLOAD_BYTES = 1 * MiB
"""Largest private record payload a holder keeps and sends (a licence PDF, say)."""


class MessageType(IntEnum):
    """Type tag of a frame. Values are part of the protocol: never renumber."""

    HELLO = 1  # handshake: identity and chain
    AUTH = 2  # handshake: signature over both nonces
    ERROR = 3  # refusal of a handshake or a request: [code, message]
    TX = 10  # gossip: encoded transaction
    PROPOSAL = 11  # gossip: encoded signed proposal
    VOTE = 12  # gossip: encoded signed vote
    STATUS = 13  # direct (or answer to GET_STATUS): [height, round]
    TXS = 15  # gossip: [tx_bytes, ...], a batch of transactions (high-rate relay)
    GET_STATUS = 14  # request: nil
    GET_BLOCKS = 20  # request: [from_height, count]
    BLOCKS = 21  # answer: [[block_bytes, cert_bytes], ...]
    GET_VOTES = 22  # request: height
    VOTES = 23  # answer: [vote_bytes, ...]
    PEERS_REQUEST = 30  # request: nil
    PEERS = 31  # answer: ["host:port", ...]
    PING = 40  # request: 8-byte nonce
    PONG = 41  # answer: the same nonce
    GET_SNAPSHOTS = 50  # request: nil (state sync, docs/state-sync.md)
    SNAPSHOTS = 51  # answer: [[height, manifest_hash, chunk_count], ...]
    GET_LIGHT_BLOCKS = 52  # request: [from_height, to_height]
    LIGHT_BLOCKS = 53  # answer: [light_block_bytes, ...]
    GET_MANIFEST = 54  # request: [height, manifest_hash]
    MANIFEST = 55  # answer: manifest_bytes
    GET_CHUNK = 56  # request: [height, manifest_hash, index]
    CHUNK = 57  # answer: chunk_bytes
    GET_PRIVATE = 60  # request: [namespace, key, holder_key, box_key, signature] (privacy.md)
    PRIVATE = 61  # answer: [salt, payload] of a private record sealed to box_key


# Relayed to other peers when the handler accepts them; de-duplicated.
GOSSIP_TYPES = frozenset({MessageType.TX, MessageType.TXS, MessageType.PROPOSAL,
                          MessageType.VOTE})
# Sent with a non-zero request id; the peer answers with the same id.
REQUEST_TYPES = frozenset({
    MessageType.GET_STATUS, MessageType.GET_BLOCKS, MessageType.GET_VOTES,
    MessageType.PEERS_REQUEST, MessageType.PING, MessageType.GET_SNAPSHOTS,
    MessageType.GET_LIGHT_BLOCKS, MessageType.GET_MANIFEST, MessageType.GET_CHUNK,
    MessageType.GET_PRIVATE,
})
# Sent with the request id of the request they answer. ERROR may answer any request.
RESPONSE_TYPES = frozenset({
    MessageType.STATUS, MessageType.BLOCKS, MessageType.VOTES, MessageType.PEERS,
    MessageType.PONG, MessageType.ERROR, MessageType.SNAPSHOTS, MessageType.LIGHT_BLOCKS,
    MessageType.MANIFEST, MessageType.CHUNK, MessageType.PRIVATE,
})
# The answer type of each request (or ERROR).
EXPECTED_RESPONSE = {
    MessageType.GET_STATUS: MessageType.STATUS,
    MessageType.GET_BLOCKS: MessageType.BLOCKS,
    MessageType.GET_VOTES: MessageType.VOTES,
    MessageType.PEERS_REQUEST: MessageType.PEERS,
    MessageType.PING: MessageType.PONG,
    MessageType.GET_SNAPSHOTS: MessageType.SNAPSHOTS,
    MessageType.GET_LIGHT_BLOCKS: MessageType.LIGHT_BLOCKS,
    MessageType.GET_MANIFEST: MessageType.MANIFEST,
    MessageType.GET_CHUNK: MessageType.CHUNK,
    MessageType.GET_PRIVATE: MessageType.PRIVATE,
}
assert set(EXPECTED_RESPONSE) == REQUEST_TYPES
# Sent with request id 0 after the handshake, outside gossip: delivered, never relayed.
DIRECT_TYPES = frozenset({MessageType.STATUS, MessageType.PEERS})
HANDSHAKE_TYPES = frozenset({MessageType.HELLO, MessageType.AUTH, MessageType.ERROR})

# Largest whole frame (in bytes) per type.
MAX_FRAME_SIZE: dict[MessageType, int] = {
    MessageType.HELLO: 1 * KiB,
    MessageType.AUTH: 256,
    MessageType.ERROR: 1 * KiB,
    MessageType.TX: 128 * KiB,
    MessageType.TXS: 8 * MiB,
    MessageType.PROPOSAL: MAX_FRAME_BYTES,
    MessageType.VOTE: 4 * KiB,
    MessageType.STATUS: 64,
    MessageType.GET_STATUS: 64,
    MessageType.GET_BLOCKS: 64,
    MessageType.BLOCKS: MAX_FRAME_BYTES,
    MessageType.GET_VOTES: 64,
    MessageType.VOTES: 4 * MiB,
    MessageType.PEERS_REQUEST: 64,
    MessageType.PEERS: 32 * KiB,
    MessageType.PING: 64,
    MessageType.PONG: 64,
    MessageType.GET_SNAPSHOTS: 64,
    MessageType.SNAPSHOTS: 4 * KiB,
    MessageType.GET_LIGHT_BLOCKS: 64,
    MessageType.LIGHT_BLOCKS: MAX_FRAME_BYTES,
    MessageType.GET_MANIFEST: 128,
    MessageType.MANIFEST: MAX_MANIFEST_BYTES + 1 * KiB,
    MessageType.GET_CHUNK: 128,
    # A bigger CHUNK is refused before its payload is parsed: the syncing node holds at
    # most this per peer it fetches from.
    MessageType.CHUNK: MAX_CHUNK_BYTES + 1 * KiB,
    MessageType.GET_PRIVATE: 512,
    MessageType.PRIVATE: MAX_PRIVATE_PAYLOAD_BYTES + 1 * KiB,
}
assert set(MAX_FRAME_SIZE) == set(MessageType)

MAX_REQUEST_ID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Frame:
    """One protocol message as it travels in one binary WebSocket message."""

    msg_type: MessageType
    """What the payload is; fixes its shape and size limit."""
    request_id: int
    """0 for gossip and direct messages; the id of the request for requests and answers."""
    payload: Any
    """The decoded payload, whose shape `validate_payload` checks per type."""


# ---------------------------------------------------------------- payloads


def _expect_nil(value: Any, what: str) -> None:
    if value is not None:
        raise MalformedError(f"{what}: expected nil")


def _bytes_check(what: str, size: int | None = None) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        codec.expect_bytes(value, what, size=size)
    return check


def _expect_list(value: Any, what: str, max_items: int) -> tuple[Any, ...]:
    if not isinstance(value, tuple) or len(value) > max_items:
        raise MalformedError(f"{what}: expected an array of at most {max_items} items")
    return value


def _check_hello(value: Any) -> None:
    # [version, chain_id, genesis_hash, node_key, nonce, listen_address, is_validator]
    items = codec.expect_tuple(value, 7, "HELLO")
    codec.expect_int(items[0], "HELLO version", hi=2**16)
    codec.expect_str(items[1], "HELLO chain_id", max_len=64)
    codec.expect_bytes(items[2], "HELLO genesis_hash", size=32)
    codec.expect_bytes(items[3], "HELLO node_key", size=32)
    codec.expect_bytes(items[4], "HELLO nonce", size=32)
    codec.expect_str(items[5], "HELLO listen_address", max_len=MAX_ADDRESS_TEXT)
    if not isinstance(items[6], bool):
        raise MalformedError("HELLO is_validator: expected a boolean")


def _check_error(value: Any) -> None:
    items = codec.expect_tuple(value, 2, "ERROR")
    codec.expect_str(items[0], "ERROR code", max_len=64)
    codec.expect_str(items[1], "ERROR message", max_len=MAX_ERROR_TEXT)


def _check_status(value: Any) -> None:
    items = codec.expect_tuple(value, 2, "STATUS")
    codec.expect_int(items[0], "STATUS height")
    codec.expect_int(items[1], "STATUS round", hi=2**32 - 1)


def _check_get_blocks(value: Any) -> None:
    items = codec.expect_tuple(value, 2, "GET_BLOCKS")
    codec.expect_int(items[0], "GET_BLOCKS from_height")
    codec.expect_int(items[1], "GET_BLOCKS count", lo=1, hi=MAX_BLOCKS_PER_REQUEST)


def _check_blocks(value: Any) -> None:
    for item in _expect_list(value, "BLOCKS", MAX_BLOCKS_PER_RESPONSE):
        pair = codec.expect_tuple(item, 2, "BLOCKS item")
        codec.expect_bytes(pair[0], "BLOCKS block")
        codec.expect_bytes(pair[1], "BLOCKS certificate")


def _check_get_votes(value: Any) -> None:
    codec.expect_int(value, "GET_VOTES height")


def _check_votes(value: Any) -> None:
    for item in _expect_list(value, "VOTES", MAX_VOTES_PER_RESPONSE):
        codec.expect_bytes(item, "VOTES vote")


def _check_txs(value: Any) -> None:
    for item in _expect_list(value, "TXS", MAX_TXS_PER_BATCH):
        codec.expect_bytes(item, "TXS tx")


def _check_peers(value: Any) -> None:
    for item in _expect_list(value, "PEERS", MAX_PEER_ADDRESSES):
        codec.expect_str(item, "PEERS address", max_len=MAX_ADDRESS_TEXT)


def _check_snapshots(value: Any) -> None:
    for item in _expect_list(value, "SNAPSHOTS", MAX_SNAPSHOT_OFFERS):
        items = codec.expect_tuple(item, 3, "SNAPSHOTS offer")
        codec.expect_int(items[0], "SNAPSHOTS height", lo=1)
        codec.expect_bytes(items[1], "SNAPSHOTS manifest_hash", size=32)
        codec.expect_int(items[2], "SNAPSHOTS chunk_count", lo=1, hi=65_536)


def _check_get_light_blocks(value: Any) -> None:
    items = codec.expect_tuple(value, 2, "GET_LIGHT_BLOCKS")
    low = codec.expect_int(items[0], "GET_LIGHT_BLOCKS from_height", lo=1)
    codec.expect_int(items[1], "GET_LIGHT_BLOCKS to_height", lo=low)


def _check_light_blocks(value: Any) -> None:
    for item in _expect_list(value, "LIGHT_BLOCKS", MAX_LIGHT_BLOCKS_PER_RESPONSE):
        codec.expect_bytes(item, "LIGHT_BLOCKS light block", max_size=MAX_LIGHT_BLOCK_BYTES)


def _check_get_manifest(value: Any) -> None:
    items = codec.expect_tuple(value, 2, "GET_MANIFEST")
    codec.expect_int(items[0], "GET_MANIFEST height", lo=1)
    codec.expect_bytes(items[1], "GET_MANIFEST manifest_hash", size=32)


def _check_get_chunk(value: Any) -> None:
    items = codec.expect_tuple(value, 3, "GET_CHUNK")
    codec.expect_int(items[0], "GET_CHUNK height", lo=1)
    codec.expect_bytes(items[1], "GET_CHUNK manifest_hash", size=32)
    codec.expect_int(items[2], "GET_CHUNK index", hi=65_535)


def _check_get_private(value: Any) -> None:
    items = codec.expect_tuple(value, 5, "GET_PRIVATE")
    codec.expect_str(items[0], "GET_PRIVATE namespace", max_len=32)
    codec.expect_str(items[1], "GET_PRIVATE key", max_len=128)
    codec.expect_bytes(items[2], "GET_PRIVATE holder_key", size=32)
    codec.expect_bytes(items[3], "GET_PRIVATE box_key", size=32)
    codec.expect_bytes(items[4], "GET_PRIVATE signature", size=64)


_PAYLOAD_CHECKS: dict[MessageType, Callable[[Any], None]] = {
    MessageType.HELLO: _check_hello,
    MessageType.AUTH: _bytes_check("AUTH signature", size=64),
    MessageType.ERROR: _check_error,
    MessageType.TX: _bytes_check("TX"),
    MessageType.TXS: _check_txs,
    MessageType.PROPOSAL: _bytes_check("PROPOSAL"),
    MessageType.VOTE: _bytes_check("VOTE"),
    MessageType.STATUS: _check_status,
    MessageType.GET_STATUS: lambda v: _expect_nil(v, "GET_STATUS"),
    MessageType.GET_BLOCKS: _check_get_blocks,
    MessageType.BLOCKS: _check_blocks,
    MessageType.GET_VOTES: _check_get_votes,
    MessageType.VOTES: _check_votes,
    MessageType.PEERS_REQUEST: lambda v: _expect_nil(v, "PEERS_REQUEST"),
    MessageType.PEERS: _check_peers,
    MessageType.PING: _bytes_check("PING nonce", size=8),
    MessageType.PONG: _bytes_check("PONG nonce", size=8),
    MessageType.GET_SNAPSHOTS: lambda v: _expect_nil(v, "GET_SNAPSHOTS"),
    MessageType.SNAPSHOTS: _check_snapshots,
    MessageType.GET_LIGHT_BLOCKS: _check_get_light_blocks,
    MessageType.LIGHT_BLOCKS: _check_light_blocks,
    MessageType.GET_MANIFEST: _check_get_manifest,
    MessageType.MANIFEST: _bytes_check("MANIFEST"),
    MessageType.GET_CHUNK: _check_get_chunk,
    MessageType.CHUNK: _bytes_check("CHUNK"),
    MessageType.GET_PRIVATE: _check_get_private,
    MessageType.PRIVATE: _bytes_check("PRIVATE"),
}
assert set(_PAYLOAD_CHECKS) == set(MessageType)


def validate_payload(msg_type: MessageType, payload: Any) -> None:
    """Raise MalformedFrameError unless `payload` has the shape `msg_type` requires.

    Payloads are compared in decoded form: arrays as tuples (lists are accepted too
    when we build a frame ourselves, see `encode_frame`).
    """
    try:
        _PAYLOAD_CHECKS[msg_type](payload)
    except MalformedError as e:
        raise MalformedFrameError(f"{msg_type.name} payload: {e.message}") from e


def _as_tuples(value: Any) -> Any:
    """Lists to tuples, recursively, so that our own payloads check like decoded ones."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(item) for item in value)
    return value


# ---------------------------------------------------------------- frames


def encode_frame(msg_type: MessageType, request_id: int, payload: Any) -> bytes:
    """The bytes of one frame. Raises MalformedFrameError or OversizedFrameError when
    the payload breaks its type's rules: building a bad frame is a bug of the caller."""
    validate_payload(msg_type, _as_tuples(payload))
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise MalformedFrameError(f"request id {request_id} out of range")
    data = codec.encode([int(msg_type), request_id, payload])
    if len(data) > MAX_FRAME_SIZE[msg_type]:
        raise OversizedFrameError(
            f"{msg_type.name} frame of {len(data)} bytes exceeds its limit of "
            f"{MAX_FRAME_SIZE[msg_type]} bytes")
    return data


def peek_message_type(data: bytes) -> int:
    """The type tag of a frame, read from its first two bytes without decoding it.

    A canonical frame starts with 0x93 (array of 3) and a positive fixint tag; this
    lets the size limit of the type be checked before the payload is parsed.
    """
    if len(data) < 2 or data[0] != 0x93 or data[1] >= 0x80:
        raise MalformedFrameError("frame does not start with an array of 3 and a type tag")
    return data[1]


def decode_frame(data: bytes) -> Frame:
    """Decode and check one frame received from a peer.

    Raises UnknownMessageTypeError, OversizedFrameError (before parsing the payload)
    or MalformedFrameError; nothing else.
    """
    if len(data) > MAX_FRAME_BYTES:
        raise OversizedFrameError(
            f"frame of {len(data)} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")
    tag = peek_message_type(data)
    try:
        msg_type = MessageType(tag)
    except ValueError:
        raise UnknownMessageTypeError(f"unknown message type tag {tag}") from None
    limit = MAX_FRAME_SIZE[msg_type]
    if len(data) > limit:
        raise OversizedFrameError(
            f"{msg_type.name} frame of {len(data)} bytes exceeds its limit of {limit} bytes")
    try:
        value = codec.decode(bytes(data), max_size=limit)
    except TooLargeError as e:  # pragma: no cover - checked above
        raise OversizedFrameError(e.message) from e
    except MalformedError as e:
        raise MalformedFrameError(f"{msg_type.name} frame: {e.message}") from e
    if not isinstance(value, tuple) or len(value) != 3:
        raise MalformedFrameError("frame is not an array of 3")
    _, request_id, payload = value
    if isinstance(request_id, bool) or not isinstance(request_id, int) \
            or not 0 <= request_id <= MAX_REQUEST_ID:
        raise MalformedFrameError("frame request id is not an integer in [0, 2^32)")
    validate_payload(msg_type, payload)
    return Frame(msg_type=msg_type, request_id=request_id, payload=payload)


def compute_gossip_id(data: bytes) -> bytes:
    """The de-duplication key of a gossip frame: sha256 of its bytes.

    `data` is the frame as received or as we encoded it (request id 0). Frames are
    canonical (`decode_frame` refuses any other encoding), so one message has one
    encoding and one id, and the bytes received are hashed without encoding again.
    """
    return compute_hash(data)
