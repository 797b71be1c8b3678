"""The genesis ceremony's statements: signed, bound to the chain id, assembled in order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chain.ceremony import (
    DOMAIN_GENESIS_STATEMENT,
    DuplicateValidatorError,
    GenesisStatement,
    InvalidStatementError,
    assemble_genesis,
    make_statement,
    validate_statement,
)
from chain.crypto import DOMAIN_VALIDATOR_ACCEPT, KeyPair, is_valid_signature, signing_bytes
from chain.errors import BadSignatureError, ChainError, WrongChainError
from chain.genesis import ChainParams, Genesis, GenesisAccount

CHAIN_ID = "govchain-main"
KEYS = [KeyPair.from_seed(bytes([40 + i]) * 32) for i in range(4)]
NAMES = ["ministry-of-finance", "ministry-of-justice", "central-bank", "tax-service"]


def statements() -> list[GenesisStatement]:
    return [make_statement(key, CHAIN_ID, name, f"node{i}.gov.example:26656")
            for i, (key, name) in enumerate(zip(KEYS, NAMES, strict=True))]


def altered(statement: GenesisStatement, **changes: Any) -> GenesisStatement:
    doc = json.loads(statement.to_json())
    doc.update(changes)
    return GenesisStatement.from_json(json.dumps(doc), "altered.json")


def test_statement_json_round_trip_and_signature() -> None:
    statement = statements()[0]
    again = GenesisStatement.from_json(statement.to_json(), "s.json")
    assert again == statement
    validate_statement(again, CHAIN_ID)
    message = signing_bytes(DOMAIN_GENESIS_STATEMENT, CHAIN_ID,
                            [KEYS[0].public_key, NAMES[0], "node0.gov.example:26656"])
    assert is_valid_signature(KEYS[0].public_key, message, statement.signature)


def test_assemble_keeps_the_statements_order_and_names() -> None:
    account = GenesisAccount(KEYS[0].address, {"GOV": 5})
    params = ChainParams(block_interval_ms=100)
    genesis = assemble_genesis(statements(), CHAIN_ID, 1_700_000_000_000, (account,), params)
    assert [(v.public_key, v.name) for v in genesis.validator_set.validators] == \
        [(k.public_key, n) for k, n in zip(KEYS, NAMES, strict=True)]
    assert genesis.accounts == (account,) and genesis.params == params
    again = assemble_genesis([GenesisStatement.from_json(s.to_json(), "s") for s in
                              statements()], CHAIN_ID, 1_700_000_000_000, (account,), params)
    assert again.hash == genesis.hash == Genesis.from_json(genesis.to_json()).hash


@pytest.mark.parametrize("change", [
    {"name": "ministry-of-fiance"},            # a typo after signing
    {"p2p": "attacker.example:26656"},         # a substituted address
    {"public_key": KEYS[1].public_key.hex()},  # a substituted key
])
def test_invalid_altered_statement_fails_its_signature(change: dict[str, str]) -> None:
    with pytest.raises(BadSignatureError, match="does not verify"):
        validate_statement(altered(statements()[0], **change), CHAIN_ID)


def test_invalid_statement_for_another_chain() -> None:
    other = make_statement(KEYS[0], "govchain-test", NAMES[0], "node0.gov.example:26656")
    with pytest.raises(WrongChainError, match="govchain-test"):
        validate_statement(other, CHAIN_ID)
    # changing its chain id by hand breaks its signature instead
    with pytest.raises(BadSignatureError):
        validate_statement(altered(other, chain_id=CHAIN_ID), CHAIN_ID)


def test_invalid_signature_of_another_domain_is_refused() -> None:
    """A validator-accept signature over the same payload is no statement."""
    statement = statements()[0]
    payload = [KEYS[0].public_key, NAMES[0], "node0.gov.example:26656"]
    other = KEYS[0].sign(signing_bytes(DOMAIN_VALIDATOR_ACCEPT, CHAIN_ID, payload))
    with pytest.raises(BadSignatureError):
        validate_statement(altered(statement, signature=other.hex()), CHAIN_ID)


def test_invalid_duplicates_are_refused() -> None:
    first = statements()
    again_key = make_statement(KEYS[0], CHAIN_ID, "someone-else", "x.gov.example:1")
    with pytest.raises(DuplicateValidatorError, match="key"):
        assemble_genesis([*first, again_key], CHAIN_ID, 1)
    again_name = make_statement(KeyPair.from_seed(b"\x07" * 32), CHAIN_ID, NAMES[2],
                                "x.gov.example:1")
    with pytest.raises(DuplicateValidatorError, match="name"):
        assemble_genesis([*first, again_name], CHAIN_ID, 1)


def test_invalid_assemble_checks_every_statement() -> None:
    bad = [*statements()[:3], altered(statements()[3], name="tax-servce")]
    with pytest.raises(BadSignatureError, match="tax-servce"):
        assemble_genesis(bad, CHAIN_ID, 1)
    with pytest.raises(WrongChainError):
        assemble_genesis(statements(), "govchain-other", 1)
    with pytest.raises(InvalidStatementError, match="no statement"):
        assemble_genesis([], CHAIN_ID, 1)


@pytest.mark.parametrize("text, match", [
    ("not json", "not JSON"),
    ("[]", "not a genesis statement"),
    ('{"format": "govchain-keystore"}', "not a genesis statement"),
])
def test_invalid_statement_documents(text: str, match: str) -> None:
    with pytest.raises(InvalidStatementError, match=match):
        GenesisStatement.from_json(text, "s.json")


@pytest.mark.parametrize("change, match", [
    ({"version": 2}, "version"),
    ({"public_key": "00"}, "public_key"),
    ({"signature": "zz"}, "signature"),
    ({"name": ""}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"p2p": "no-port"}, "host:port"),
    ({"p2p": "host:99999"}, "host:port"),
    ({"chain_id": ""}, "chain_id"),
    ({"extra": 1}, "unknown field"),
])
def test_invalid_statement_fields(change: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidStatementError, match=match):
        altered(statements()[0], **change)


def test_invalid_statement_arguments_are_refused_before_signing() -> None:
    with pytest.raises(InvalidStatementError, match="host:port"):
        make_statement(KEYS[0], CHAIN_ID, NAMES[0], "node0.gov.example")
    with pytest.raises(ChainError):
        make_statement(KEYS[0], "", NAMES[0], "node0.gov.example:26656")
