"""Genesis documents: JSON round trip, stable hash, and clear refusals."""

import json

import pytest

from chain.crypto import KeyPair
from chain.errors import InvalidGenesisError
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.vote import Validator, ValidatorSet

KEY = KeyPair.from_seed(b"\x01" * 32)


def make_genesis():
    return Genesis("gen-test", 1_700_000_000_000,
                   ValidatorSet((Validator(KEY.public_key, "Ministry of Finance"),)),
                   (GenesisAccount(KEY.address, {"GOV": 100}),), ChainParams())


def test_json_round_trip_keeps_hash():
    genesis = make_genesis()
    again = Genesis.from_json(genesis.to_json())
    assert again.hash == genesis.hash
    assert again.validator_set.validators[0].name == "Ministry of Finance"


def test_hash_changes_with_content():
    doc = json.loads(make_genesis().to_json())
    doc["accounts"][0]["balances"]["GOV"] = 101
    assert Genesis.from_json(json.dumps(doc)).hash != make_genesis().hash


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(extra=1), "unknown genesis field"),
    (lambda d: d["params"].update(block_interval_ms=0), "positive"),
    (lambda d: d["params"].update(bogus=1), "unknown chain parameter"),
    (lambda d: d["validators"][0].update(public_key="00"), "32 bytes"),
    (lambda d: d["accounts"][0].update(address="00"), "20 bytes"),
    (lambda d: d["accounts"][0]["balances"].update(GOV=-1), "whole number"),
    (lambda d: d.pop("chain_id"), "incomplete"),
    (lambda d: d.update(validators=[]), "validator"),
])
def test_invalid_genesis_rejected(mutate, match):
    doc = json.loads(make_genesis().to_json())
    mutate(doc)
    with pytest.raises(InvalidGenesisError, match=match):
        Genesis.from_json(json.dumps(doc))


def test_invalid_json_rejected():
    with pytest.raises(InvalidGenesisError, match="JSON"):
        Genesis.from_json("{not json")
