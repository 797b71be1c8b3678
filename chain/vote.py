"""Validator sets, proposals, votes and commit certificates.

Each vote and proposal is signed over domain-separated bytes bound to the chain id.
A commit certificate is a quorum of precommit signatures for one block at one
(height, round); anyone holding the validator set of that height can check it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from chain import codec
from chain.block import Block
from chain.crypto import (
    DOMAIN_PROPOSAL,
    DOMAIN_VOTE,
    HASH_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Hash32,
    KeyPair,
    PublicKey,
    compute_hash,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import BadSignatureError, InvalidCertificateError, MalformedError
from chain.tx import Transaction

MAX_ROUND = 2**32 - 1
MAX_VALIDATORS = 256
NIL = Hash32(b"")
"""The block hash of a vote for no block."""


@dataclass(frozen=True, slots=True)
class Validator:
    """One member of the validator set: a ministry's signing key."""

    public_key: PublicKey
    """The validator's ed25519 consensus key."""
    name: str
    """A human name, for example the ministry's; in the genesis hash, not the set hash."""


@dataclass(frozen=True)
class ValidatorSet:
    """The ordered validators of one height; order fixes proposer rotation."""

    validators: tuple[Validator, ...]
    """Validators in rotation order; each key once."""

    def __post_init__(self) -> None:
        keys = [v.public_key for v in self.validators]
        if not keys or len(set(keys)) != len(keys) or len(keys) > MAX_VALIDATORS:
            raise ValueError("a validator set has 1 to 256 distinct keys")

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def quorum(self) -> int:
        """floor(2n/3) + 1 votes: any two quorums share an honest validator."""
        return 2 * self.size // 3 + 1

    @property
    def max_faulty(self) -> int:
        """f = floor((n-1)/3), the number of faulty validators tolerated."""
        return (self.size - 1) // 3

    @cached_property
    def public_keys(self) -> frozenset[PublicKey]:
        return frozenset(v.public_key for v in self.validators)

    @cached_property
    def index_of(self) -> dict[PublicKey, int]:
        return {v.public_key: i for i, v in enumerate(self.validators)}

    def is_member(self, public_key: bytes) -> bool:
        return public_key in self.public_keys

    def get_proposer(self, height: int, round_: int) -> PublicKey:
        """validators[(height + round) mod n]."""
        return self.validators[(height + round_) % self.size].public_key

    @cached_property
    def hash(self) -> Hash32:
        return compute_hash(codec.encode([v.public_key for v in self.validators]))

    def to_value(self) -> list[Any]:
        return [[v.public_key, v.name] for v in self.validators]

    @classmethod
    def from_value(cls, value: Any) -> ValidatorSet:
        if not isinstance(value, tuple):
            raise MalformedError("validator set: expected an array")
        validators = []
        for item in value:
            key, name = codec.expect_tuple(item, 2, "validator")
            validators.append(Validator(
                PublicKey(codec.expect_bytes(key, "validator key", size=PUBLIC_KEY_SIZE)),
                codec.expect_str(name, "validator name")))
        try:
            return cls(tuple(validators))
        except ValueError as e:
            raise MalformedError(str(e)) from e


class VoteKind(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


@dataclass(frozen=True)
class Vote:
    """A validator's prevote or precommit for a block (or for nil) at (height, round)."""

    kind: VoteKind
    """Prevote or precommit."""
    height: int
    """The height voted on."""
    round: int
    """The round voted in."""
    block_hash: Hash32
    """The block voted for, or NIL (empty bytes)."""
    validator: PublicKey
    """The voter's public key."""
    signature: bytes
    """Signature over `signing_bytes(DOMAIN_VOTE, chain_id, payload)`."""

    @staticmethod
    def payload(kind: int, height: int, round_: int, block_hash: bytes) -> list[Any]:
        return [kind, height, round_, block_hash]

    def message(self, chain_id: str) -> bytes:
        return signing_bytes(DOMAIN_VOTE, chain_id,
                             self.payload(self.kind, self.height, self.round, self.block_hash))

    @classmethod
    def create(cls, chain_id: str, key: KeyPair, kind: VoteKind, height: int, round_: int,
               block_hash: bytes) -> Vote:
        msg = signing_bytes(DOMAIN_VOTE, chain_id, cls.payload(kind, height, round_, block_hash))
        return cls(kind, height, round_, Hash32(block_hash), key.public_key, key.sign(msg))

    def is_signature_valid(self, chain_id: str) -> bool:
        return is_valid_signature(self.validator, self.message(chain_id), self.signature)

    def to_value(self) -> list[Any]:
        return [int(self.kind), self.height, self.round, self.block_hash, self.validator,
                self.signature]

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_value(cls, value: Any) -> Vote:
        kind, height, round_, block_hash, validator, signature = codec.expect_tuple(
            value, 6, "vote")
        kind = codec.expect_int(kind, "vote kind", lo=1, hi=2)
        block_hash = codec.expect_bytes(block_hash, "vote block_hash", max_size=HASH_SIZE)
        if len(block_hash) not in (0, HASH_SIZE):
            raise MalformedError("vote block_hash: expected 32 bytes or empty for nil")
        return cls(
            kind=VoteKind(kind),
            height=codec.expect_int(height, "vote height"),
            round=codec.expect_int(round_, "vote round", hi=MAX_ROUND),
            block_hash=Hash32(block_hash),
            validator=PublicKey(codec.expect_bytes(validator, "vote validator",
                                                   size=PUBLIC_KEY_SIZE)),
            signature=codec.expect_bytes(signature, "vote signature", size=SIGNATURE_SIZE),
        )


@dataclass(frozen=True)
class Proposal:
    """The proposer's block for (height, round), with the round it was last locked in."""

    height: int
    """The height proposed for."""
    round: int
    """The round proposed in."""
    pol_round: int
    """The round of a prevote quorum for this block (valid round), or -1."""
    block: Block
    """The proposed block."""
    signature: bytes
    """The proposer's signature over the payload in DOMAIN_PROPOSAL."""

    @property
    def proposer(self) -> PublicKey:
        return self.block.header.proposer

    @staticmethod
    def payload(height: int, round_: int, pol_round: int, block_hash: bytes) -> list[Any]:
        return [height, round_, pol_round, block_hash]

    def message(self, chain_id: str) -> bytes:
        return signing_bytes(DOMAIN_PROPOSAL, chain_id,
                             self.payload(self.height, self.round, self.pol_round,
                                          self.block.hash))

    @classmethod
    def create(cls, chain_id: str, key: KeyPair, height: int, round_: int, pol_round: int,
               block: Block) -> Proposal:
        msg = signing_bytes(DOMAIN_PROPOSAL, chain_id,
                            cls.payload(height, round_, pol_round, block.hash))
        return cls(height, round_, pol_round, block, key.sign(msg))

    def is_signature_valid(self, chain_id: str) -> bool:
        return is_valid_signature(self.proposer, self.message(chain_id), self.signature)

    def to_value(self) -> list[Any]:
        return [self.height, self.round, self.pol_round, self.block.to_value(), self.signature]

    @classmethod
    def from_value(cls, value: Any, *,
                   known_txs: Callable[[Hash32], Transaction | None] | None = None
                   ) -> Proposal:
        height, round_, pol_round, block, signature = codec.expect_tuple(value, 5, "proposal")
        return cls(
            height=codec.expect_int(height, "proposal height"),
            round=codec.expect_int(round_, "proposal round", hi=MAX_ROUND),
            pol_round=codec.expect_int(pol_round, "proposal pol_round", lo=-1, hi=MAX_ROUND),
            block=Block.from_value(block, known_txs=known_txs),
            signature=codec.expect_bytes(signature, "proposal signature", size=SIGNATURE_SIZE),
        )


@dataclass(frozen=True)
class CommitCertificate:
    """A quorum of precommit signatures that makes a block final."""

    height: int
    """The block's height."""
    round: int
    """The round in which the quorum precommitted."""
    block_hash: Hash32
    """The certified block's hash."""
    signatures: tuple[tuple[PublicKey, bytes], ...]
    """(validator key, precommit signature) pairs, sorted by key, one per key."""

    def to_value(self) -> list[Any]:
        return [self.height, self.round, self.block_hash,
                [[key, sig] for key, sig in self.signatures]]

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_votes(cls, votes: list[Vote] | tuple[Vote, ...]) -> CommitCertificate:
        first = votes[0]
        sigs = {v.validator: v.signature for v in votes}
        return cls(first.height, first.round, first.block_hash,
                   tuple(sorted(sigs.items())))

    @classmethod
    def from_value(cls, value: Any) -> CommitCertificate:
        height, round_, block_hash, sigs = codec.expect_tuple(value, 4, "certificate")
        if not isinstance(sigs, tuple) or len(sigs) > MAX_VALIDATORS:
            raise MalformedError("certificate signatures: expected an array")
        pairs = []
        for item in sigs:
            key, sig = codec.expect_tuple(item, 2, "certificate signature")
            pairs.append((PublicKey(codec.expect_bytes(key, "signer", size=PUBLIC_KEY_SIZE)),
                          codec.expect_bytes(sig, "signature", size=SIGNATURE_SIZE)))
        keys = [k for k, _ in pairs]
        if keys != sorted(set(keys)):
            raise MalformedError("certificate signatures must be sorted by key, one per key")
        return cls(
            height=codec.expect_int(height, "certificate height"),
            round=codec.expect_int(round_, "certificate round", hi=MAX_ROUND),
            block_hash=Hash32(codec.expect_bytes(block_hash, "certificate block_hash",
                                                 size=HASH_SIZE)),
            signatures=tuple(pairs),
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        return cls.from_value(codec.decode(data, max_size=64 * 1024))


def validate_certificate(cert: CommitCertificate, validator_set: ValidatorSet, chain_id: str,
                         *, height: int, block_hash: bytes) -> None:
    """Raise InvalidCertificateError unless `cert` proves a quorum for the block.

    Checks: the certificate names this height and block, every signer is in the set
    once, every signature is a valid precommit, and the signers reach quorum.
    """
    if cert.height != height or cert.block_hash != block_hash:
        raise InvalidCertificateError(
            f"certificate is for height {cert.height}, not the block at height {height}")
    signers = [key for key, _ in cert.signatures]
    if len(set(signers)) != len(signers):
        raise InvalidCertificateError("certificate names a validator twice")
    outsiders = [k for k in signers if not validator_set.is_member(k)]
    if outsiders:
        raise InvalidCertificateError(
            f"certificate signer {outsiders[0].hex()[:16]}... is not a validator at {height}")
    if len(signers) < validator_set.quorum:
        raise InvalidCertificateError(
            f"certificate has {len(signers)} signatures, quorum is {validator_set.quorum}")
    message = signing_bytes(DOMAIN_VOTE, chain_id,
                            Vote.payload(VoteKind.PRECOMMIT, cert.height, cert.round,
                                         cert.block_hash))
    for key, sig in cert.signatures:
        if not is_valid_signature(key, message, sig):
            raise InvalidCertificateError(
                f"certificate signature of {key.hex()[:16]}... does not verify")


def validate_vote_signature(vote: Vote, chain_id: str) -> None:
    if not vote.is_signature_valid(chain_id):
        raise BadSignatureError(f"vote by {vote.validator.hex()[:16]}... does not verify")
