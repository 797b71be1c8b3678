"""Frames: round trips, per-type size limits, and typed errors for bad bytes."""

from __future__ import annotations

import contextlib
import hashlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain import codec
from p2p.errors import (
    FrameError,
    MalformedFrameError,
    OversizedFrameError,
    UnknownMessageTypeError,
)
from p2p.frames import (
    MAX_FRAME_SIZE,
    MessageType,
    compute_gossip_id,
    decode_frame,
    encode_frame,
)

VALID_PAYLOADS = [
    (MessageType.TX, b"tx-bytes"),
    (MessageType.PROPOSAL, b"p" * 1000),
    (MessageType.VOTE, b"vote"),
    (MessageType.STATUS, (7, 2)),
    (MessageType.GET_STATUS, None),
    (MessageType.GET_BLOCKS, (1, 10)),
    (MessageType.BLOCKS, ((b"block", b"cert"), (b"block2", b"cert2"))),
    (MessageType.GET_VOTES, 5),
    (MessageType.VOTES, (b"v1", b"v2")),
    (MessageType.PEERS_REQUEST, None),
    (MessageType.PEERS, ("127.0.0.1:9000", "[::1]:9001")),
    (MessageType.PING, b"12345678"),
    (MessageType.PONG, b"12345678"),
    (MessageType.ERROR, ("busy", "try later")),
    (MessageType.AUTH, bytes(64)),
    (MessageType.GET_SNAPSHOTS, None),
    (MessageType.SNAPSHOTS, ((1000, bytes(32), 12), (2000, bytes(range(32)), 13))),
    (MessageType.GET_LIGHT_BLOCKS, (1, 2000)),
    (MessageType.LIGHT_BLOCKS, (b"light block 1", b"light block 2")),
    (MessageType.GET_MANIFEST, (2000, bytes(32))),
    (MessageType.MANIFEST, b"manifest"),
    (MessageType.GET_CHUNK, (2000, bytes(32), 7)),
    (MessageType.CHUNK, b"chunk"),
]


@pytest.mark.parametrize(("msg_type", "payload"), VALID_PAYLOADS)
def test_frame_round_trip(msg_type, payload):
    data = encode_frame(msg_type, 3, payload)
    frame = decode_frame(data)
    assert (frame.msg_type, frame.request_id, frame.payload) == (msg_type, 3, payload)


def test_frame_golden_bytes():
    # [10, 0, b"ab"]: fixarray 3, fixint 10, fixint 0, bin8 of 2 bytes. Change on purpose only.
    assert encode_frame(MessageType.TX, 0, b"ab") == bytes.fromhex("930a00c4026162")


def test_invalid_unknown_type():
    with pytest.raises(UnknownMessageTypeError):
        decode_frame(codec.encode([99, 0, b""]))


def test_invalid_oversized_for_its_type():
    # 4 KiB is fine for a PROPOSAL but far beyond a VOTE's limit.
    big = b"x" * (MAX_FRAME_SIZE[MessageType.VOTE] + 1)
    decode_frame(codec.encode([int(MessageType.PROPOSAL), 0, big]))
    with pytest.raises(OversizedFrameError):
        decode_frame(codec.encode([int(MessageType.VOTE), 0, big]))
    with pytest.raises(OversizedFrameError):
        encode_frame(MessageType.VOTE, 0, big)


def test_invalid_oversized_chunk_is_refused_before_its_payload_is_parsed():
    # A CHUNK one byte over its limit, with a payload that would not even parse: the
    # size is what refuses it.
    limit = MAX_FRAME_SIZE[MessageType.CHUNK]
    assert limit <= 9 * 1024 * 1024
    data = bytes.fromhex("9339") + b"\xff" * (limit - 1)
    with pytest.raises(OversizedFrameError, match="CHUNK"):
        decode_frame(data)


@pytest.mark.parametrize("data", [
    b"",
    b"\x93",
    codec.encode([int(MessageType.TX), 0]),
    codec.encode([int(MessageType.TX), 0, "text not bytes"]),
    codec.encode([int(MessageType.TX), -1, b""]),
    codec.encode([int(MessageType.STATUS), 0, [1]]),
    codec.encode([int(MessageType.GET_BLOCKS), 1, [1, 0]]),
    codec.encode([int(MessageType.PING), 1, b"short"]),
    codec.encode([int(MessageType.TX), 0, b""]) + b"\x00",  # trailing bytes
    msgpack.packb([int(MessageType.TX), 0, {"b": 1, "a": 2}]),  # wrong shape
    bytes.fromhex("930a00d90161"),  # non-canonical: str8 where fixstr fits
    codec.encode([int(MessageType.SNAPSHOTS), 1, [[0, bytes(32), 1]]]),  # height 0
    codec.encode([int(MessageType.SNAPSHOTS), 1, [[5, bytes(31), 1]]]),
    codec.encode([int(MessageType.SNAPSHOTS), 1, [[5, bytes(32), 1]] * 17]),
    codec.encode([int(MessageType.GET_LIGHT_BLOCKS), 1, [9, 8]]),  # to below from
    codec.encode([int(MessageType.GET_LIGHT_BLOCKS), 1, [0, 8]]),
    codec.encode([int(MessageType.LIGHT_BLOCKS), 1, [b"x"] * 65]),
    codec.encode([int(MessageType.GET_MANIFEST), 1, [5]]),
    codec.encode([int(MessageType.GET_CHUNK), 1, [5, bytes(32), 65_536]]),
    codec.encode([int(MessageType.CHUNK), 1, "text"]),
])
def test_invalid_malformed(data):
    with pytest.raises(MalformedFrameError):
        decode_frame(data)


@given(st.binary(max_size=200))
def test_decode_random_bytes_raises_only_frame_errors(data):
    with contextlib.suppress(FrameError):
        decode_frame(data)


@given(st.binary(max_size=100))
def test_decode_random_payload_after_valid_header(data):
    with contextlib.suppress(FrameError):
        decode_frame(bytes.fromhex("930a00") + data)


def _gossip_id(msg_type: MessageType, payload: object) -> bytes:
    return compute_gossip_id(encode_frame(msg_type, 0, payload))


def test_gossip_id_depends_on_type_and_payload():
    assert _gossip_id(MessageType.TX, b"a") == _gossip_id(MessageType.TX, b"a")
    assert _gossip_id(MessageType.TX, b"a") != _gossip_id(MessageType.VOTE, b"a")
    assert _gossip_id(MessageType.TX, b"a") != _gossip_id(MessageType.TX, b"b")
    # A list and a tuple payload are one message: one encoding, one id.
    assert _gossip_id(MessageType.TXS, [b"a", b"b"]) == _gossip_id(MessageType.TXS, (b"a", b"b"))


def test_gossip_id_is_the_hash_of_the_frame_as_received():
    data = bytes.fromhex("930a00c4026162")  # TX b"ab", the golden frame
    assert compute_gossip_id(data) == hashlib.sha256(data).digest()
    # What a peer relays is what we received: the id is the same at every hop.
    frame = decode_frame(data)
    assert compute_gossip_id(encode_frame(frame.msg_type, 0, frame.payload)) \
        == compute_gossip_id(data)
