"""Handshake: the pure checks and signatures, and the exchange over an in-memory link."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from chain.crypto import KeyPair
from p2p.errors import (
    BadHandshakeSignatureError,
    ConnectionClosedError,
    DuplicatePeerError,
    HandshakeRefusedError,
    HandshakeTimeoutError,
    ProtocolVersionError,
    SelfConnectionError,
    WrongChainError,
    WrongGenesisError,
)
from p2p.frames import MessageType, decode_frame, encode_frame
from p2p.handshake import Hello, build_hello, run_handshake, sign_auth, validate_hello, verify_auth

CHAIN = "govchain-test"
GENESIS = bytes(32)


def hello_for(key: KeyPair, **changes) -> Hello:
    hello = build_hello(key, CHAIN, GENESIS, "127.0.0.1:1", is_validator=True)
    return dataclasses.replace(hello, **changes)


class QueueChannel:
    """One end of an in-memory frame link."""

    def __init__(self, inbox: asyncio.Queue[bytes | None],
                 outbox: asyncio.Queue[bytes | None]) -> None:
        self.inbox, self.outbox = inbox, outbox

    async def send(self, data: bytes) -> None:
        await self.outbox.put(data)

    async def receive(self) -> bytes:
        data = await self.inbox.get()
        if data is None:
            raise ConnectionClosedError("closed")
        return data


def channel_pair() -> tuple[QueueChannel, QueueChannel]:
    a_to_b: asyncio.Queue[bytes | None] = asyncio.Queue()
    b_to_a: asyncio.Queue[bytes | None] = asyncio.Queue()
    return QueueChannel(b_to_a, a_to_b), QueueChannel(a_to_b, b_to_a)


def test_validate_hello_accepts_same_chain():
    validate_hello(hello_for(KeyPair.generate()), hello_for(KeyPair.generate()))


@pytest.mark.parametrize(("changes", "error"), [
    ({"chain_id": "other-chain"}, WrongChainError),
    ({"genesis_hash": b"\x01" * 32}, WrongGenesisError),
    ({"version": 99}, ProtocolVersionError),
])
def test_invalid_hello(changes, error):
    with pytest.raises(error):
        validate_hello(hello_for(KeyPair.generate()), hello_for(KeyPair.generate(), **changes))


def test_invalid_hello_self_connection():
    key = KeyPair.generate()
    with pytest.raises(SelfConnectionError):
        validate_hello(hello_for(key), hello_for(key))


def test_auth_signature_verifies_and_binds_both_nonces():
    a_key, b_key = KeyPair.generate(), KeyPair.generate()
    a, b = hello_for(a_key), hello_for(b_key)
    verify_auth(b, a, sign_auth(a_key, a, b))  # b checks a's signature
    # A signature recorded on one connection fails on another (fresh nonce from b).
    replayed = sign_auth(a_key, a, b)
    with pytest.raises(BadHandshakeSignatureError):
        verify_auth(hello_for(b_key), a, replayed)
    # A signature by another key than the one in HELLO fails.
    other = KeyPair.generate()
    forged = sign_auth(other, dataclasses.replace(a, node_key=other.public_key), b)
    with pytest.raises(BadHandshakeSignatureError):
        verify_auth(b, a, forged)


async def test_run_handshake_success():
    a_key, b_key = KeyPair.generate(), KeyPair.generate()
    a_end, b_end = channel_pair()
    seen: list[Hello] = []
    peer_of_a, peer_of_b = await asyncio.gather(
        run_handshake(a_end, a_key, hello_for(a_key), seen.append, 1.0),
        run_handshake(b_end, b_key, hello_for(b_key), seen.append, 1.0))
    assert peer_of_a.node_key == b_key.public_key
    assert peer_of_b.node_key == a_key.public_key
    assert len(seen) == 2


async def test_run_handshake_refusal_reaches_the_other_side():
    a_key, b_key = KeyPair.generate(), KeyPair.generate()
    a_end, b_end = channel_pair()

    def refuse(hello: Hello) -> None:
        raise DuplicatePeerError("already connected")

    results = await asyncio.gather(
        run_handshake(a_end, a_key, hello_for(a_key), lambda h: None, 1.0),
        run_handshake(b_end, b_key, hello_for(b_key), refuse, 1.0),
        return_exceptions=True)
    assert isinstance(results[0], HandshakeRefusedError)
    assert results[0].remote_code == "duplicate_peer"
    assert isinstance(results[1], DuplicatePeerError)


async def test_invalid_forged_auth_is_refused():
    """A peer claiming a key it does not hold signs with another key: refused."""
    a_key, victim, forger = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    a_end, b_end = channel_pair()
    task = asyncio.create_task(run_handshake(a_end, a_key, hello_for(a_key), lambda h: None, 1.0))
    claimed = hello_for(victim)
    await b_end.send(encode_frame(MessageType.HELLO, 0, claimed.to_payload()))
    a_hello = Hello.from_payload(decode_frame(await b_end.receive()).payload)
    assert decode_frame(await b_end.receive()).msg_type == MessageType.AUTH
    forged = forger.sign(b"anything")  # cannot make victim's signature
    await b_end.send(encode_frame(MessageType.AUTH, 0, forged))
    with pytest.raises(BadHandshakeSignatureError):
        await task
    refusal = decode_frame(await b_end.receive())
    assert refusal.msg_type == MessageType.ERROR
    assert refusal.payload[0] == "bad_handshake_signature"
    assert a_hello.node_key == a_key.public_key


async def test_run_handshake_times_out():
    a_key = KeyPair.generate()
    a_end, _ = channel_pair()
    with pytest.raises(HandshakeTimeoutError):
        await run_handshake(a_end, a_key, hello_for(a_key), lambda h: None, 0.05)


def _raw_hello(key: KeyPair, **changes) -> bytes:
    """A HELLO frame's bytes built by hand, so that it may break the frame rules."""
    from chain import codec

    payload = hello_for(key).to_payload()
    fields = ["version", "chain_id", "genesis_hash", "node_key", "nonce", "listen_address",
              "is_validator"]
    for name, value in changes.items():
        payload[fields.index(name)] = value
    return codec.encode([int(MessageType.HELLO), 0, payload])


@pytest.mark.parametrize("changes", [
    {"listen_address": "h" * 300 + ":1"},  # over the listen address bound
    {"nonce": b"\x01" * 8},                 # a short nonce
])
async def test_invalid_hello_frame_is_answered_with_an_error_frame(changes):
    from p2p.errors import MalformedFrameError

    a_key, b_key = KeyPair.generate(), KeyPair.generate()
    a_end, b_end = channel_pair()
    task = asyncio.create_task(run_handshake(a_end, a_key, hello_for(a_key), lambda h: None, 1.0))
    assert decode_frame(await b_end.receive()).msg_type == MessageType.HELLO
    await b_end.send(_raw_hello(b_key, **changes))
    with pytest.raises(MalformedFrameError):
        await task
    refusal = decode_frame(await asyncio.wait_for(b_end.receive(), 5))
    assert refusal.msg_type == MessageType.ERROR
    assert refusal.payload[0] == "malformed_frame"
    assert "HELLO" in refusal.payload[1]
