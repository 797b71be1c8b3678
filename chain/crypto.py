"""Hashes, ed25519 keys and signatures (pynacl), and addresses.

Every signature in govchain is made over `signing_bytes(domain, chain_id, payload)`,
so a signature for one kind of message or one chain can never be replayed as
another. Never sign raw payloads.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import NewType

import nacl.bindings
import nacl.exceptions
import nacl.signing

from chain import codec

Hash32 = NewType("Hash32", bytes)
Address = NewType("Address", bytes)
PublicKey = NewType("PublicKey", bytes)

HASH_SIZE = 32
ADDRESS_SIZE = 20
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
ZERO_HASH = Hash32(bytes(32))

# Signing domains. Each kind of signed message has its own; see docs/protocol.md.
DOMAIN_TX = "govchain/tx/v1"
DOMAIN_PROPOSAL = "govchain/proposal/v1"
DOMAIN_VOTE = "govchain/vote/v1"
DOMAIN_HANDSHAKE = "govchain/handshake/v1"
DOMAIN_VALIDATOR_ACCEPT = "govchain/validator-accept/v1"
DOMAIN_RESERVE_REPORT = "govchain/reserve-report/v1"


def compute_hash(data: bytes) -> Hash32:
    """SHA-256 of `data`."""
    return Hash32(hashlib.sha256(data).digest())


def signing_bytes(domain: str, chain_id: str, payload: codec.Value) -> bytes:
    """The exact bytes that are signed: canonical [domain, chain_id, payload]."""
    return codec.encode([domain, chain_id, payload])


@functools.lru_cache(maxsize=1 << 16)  # checked for every transaction's signer
def compute_address(public_key: bytes) -> Address:
    """The account address of a single ed25519 key."""
    return Address(compute_hash(b"govchain/address/ed25519\x00" + public_key)[:ADDRESS_SIZE])


def compute_multisig_address(threshold: int, members: tuple[bytes, ...]) -> Address:
    """The account address of an M-of-N multisig over `members` (order-insensitive)."""
    payload = codec.encode([threshold, sorted(members)])
    return Address(compute_hash(b"govchain/address/multisig\x00" + payload)[:ADDRESS_SIZE])


VERIFIED_MEMORY = 16_384
"""Valid signatures of short messages remembered by `is_valid_signature` (all are
forgotten at once when it is full)."""
VERIFIED_MESSAGE_BYTES = 256
"""Messages up to this size have their valid signatures remembered: votes and
proposals, whose signing bytes are about a hundred bytes."""
_verified: dict[tuple[bytes, bytes, bytes], None] = {}


def is_valid_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid ed25519 signature of `message` by `public_key`.

    A valid signature of a short message is remembered (VERIFIED_MEMORY): a node checks
    each precommit when it arrives and again inside the commit certificate it makes.
    """
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    key = (public_key, signature, message) if len(message) <= VERIFIED_MESSAGE_BYTES else None
    if key is not None and key in _verified:
        return True
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError):
        return False
    if key is not None:
        if len(_verified) >= VERIFIED_MEMORY:
            _verified.clear()
        _verified[key] = None
    return True


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An ed25519 key pair. `seed` is the 32-byte secret; never log it."""

    seed: bytes
    """The 32-byte secret seed."""
    public_key: PublicKey
    """The 32-byte public key."""

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_seed(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        signing_key = nacl.signing.SigningKey(seed)
        return cls(seed=seed, public_key=PublicKey(bytes(signing_key.verify_key)))

    @property
    def address(self) -> Address:
        return compute_address(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached signature of `message`."""
        # libsodium's secret key is the seed followed by the public key: signing with it
        # skips deriving the key pair again (a SigningKey) for every signature.
        signed = nacl.bindings.crypto_sign(message, self.seed + self.public_key)
        return signed[:SIGNATURE_SIZE]

    def __repr__(self) -> str:
        return f"KeyPair(public_key={self.public_key.hex()})"
