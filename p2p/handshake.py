"""The authenticated handshake: HELLO both ways, then AUTH both ways.

Each side proves its node key by signing both nonces (so a recorded AUTH cannot be
replayed on another connection) and, over TLS, the server certificate's fingerprint
(so a man in the middle that terminates TLS is refused), and checks chain id, genesis
hash and protocol version. The pure parts (build, validate, sign, verify) do no I/O; `run_handshake`
drives them over any FrameChannel, with one deadline for the whole exchange.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chain.crypto import (
    DOMAIN_HANDSHAKE,
    KeyPair,
    PublicKey,
    is_valid_signature,
    signing_bytes,
)
from p2p.errors import (
    BadHandshakeSignatureError,
    FrameError,
    HandshakeError,
    HandshakeRefusedError,
    HandshakeTimeoutError,
    MalformedFrameError,
    ProtocolVersionError,
    SelfConnectionError,
    WrongChainError,
    WrongGenesisError,
)
from p2p.frames import PROTOCOL_VERSION, MessageType, decode_frame, encode_frame

log = logging.getLogger(__name__)

NONCE_SIZE = 32


@dataclass(frozen=True, slots=True)
class Hello:
    """What a node says about itself when a connection opens (not yet proven)."""

    version: int
    """Protocol version (frames.PROTOCOL_VERSION)."""
    chain_id: str
    """The chain the node runs; must equal ours."""
    genesis_hash: bytes
    """Hash of the node's genesis; must equal ours."""
    node_key: PublicKey
    """The node's ed25519 public key; its hex is the peer id."""
    nonce: bytes
    """32 fresh random bytes for this connection, signed by the other side."""
    listen_address: str
    """host:port where the node accepts connections ("" when it accepts none)."""
    is_validator: bool
    """Whether the node says it is a validator (informational only)."""

    def to_payload(self) -> list[Any]:
        return [self.version, self.chain_id, self.genesis_hash, self.node_key, self.nonce,
                self.listen_address, self.is_validator]

    @classmethod
    def from_payload(cls, payload: Any) -> Hello:
        """Build from a HELLO payload that frames.validate_payload has checked."""
        version, chain_id, genesis_hash, node_key, nonce, listen_address, is_validator = payload
        return cls(version=version, chain_id=chain_id, genesis_hash=genesis_hash,
                   node_key=PublicKey(node_key), nonce=nonce,
                   listen_address=listen_address, is_validator=is_validator)


def build_hello(key: KeyPair, chain_id: str, genesis_hash: bytes, listen_address: str,
                is_validator: bool, nonce: bytes | None = None) -> Hello:
    """Our HELLO for one connection, with a fresh nonce unless one is given (tests)."""
    return Hello(
        version=PROTOCOL_VERSION, chain_id=chain_id, genesis_hash=genesis_hash,
        node_key=key.public_key,
        nonce=secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce,
        listen_address=listen_address, is_validator=is_validator)


def validate_hello(local: Hello, peer: Hello) -> None:
    """Raise a HandshakeError unless `peer` may talk to `local` at all."""
    if peer.version != local.version:
        raise ProtocolVersionError(
            f"peer speaks protocol version {peer.version}, we speak {local.version}")
    if peer.chain_id != local.chain_id:
        raise WrongChainError(
            f"peer runs chain id {peer.chain_id!r}, we run {local.chain_id!r}")
    if peer.genesis_hash != local.genesis_hash:
        raise WrongGenesisError(
            f"peer has genesis hash {peer.genesis_hash.hex()}, ours is "
            f"{local.genesis_hash.hex()}: one of the genesis files is wrong")
    if peer.node_key == local.node_key:
        raise SelfConnectionError("the peer presents our own node key: this is ourselves")
    if peer.nonce == local.nonce:
        raise SelfConnectionError("the peer echoed our nonce")


def compute_certificate_binding(ssl_object: Any) -> bytes:
    """The TLS channel binding of a connection: SHA-256 of the server certificate (DER)
    as this end saw it. Raises HandshakeError when there is no TLS certificate.

    `tls-unique` does not exist in TLS 1.3 and Python's ssl module cannot export
    keying material, so the binding is the server certificate: a man in the middle
    that terminates TLS shows its own certificate, and the two ends then sign
    different bindings and refuse each other's AUTH.
    """
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise BadHandshakeSignatureError("TLS link without a server certificate")
    return hashlib.sha256(der).digest()


def compute_auth_message(chain_id: str, own: Hello, other: Hello,
                         channel_binding: bytes = b"") -> bytes:
    """The bytes that the owner of `own` signs: both nonces, genesis, both keys and the
    channel binding (the TLS server certificate's SHA-256, or b"" in plain text)."""
    return signing_bytes(DOMAIN_HANDSHAKE, chain_id,
                         [own.nonce, other.nonce, own.genesis_hash, own.node_key,
                          other.node_key, channel_binding])


def sign_auth(key: KeyPair, local: Hello, peer: Hello, channel_binding: bytes = b"") -> bytes:
    """Our AUTH signature for this connection."""
    assert key.public_key == local.node_key
    return key.sign(compute_auth_message(local.chain_id, local, peer, channel_binding))


def verify_auth(local: Hello, peer: Hello, signature: bytes,
                channel_binding: bytes = b"") -> None:
    """Raise BadHandshakeSignatureError unless the peer signed this connection."""
    message = compute_auth_message(local.chain_id, peer, local, channel_binding)
    if not is_valid_signature(peer.node_key, message, signature):
        raise BadHandshakeSignatureError(
            f"peer {peer.node_key.hex()[:16]} sent an AUTH signature that does not verify"
            + (" over this TLS link (a man in the middle?)" if channel_binding else ""))


# ---------------------------------------------------------------- I/O


class FrameChannel(Protocol):
    """One connection as a stream of whole frames (a WebSocket, or a queue in tests)."""

    async def send(self, data: bytes) -> None:
        """Send one frame."""

    async def receive(self) -> bytes:
        """The next frame; raises ConnectionClosedError when the peer has gone."""


async def _receive(channel: FrameChannel, expected: MessageType) -> Any:
    """The payload of the next frame, which must be `expected`; a frame that breaks the
    rules is refused with an ERROR frame naming what was wrong, then raised."""
    try:
        frame = decode_frame(await channel.receive())
    except FrameError as e:
        await _refuse(channel, e)
        raise
    if frame.msg_type == MessageType.ERROR:
        code, message = frame.payload
        raise HandshakeRefusedError(code, message)
    if frame.msg_type != expected:
        error = MalformedFrameError(
            f"expected {expected.name} during the handshake, got {frame.msg_type.name}")
        await _refuse(channel, error)
        raise error
    return frame.payload


async def _refuse(channel: FrameChannel, error: HandshakeError | FrameError) -> None:
    """Tell the peer why we refuse it, best effort: it may have gone already."""
    try:
        await channel.send(encode_frame(MessageType.ERROR, 0, [error.code, error.message[:256]]))
    except (OSError, ConnectionError, RuntimeError) as e:
        log.debug("could not send handshake refusal: %s", e)


async def run_handshake(channel: FrameChannel, key: KeyPair, local: Hello,
                        check_peer: Callable[[Hello], None], timeout_s: float,
                        channel_binding: bytes = b"") -> Hello:
    """Run the handshake; return the peer's proven HELLO.

    `check_peer` applies the node's policy (ban, allow-list, duplicates, capacity)
    and raises a HandshakeError to refuse. Every refusal is sent to the peer as an
    ERROR frame before the error is raised here. Raises HandshakeError, FrameError or
    ConnectionClosedError.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await channel.send(encode_frame(MessageType.HELLO, 0, local.to_payload()))
            peer = Hello.from_payload(await _receive(channel, MessageType.HELLO))
            try:
                validate_hello(local, peer)
                check_peer(peer)
            except HandshakeError as e:
                await _refuse(channel, e)
                raise
            await channel.send(encode_frame(MessageType.AUTH, 0,
                                            sign_auth(key, local, peer, channel_binding)))
            signature = await _receive(channel, MessageType.AUTH)
            try:
                verify_auth(local, peer, signature, channel_binding)
            except HandshakeError as e:
                await _refuse(channel, e)
                raise
            return peer
    except TimeoutError:
        raise HandshakeTimeoutError(
            f"peer did not complete the handshake within {timeout_s} s") from None
