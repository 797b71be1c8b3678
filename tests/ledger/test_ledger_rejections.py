"""Every rejection code: at admission, and at execution where it can occur.

A rule failure at execution consumes the sender's nonce and changes nothing else; a
transaction that is not applicable changes nothing at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from chain import codec
from chain.genesis import GenesisAccount
from chain.tx import Transaction, make_transaction
from ledger.accounts import AccountRecord, get_account_record
from ledger.errors import LedgerError, TxNotApplicable
from ledger.fields import MAX_AMOUNT
from ledger.keys import get_account_key, get_balance_key
from ledger.state import Overlay
from tests.ledger.ledger_fixtures import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    CTX,
    DAVE,
    World,
    make_genesis,
    make_world,
    transfer,
)


def nonce_only_change(world: World, address: bytes, new_nonce: int) -> dict[bytes, Any]:
    """The changes a failed transaction leaves: its sender's record with the nonce bumped."""
    record = get_account_record(world.state, address)
    assert record is not None
    bumped = AccountRecord(new_nonce, record.assets)
    return {get_account_key(address): codec.encode(bumped.to_value())}


def assert_rule_failure(world: World, tx: Transaction, code: str) -> str:
    """Execution fails with `code`, consumes the nonce and leaves all else unchanged."""
    view = world.view()
    result = world.ledger.apply_tx(view, CTX, tx)
    assert (result.code, result.events) == (code, ())
    assert view.changes() == nonce_only_change(world, tx.sender, tx.nonce + 1)
    return result.message


def assert_not_applicable(world: World, tx: Transaction, code: str) -> None:
    view = world.view()
    with pytest.raises(TxNotApplicable) as info:
        world.ledger.apply_tx(view, CTX, tx)
    assert info.value.code == code
    assert view.changes() == {}


def assert_refused_at_admission(world: World, tx: Transaction, code: str,
                                expected_nonce: int = 0) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        world.ledger.check_admission(world.state, tx, expected_nonce=expected_nonce)
    assert info.value.code == code
    return info.value


# nonce_too_low / nonce_too_high


def test_invalid_nonce_too_low_at_admission(world: World) -> None:
    tx = transfer(ALICE, 2, BOB.address, 1)
    assert_refused_at_admission(world, tx, "nonce_too_low", expected_nonce=3)
    world.ledger.check_admission(world.state, tx, expected_nonce=2)


def test_nonce_ahead_is_admitted_for_the_mempool_to_hold(world: World) -> None:
    world.ledger.check_admission(world.state, transfer(ALICE, 7, BOB.address, 1),
                                 expected_nonce=0)


def test_invalid_nonce_too_low_at_execution(world: World) -> None:
    view = world.view()
    assert world.ledger.apply_tx(view, CTX, transfer(ALICE, 0, BOB.address, 1)).is_ok
    before = view.changes()
    with pytest.raises(TxNotApplicable) as info:
        world.ledger.apply_tx(view, CTX, transfer(ALICE, 0, BOB.address, 1))
    assert info.value.code == "nonce_too_low"
    assert view.changes() == before


def test_invalid_nonce_too_high_at_execution(world: World) -> None:
    assert_not_applicable(world, transfer(ALICE, 1, BOB.address, 1), "nonce_too_high")


# insufficient_balance / balance_overflow


def test_invalid_insufficient_balance(world: World) -> None:
    message = assert_rule_failure(world, transfer(BOB, 0, ALICE.address, 201),
                                  "insufficient_balance")
    assert "200" in message and "201" in message


def test_invalid_insufficient_balance_of_asset_never_held(world: World) -> None:
    assert_rule_failure(world, transfer(BOB, 0, ALICE.address, 1, asset="EUR"),
                        "insufficient_balance")


def test_invalid_balance_overflow() -> None:
    world = make_world()
    view = world.view()
    view.put(get_balance_key(BOB.address, "GOV"), codec.encode(MAX_AMOUNT))
    world.state.update({k: v for k, v in view.changes().items() if v is not None})
    assert_rule_failure(world, transfer(ALICE, 0, BOB.address, 1), "balance_overflow")


# unknown_asset


def test_invalid_unknown_asset_at_admission(world: World) -> None:
    tx = transfer(ALICE, 0, BOB.address, 1, asset="NOPE")
    error = assert_refused_at_admission(world, tx, "unknown_asset")
    assert "'NOPE'" in error.message


def test_invalid_unknown_asset_at_execution_consumes_only_the_nonce(world: World) -> None:
    # Not insufficient_balance: nobody can hold an asset that does not exist.
    tx = transfer(ALICE, 0, BOB.address, 1, asset="NOPE")
    assert "'NOPE'" in assert_rule_failure(world, tx, "unknown_asset")


def test_invalid_unknown_asset_of_an_unknown_sender_names_the_sender(world: World) -> None:
    tx = transfer(DAVE, 0, ALICE.address, 1, asset="NOPE")
    assert_refused_at_admission(world, tx, "unknown_account")


def test_asset_nobody_holds_is_admitted_and_fails_on_balance() -> None:
    world = make_world(make_genesis(app_state={"assets": {"assets": [
        {"symbol": "XYZ", "name": "created, never minted"}]}}))
    tx = transfer(ALICE, 0, BOB.address, 1, asset="XYZ")
    world.ledger.check_admission(world.state, tx, expected_nonce=0)
    assert_rule_failure(world, tx, "insufficient_balance")


# unknown_account


def test_invalid_unknown_account_at_admission(world: World) -> None:
    assert_refused_at_admission(world, transfer(DAVE, 0, ALICE.address, 1), "unknown_account")


def test_invalid_unknown_account_at_execution(world: World) -> None:
    assert_not_applicable(world, transfer(DAVE, 0, ALICE.address, 1), "unknown_account")


def test_invalid_unknown_account_read(world: World) -> None:
    with pytest.raises(LedgerError) as info:
        world.ledger.get_account(world.state, DAVE.address)
    assert info.value.code == "unknown_account"


# unknown_tx_type


def test_invalid_unknown_tx_type_at_admission(world: World) -> None:
    tx = make_transaction(CHAIN_ID, ALICE, 0, "teleport", {"amount": 5})
    error = assert_refused_at_admission(world, tx, "unknown_tx_type")
    assert "'teleport'" in error.message and "transfer" in error.message


def test_invalid_unknown_tx_type_at_execution_consumes_nonce(world: World) -> None:
    tx = make_transaction(CHAIN_ID, ALICE, 0, "teleport", {"amount": 5})
    assert_rule_failure(world, tx, "unknown_tx_type")


# malformed_fields


MALFORMED = [
    ("to", lambda: {"asset": "GOV", "amount": 1}),
    ("memo", lambda: {"to": BOB.address, "asset": "GOV", "amount": 1, "memo": "hi"}),
    ("to", lambda: {"to": BOB.address[:19], "asset": "GOV", "amount": 1}),
    ("to", lambda: {"to": BOB.address.hex(), "asset": "GOV", "amount": 1}),
    ("asset", lambda: {"to": BOB.address, "asset": b"GOV", "amount": 1}),
    ("asset", lambda: {"to": BOB.address, "asset": "", "amount": 1}),
    ("asset", lambda: {"to": BOB.address, "asset": "G/OV", "amount": 1}),
    ("asset", lambda: {"to": BOB.address, "asset": "A" * 33, "amount": 1}),
    ("amount", lambda: {"to": BOB.address, "asset": "GOV", "amount": "1"}),
    ("amount", lambda: {"to": BOB.address, "asset": "GOV", "amount": True}),
    ("amount", lambda: {"to": BOB.address, "asset": "GOV"}),
]


@pytest.mark.parametrize(("field", "make_fields"), MALFORMED)
def test_invalid_malformed_fields_at_admission(world: World, field: str,
                                                make_fields: Any) -> None:
    tx = make_transaction(CHAIN_ID, ALICE, 0, "transfer", make_fields())
    error = assert_refused_at_admission(world, tx, "malformed_fields")
    assert repr(field) in error.message


@pytest.mark.parametrize(("field", "make_fields"), MALFORMED)
def test_invalid_malformed_fields_at_execution(world: World, field: str,
                                               make_fields: Any) -> None:
    tx = make_transaction(CHAIN_ID, ALICE, 0, "transfer", make_fields())
    assert repr(field) in assert_rule_failure(world, tx, "malformed_fields")


# invalid_amount


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1])
def test_invalid_amount(world: World, amount: int) -> None:
    tx = Transaction(CHAIN_ID, ALICE.address, 0, "transfer",
                     {"to": BOB.address, "asset": "GOV", "amount": amount})
    tx = tx.with_signature(ALICE) if amount <= MAX_AMOUNT else _sign_unencodable(tx)
    assert_refused_at_admission(world, tx, "invalid_amount")
    assert_rule_failure(world, tx, "invalid_amount")


def _sign_unencodable(tx: Transaction) -> Transaction:
    # An amount beyond 64 bits cannot be encoded, so cannot be signed; the ledger must
    # still refuse it if handed one in memory.
    from chain.tx import Signature
    return Transaction(tx.chain_id, tx.sender, tx.nonce, tx.tx_type, tx.fields,
                       (Signature(ALICE.public_key, bytes(64)),))


# unauthorized


def _unauthorized_txs() -> list[Transaction]:
    wrong_key = make_transaction(CHAIN_ID, BOB, 0, "transfer",
                                 {"to": CAROL.address, "asset": "GOV", "amount": 1},
                                 sender=ALICE.address)
    two_keys = transfer(ALICE, 0, CAROL.address, 1).with_signature(BOB)
    unsigned = Transaction(CHAIN_ID, ALICE.address, 0, "transfer",
                           {"to": CAROL.address, "asset": "GOV", "amount": 1})
    return [wrong_key, two_keys, unsigned]


@pytest.mark.parametrize("tx", _unauthorized_txs(), ids=["wrong-key", "two-keys", "unsigned"])
def test_invalid_unauthorized(world: World, tx: Transaction) -> None:
    assert_refused_at_admission(world, tx, "unauthorized")
    assert_not_applicable(world, tx, "unauthorized")


# wrong_chain


def test_invalid_wrong_chain_at_execution(world: World) -> None:
    tx = make_transaction("other-chain", ALICE, 0, "transfer",
                          {"to": BOB.address, "asset": "GOV", "amount": 1})
    assert_not_applicable(world, tx, "wrong_chain")


# apply_block names the offending transaction and keeps nothing


def test_invalid_block_names_the_index_and_changes_nothing(world: World) -> None:
    txs = [transfer(ALICE, 0, BOB.address, 1), transfer(ALICE, 1, BOB.address, 1),
           transfer(ALICE, 3, BOB.address, 1)]
    view = world.view()
    with pytest.raises(TxNotApplicable) as info:
        world.ledger.apply_block(view, CTX, txs)
    assert (info.value.code, info.value.index) == ("nonce_too_high", 2)
    assert "transaction 2" in info.value.message
    assert view.changes() == {}


# invalid_genesis


@pytest.mark.parametrize("overrides", [
    {"accounts": (GenesisAccount(ALICE.address, {"GOV": 1}),
                  GenesisAccount(ALICE.address, {"GOV": 2}))},
    {"accounts": (GenesisAccount(ALICE.address, {"G OV": 1}),)},
    {"accounts": (GenesisAccount(ALICE.address, {"GOV": -1}),)},
    {"accounts": (GenesisAccount(ALICE.address, {"GOV": MAX_AMOUNT}),
                  GenesisAccount(BOB.address, {"GOV": 1}))},
    {"app_state": {"stablecoin": {}}},
    {"app_state": {"accounts": {"fee": 1}}},
], ids=["duplicate", "bad-symbol", "negative", "supply-overflow", "unknown-module",
        "accounts-settings"])
def test_invalid_genesis(overrides: dict[str, Any]) -> None:
    with pytest.raises(LedgerError) as info:
        make_world(make_genesis(**overrides))
    assert info.value.code == "invalid_genesis"


# corrupt_state


def test_invalid_corrupt_state_missing_validator_set(world: World) -> None:
    with pytest.raises(LedgerError) as info:
        world.ledger.get_validator_set({})
    assert info.value.code == "corrupt_state"


def test_invalid_corrupt_state_bad_account_record(world: World) -> None:
    view = Overlay(world.state)
    view.put(get_account_key(ALICE.address), codec.encode({"nonce": 1}))
    with pytest.raises(LedgerError) as info:
        world.ledger.get_nonce(view, ALICE.address)
    assert info.value.code == "corrupt_state"


def test_invalid_corrupt_state_propagates_from_execution(world: World) -> None:
    view = Overlay(world.state)
    view.put(get_balance_key(BOB.address, "GOV"), b"\xc1")  # not msgpack
    with pytest.raises(LedgerError) as info:
        world.ledger.apply_tx(view, CTX, transfer(ALICE, 0, BOB.address, 1))
    assert info.value.code == "corrupt_state"
    assert not isinstance(info.value, TxNotApplicable)
