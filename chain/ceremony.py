"""The genesis ceremony: ministries that never share private keys agree on one genesis.

Each ministry signs a statement of its validator key, name and p2p address for one
chain id; a coordinator assembles the genesis from the statements, and every
ministry compares the genesis hash before it starts. Pure: no I/O; it must never
accept a statement whose signature, chain id or uniqueness it has not checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.crypto import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    KeyPair,
    PublicKey,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import BadSignatureError, ChainError, WrongChainError
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.vote import MAX_VALIDATORS, Validator, ValidatorSet

DOMAIN_GENESIS_STATEMENT = "govchain/genesis-statement/v1"
"""The domain of a ministry's signature over its genesis statement."""
STATEMENT_FORMAT = "govchain-genesis-statement"
STATEMENT_VERSION = 1
MAX_NAME_CHARS = 64
"""As for a validator added by governance (ledger.governance.MAX_VALIDATOR_NAME)."""
MAX_CHAIN_ID_CHARS = 64
FIELDS = frozenset({"format", "version", "chain_id", "name", "public_key", "p2p", "signature"})


class InvalidStatementError(ChainError):
    """Raised when a genesis statement is not a well-formed statement document."""

    code = "invalid_statement"


class DuplicateValidatorError(InvalidStatementError):
    """Raised when two statements name the same validator key or the same name."""

    code = "duplicate_validator"


def _validate_host_port(text: str) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise InvalidStatementError(f"p2p address {text!r} is not host:port "
                                    "(port 1 to 65535)")


@dataclass(frozen=True, slots=True)
class GenesisStatement:
    """One ministry's signed word: "this key, under this name, at this address"."""

    chain_id: str
    """The chain the statement is for; the signature is bound to it."""
    public_key: PublicKey
    """The ministry's validator public key."""
    name: str
    """The validator's name in the genesis validator set."""
    p2p_address: str
    """host:port where the ministry's node accepts peers."""
    signature: bytes
    """The key's signature over get_signing_bytes()."""

    def __post_init__(self) -> None:
        if not 0 < len(self.chain_id) <= MAX_CHAIN_ID_CHARS:
            raise InvalidStatementError(f"chain_id must be 1 to {MAX_CHAIN_ID_CHARS} "
                                        "characters")
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidStatementError(f"public_key must be {PUBLIC_KEY_SIZE} bytes")
        if not 0 < len(self.name) <= MAX_NAME_CHARS or self.name != self.name.strip():
            raise InvalidStatementError(f"name must be 1 to {MAX_NAME_CHARS} characters, "
                                        "without leading or trailing spaces")
        _validate_host_port(self.p2p_address)
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidStatementError(f"signature must be {SIGNATURE_SIZE} bytes")

    def get_signing_bytes(self) -> bytes:
        return get_statement_signing_bytes(self.chain_id, self.public_key, self.name,
                                           self.p2p_address)

    def to_json(self) -> str:
        return json.dumps({
            "format": STATEMENT_FORMAT, "version": STATEMENT_VERSION,
            "chain_id": self.chain_id, "name": self.name,
            "public_key": self.public_key.hex(), "p2p": self.p2p_address,
            "signature": self.signature.hex()}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> GenesisStatement:
        """Parse a statement document (its signature is checked by validate_statement)."""
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InvalidStatementError(f"{where} is not JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != STATEMENT_FORMAT:
            raise InvalidStatementError(f"{where} is not a genesis statement")
        unknown = set(doc) - FIELDS
        if unknown:
            raise InvalidStatementError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        if doc.get("version") != STATEMENT_VERSION:
            raise InvalidStatementError(f"{where}: statement version {doc.get('version')!r} "
                                        f"is not supported (this node reads "
                                        f"{STATEMENT_VERSION})")
        try:
            return cls(chain_id=_text(doc, "chain_id"),
                       public_key=PublicKey(_hex(doc, "public_key")),
                       name=_text(doc, "name"), p2p_address=_text(doc, "p2p"),
                       signature=_hex(doc, "signature"))
        except InvalidStatementError as e:
            raise InvalidStatementError(f"{where}: {e.message}") from e


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise InvalidStatementError(f"{name} must be text")
    return value


def _hex(doc: dict[str, Any], name: str) -> bytes:
    try:
        return bytes.fromhex(_text(doc, name))
    except ValueError as e:
        raise InvalidStatementError(f"{name} must be hex") from e


def get_statement_signing_bytes(chain_id: str, public_key: bytes, name: str,
                                p2p_address: str) -> bytes:
    """What a ministry signs: its key, name and address, bound to the chain id."""
    return signing_bytes(DOMAIN_GENESIS_STATEMENT, chain_id, [public_key, name, p2p_address])


def make_statement(key: KeyPair, chain_id: str, name: str, p2p_address: str
                   ) -> GenesisStatement:
    """The statement of `key`, signed by it (checked before anything is signed)."""
    unsigned = GenesisStatement(chain_id, key.public_key, name, p2p_address,
                                bytes(SIGNATURE_SIZE))
    return GenesisStatement(chain_id, key.public_key, name, p2p_address,
                            key.sign(unsigned.get_signing_bytes()))


def validate_statement(statement: GenesisStatement, chain_id: str) -> None:
    """Refuse a statement for another chain, or one its key did not sign as it reads."""
    if statement.chain_id != chain_id:
        raise WrongChainError(f"the statement of {statement.name!r} is for chain "
                              f"{statement.chain_id!r}, not {chain_id!r}")
    if not is_valid_signature(statement.public_key, statement.get_signing_bytes(),
                              statement.signature):
        raise BadSignatureError(
            f"the statement of {statement.name!r} ({statement.public_key.hex()}) does not "
            "verify: it was altered after signing, or signed by another key")


def assemble_genesis(statements: Sequence[GenesisStatement], chain_id: str,
                     genesis_time_ms: int, accounts: tuple[GenesisAccount, ...] = (),
                     params: ChainParams | None = None) -> Genesis:
    """The genesis whose validators are the statements' keys, in the order given."""
    if not statements:
        raise InvalidStatementError("no statement given: a genesis needs validators")
    if len(statements) > MAX_VALIDATORS:
        raise InvalidStatementError(f"a validator set has at most {MAX_VALIDATORS} members")
    keys: set[bytes] = set()
    names: set[str] = set()
    for statement in statements:
        validate_statement(statement, chain_id)
        if statement.public_key in keys:
            raise DuplicateValidatorError(f"key {statement.public_key.hex()} is stated twice")
        if statement.name in names:
            raise DuplicateValidatorError(f"name {statement.name!r} is stated twice")
        keys.add(statement.public_key)
        names.add(statement.name)
    validators = tuple(Validator(s.public_key, s.name) for s in statements)
    return Genesis(chain_id=chain_id, genesis_time_ms=genesis_time_ms,
                   validator_set=ValidatorSet(validators), accounts=accounts,
                   params=params or ChainParams())
