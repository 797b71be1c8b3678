"""Transactions: who sends what to which chain, with the sender's signatures.

A transaction is `[chain_id, sender, nonce, tx_type, fields, signatures]` in
canonical msgpack. Signatures are made over the body (everything but the
signatures) in the DOMAIN_TX domain, sorted by public key, one per key. The
transaction hash is SHA-256 of the whole encoding. This module checks form and
signatures only; whether the signers may act for the sender is the ledger's call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain import codec
from chain.crypto import (
    ADDRESS_SIZE,
    DOMAIN_TX,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Address,
    Hash32,
    KeyPair,
    PublicKey,
    compute_hash,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import BadSignatureError, MalformedError, TooLargeError, WrongChainError

MAX_TX_BYTES = 64 * 1024
MAX_SIGNATURES = 32


@dataclass(frozen=True, slots=True)
class Signature:
    """One signer's ed25519 signature over a transaction's signing bytes."""

    public_key: PublicKey
    """The signer's 32-byte public key."""
    signature: bytes
    """The 64-byte signature."""


@dataclass(frozen=True)
class Transaction:
    """A signed request to change the ledger."""

    chain_id: str
    """The chain this transaction is valid on; guards against cross-chain replay."""
    sender: Address
    """The 20-byte account that acts: a single key's or a multisig account's address."""
    nonce: int
    """The sender's sequence number; each nonce is used exactly once, in order."""
    tx_type: str
    """What to do, for example "transfer"; the ledger module that owns it decides."""
    fields: dict[str, Any]
    """The arguments of `tx_type`; text keys, canonical values."""
    signatures: tuple[Signature, ...] = ()
    """Signatures over `signing_bytes`, sorted by public key, one per key."""

    def body(self) -> list[Any]:
        return [self.chain_id, self.sender, self.nonce, self.tx_type, self.fields]

    @cached_property
    def signing_bytes(self) -> bytes:
        encoded = self.__dict__.get("encoded")
        if encoded is not None:
            return _signing_bytes_from_encoding(self.chain_id, encoded, len(self.signatures))
        return signing_bytes(DOMAIN_TX, self.chain_id, self.body())

    @cached_property
    def encoded(self) -> bytes:
        sigs = [[s.public_key, s.signature] for s in self.signatures]
        return codec.encode([*self.body(), sigs])

    @cached_property
    def hash(self) -> Hash32:
        return compute_hash(self.encoded)

    def with_signature(self, key: KeyPair) -> Transaction:
        """Return a copy signed also by `key` (replacing any earlier signature of it)."""
        new = Signature(key.public_key, key.sign(self.signing_bytes))
        others = [s for s in self.signatures if s.public_key != key.public_key]
        sigs = tuple(sorted([*others, new], key=lambda s: s.public_key))
        return Transaction(self.chain_id, self.sender, self.nonce, self.tx_type,
                           self.fields, sigs)

    @property
    def signer_keys(self) -> tuple[PublicKey, ...]:
        return tuple(s.public_key for s in self.signatures)

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_TX_BYTES,
               tx_hash: Hash32 | None = None) -> Transaction:
        """Decode and check form; raises MalformedError or TooLargeError.

        `tx_hash` is compute_hash(data) when the caller has it already (gossip looks
        each transaction up by it before decoding), so it is not computed twice.
        """
        validate_tx_size(len(data), max_size)
        data = bytes(data)
        tx = _decode_common_shape(cls, data)
        if tx is None:
            tx = cls.from_value(codec.decode(data, max_size=max_size))
        # from_value re-encodes identically, so the cached encoding is `data`.
        tx.__dict__["encoded"] = data
        if tx_hash is not None:
            tx.__dict__["hash"] = tx_hash
        return tx

    @classmethod
    def from_value(cls, value: Any) -> Transaction:
        chain_id, sender, nonce, tx_type, fields, sigs = codec.expect_tuple(value, 6, "tx")
        signatures = tuple(_signature_from_value(s) for s in _expect_sig_list(sigs))
        keys = [s.public_key for s in signatures]
        if keys != sorted(set(keys)):
            raise MalformedError("tx signatures must be sorted by public key, one per key")
        # Set the frozen fields directly: the checks above are __init__'s whole work.
        tx = object.__new__(cls)
        tx.__dict__.update(
            chain_id=codec.expect_str(chain_id, "tx chain_id", max_len=64),
            sender=Address(codec.expect_bytes(sender, "tx sender", size=ADDRESS_SIZE)),
            nonce=codec.expect_int(nonce, "tx nonce"),
            tx_type=codec.expect_str(tx_type, "tx type", max_len=64),
            fields=codec.expect_map(fields, "tx fields"),
            signatures=signatures,
        )
        return tx


_FIELD_LEAF_TYPES = frozenset({bytes, str, int, bool, type(None)})


def _is_signature_pair(value: Any) -> bool:
    """True when `value` is a decoded [public_key, signature] of the right sizes."""
    return (type(value) is tuple and len(value) == 2 and type(value[0]) is bytes
            and len(value[0]) == PUBLIC_KEY_SIZE and type(value[1]) is bytes
            and len(value[1]) == SIGNATURE_SIZE)


def _decode_common_shape(cls: type[Transaction], data: bytes) -> Transaction | None:
    """Transaction.decode's fast path for the shape nearly every transaction has: flat
    fields (text, bytes, integers, booleans, nulls). It checks in one pass what the
    generic path checks (types, sizes, key order, signature order, and that the bytes
    are the value's canonical encoding) and returns None, never raising, for anything
    else, which then takes the generic path and its precise error."""
    try:
        value = codec.unpack_unchecked(data)
    except MalformedError:
        return None
    if type(value) is not tuple or len(value) != 6:
        return None
    chain_id, sender, nonce, tx_type, fields, sigs = value
    if not (type(chain_id) is str and len(chain_id) <= 64 and type(sender) is bytes
            and len(sender) == ADDRESS_SIZE and type(nonce) is int and nonce >= 0
            and type(tx_type) is str and len(tx_type) <= 64 and type(fields) is dict
            and type(sigs) is tuple and len(sigs) <= MAX_SIGNATURES):
        return None
    for key, item in fields.items():
        if type(key) is not str or type(item) not in _FIELD_LEAF_TYPES:
            return None
    keys = list(fields)
    if keys != sorted(keys):
        return None
    signatures = []
    for sig in sigs:
        if not _is_signature_pair(sig):
            return None
        signatures.append(Signature(PublicKey(sig[0]), sig[1]))
    for i in range(1, len(signatures)):
        if signatures[i - 1].public_key >= signatures[i].public_key:
            return None
    try:
        if codec.pack_unchecked(value) != data:
            return None
    except MalformedError:
        return None
    tx = object.__new__(cls)
    tx.__dict__.update(chain_id=chain_id, sender=Address(sender), nonce=nonce,
                       tx_type=tx_type, fields=fields, signatures=tuple(signatures))
    return tx


_SIGNATURE_ENCODED_SIZE = 1 + (2 + PUBLIC_KEY_SIZE) + (2 + SIGNATURE_SIZE)
"""One encoded [public_key, signature]: fixarray(2), bin8(32), bin8(64)."""

_signing_prefixes: dict[str, bytes] = {}


def _signing_bytes_from_encoding(chain_id: str, encoded: bytes, signature_count: int) -> bytes:
    """signing_bytes(DOMAIN_TX, chain_id, body) cut from the canonical encoding of the
    whole transaction instead of encoding the body again: the body is the encoding's
    first five items, and the signatures (its last item) have a fixed size each."""
    prefix = _signing_prefixes.get(chain_id)
    if prefix is None:
        # fixarray(3), the domain, the chain id; drop the encoded placeholder 0.
        prefix = codec.encode([DOMAIN_TX, chain_id, 0])[:-1]
        if len(_signing_prefixes) < 64:
            _signing_prefixes[chain_id] = prefix
    if signature_count > 15:  # longer array header; rare enough to encode again
        sigs_size = len(codec.encode([[bytes(PUBLIC_KEY_SIZE), bytes(SIGNATURE_SIZE)]]
                                     * signature_count))
    else:
        sigs_size = 1 + _SIGNATURE_ENCODED_SIZE * signature_count
    return prefix + b"\x95" + encoded[1:len(encoded) - sigs_size]


def _expect_sig_list(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, tuple) or len(value) > MAX_SIGNATURES:
        raise MalformedError(f"tx signatures: expected an array of at most {MAX_SIGNATURES}")
    return value


def _signature_from_value(value: Any) -> Signature:
    public_key, signature = codec.expect_tuple(value, 2, "tx signature")
    return Signature(
        PublicKey(codec.expect_bytes(public_key, "signer key", size=PUBLIC_KEY_SIZE)),
        codec.expect_bytes(signature, "signature", size=SIGNATURE_SIZE),
    )


def validate_tx_size(size: int, max_size: int) -> None:
    """Raise TooLargeError when a transaction of `size` bytes exceeds `max_size`."""
    if size > max_size:
        raise TooLargeError(f"transaction of {size} bytes exceeds the limit of {max_size}")


def validate_chain_id(tx: Transaction, chain_id: str) -> None:
    """Raise WrongChainError unless `tx` names `chain_id`."""
    if tx.chain_id != chain_id:
        raise WrongChainError(f"transaction is for chain {tx.chain_id!r}, this is {chain_id!r}")


def validate_signatures(tx: Transaction) -> None:
    """Raise BadSignatureError unless `tx` has signatures and every one verifies."""
    if not tx.signatures:
        raise BadSignatureError("transaction carries no signature")
    message = tx.signing_bytes
    for sig in tx.signatures:
        if not is_valid_signature(sig.public_key, message, sig.signature):
            raise BadSignatureError(
                f"signature by {sig.public_key.hex()[:16]}... does not verify")


def signatures_verify_encoded(encoded: bytes) -> bool:
    """validate_signatures(Transaction.decode(encoded)) as a verdict, for `encoded` a
    transaction's canonical encoding (`tx.encoded` of a decoded or built transaction):
    it reads only the chain id and the signatures and cuts the signing bytes from the
    encoding, skipping the form checks `encoded` has passed already. For bytes of
    unknown form use Transaction.decode; this may be False or True where decode
    raises."""
    try:
        value = codec.unpack_unchecked(encoded)
    except MalformedError:
        return False
    if type(value) is not tuple or len(value) != 6:
        return False
    chain_id, sigs = value[0], value[5]
    if type(chain_id) is not str or type(sigs) is not tuple or not sigs:
        return False
    if not all(_is_signature_pair(sig) for sig in sigs):
        return False
    message = _signing_bytes_from_encoding(chain_id, encoded, len(sigs))
    return all(is_valid_signature(key, message, signature) for key, signature in sigs)


def make_transaction(chain_id: str, key: KeyPair, nonce: int, tx_type: str,
                     fields: dict[str, Any], sender: Address | None = None) -> Transaction:
    """Build and sign a transaction by `key` (sender defaults to the key's address)."""
    unsigned = Transaction(chain_id, sender or key.address, nonce, tx_type, fields)
    return unsigned.with_signature(key)
