"""Genesis, transfers, events, results, reads and module registration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chain import codec
from chain.errors import MalformedError
from chain.genesis import ChainParams, Genesis
from chain.tx import Transaction
from ledger.accounts import AccountsModule
from ledger.execution import BlockContext, Event, Ledger, TxResult, default_modules
from ledger.interface import TxHandler
from ledger.state import Overlay
from tests.ledger.ledger_fixtures import ALICE, BOB, CAROL, CTX, DAVE, World, make_genesis, transfer


def test_genesis_writes_balances_accounts_and_validators(world: World) -> None:
    ledger = world.ledger
    assert ledger.get_account(world.state, ALICE.address) == {
        "address": ALICE.address, "nonce": 0, "balances": {"EUR": 50, "GOV": 1000}}
    assert ledger.get_account(world.state, CAROL.address) == {
        "address": CAROL.address, "nonce": 0, "balances": {}}
    assert ledger.get_balance(world.state, BOB.address, "GOV") == 200
    assert ledger.get_balance(world.state, BOB.address, "EUR") == 0
    assert ledger.get_nonce(world.state, DAVE.address) == 0
    assert ledger.get_validator_set(world.state) == make_genesis().validator_set
    assert ledger.get_chain_params(world.state) == ChainParams()


def test_genesis_is_deterministic() -> None:
    def genesis_changes() -> dict[bytes, bytes | None]:
        view = Overlay({})
        Ledger(default_modules()).apply_genesis(view, make_genesis())
        return view.changes()
    first, second = genesis_changes(), genesis_changes()
    assert list(first.items()) == list(second.items())


def test_transfer_moves_funds_consumes_nonce_and_emits_event(world: World) -> None:
    view = world.view()
    result = world.ledger.apply_tx(view, CTX, transfer(ALICE, 0, BOB.address, 300))
    assert result == TxResult("ok", "", (Event("transferred", {
        "from": ALICE.address, "to": BOB.address, "asset": "GOV", "amount": 300}),))
    assert world.ledger.get_balance(view, ALICE.address, "GOV") == 700
    assert world.ledger.get_balance(view, BOB.address, "GOV") == 500
    assert world.ledger.get_nonce(view, ALICE.address) == 1
    assert world.ledger.get_nonce(view, BOB.address) == 0


def test_transfer_to_new_account_creates_it(world: World) -> None:
    view = world.view()
    assert world.ledger.apply_tx(view, CTX, transfer(ALICE, 0, DAVE.address, 5, "EUR")).is_ok
    assert world.ledger.get_account(view, DAVE.address) == {
        "address": DAVE.address, "nonce": 0, "balances": {"EUR": 5}}
    # Dave may now send.
    world.ledger.check_admission(view, transfer(DAVE, 0, ALICE.address, 1, "EUR"),
                                 expected_nonce=0)
    assert world.ledger.apply_tx(view, CTX, transfer(DAVE, 0, ALICE.address, 5, "EUR")).is_ok
    assert world.ledger.get_account(view, DAVE.address)["balances"] == {}


def test_emptied_balance_leaves_the_asset_list_and_state(world: World) -> None:
    view = world.view()
    assert world.ledger.apply_tx(view, CTX, transfer(ALICE, 0, BOB.address, 50, "EUR")).is_ok
    assert world.ledger.get_account(view, ALICE.address)["balances"] == {"GOV": 1000}
    assert world.ledger.get_account(view, BOB.address)["balances"] == {"EUR": 50, "GOV": 200}
    assert any(value is None for value in view.changes().values()), "zero balance deleted"


def test_transfer_to_oneself_changes_no_balance(world: World) -> None:
    view = world.view()
    for nonce, amount in enumerate([1, 50]):
        assert world.ledger.apply_tx(
            view, CTX, transfer(ALICE, nonce, ALICE.address, amount, "EUR")).is_ok
    assert world.ledger.get_account(view, ALICE.address) == {
        "address": ALICE.address, "nonce": 2, "balances": {"EUR": 50, "GOV": 1000}}


def test_failed_tx_does_not_block_the_next_nonce(world: World) -> None:
    txs = [transfer(BOB, 0, ALICE.address, 10_000), transfer(BOB, 1, ALICE.address, 10)]
    view = world.view()
    results = world.ledger.apply_block(view, CTX, txs)
    assert [r.code for r in results] == ["insufficient_balance", "ok"]
    assert world.ledger.get_balance(view, BOB.address, "GOV") == 190
    assert world.ledger.get_nonce(view, BOB.address) == 2


def test_apply_block_commits_into_the_view(world: World) -> None:
    view = world.view()
    world.ledger.apply_block(view, CTX, [transfer(ALICE, 0, CAROL.address, 1)])
    assert world.ledger.get_balance(view, CAROL.address, "GOV") == 1
    assert world.ledger.apply_block(view, CTX, []) == []


def test_tx_result_round_trips_through_canonical_bytes() -> None:
    result = TxResult("ok", "", (Event("transferred", {"from": b"\x01" * 20, "asset": "GOV",
                                                       "amount": 7}),))
    failed = TxResult("insufficient_balance", "needs 5", ())
    for item in (result, failed):
        assert TxResult.from_value(codec.decode(codec.encode(item.to_value()))) == item


@pytest.mark.parametrize("value", [
    ("ok", "", (("e", {"x": None}),)),
    ("ok", "", (("e", {"x": True}),)),
    ("ok", "", "not-events"),
    ("ok", ""),
])
def test_invalid_tx_result_value_is_refused(value: Any) -> None:
    with pytest.raises(MalformedError):
        TxResult.from_value(value)


def test_block_context_is_frozen() -> None:
    with pytest.raises(AttributeError):
        CTX.height = 2  # type: ignore[misc]


class _NotaryModule:
    """A minimal second module, as registry or governance modules will plug in."""

    name = "notary"

    def __init__(self) -> None:
        self.tx_types: Mapping[str, TxHandler] = {"notarize": TxHandler(
            validate_fields=lambda fields: None, apply=self._apply)}

    def _apply(self, view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
        view.put(b"notary/v1/" + tx.sender, ctx.height.to_bytes(8, "big"))
        return [Event("notarized", {"by": tx.sender, "height": ctx.height})]

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        view.put(b"notary/v1/fee", codec.encode(genesis.app_state.get(self.name, {})))


def test_modules_plug_in_with_their_own_types_and_genesis() -> None:
    ledger = Ledger([AccountsModule(), _NotaryModule()])
    assert ledger.tx_types == ("notarize", "transfer")
    view = Overlay({})
    ledger.apply_genesis(view, make_genesis(app_state={"notary": {"x": 1}}))
    tx = Transaction(CTX.chain_id, ALICE.address, 0, "notarize", {}).with_signature(ALICE)
    result = ledger.apply_tx(view, CTX, tx)
    assert result.events == (Event("notarized", {"by": ALICE.address, "height": 1}),)
    assert view.get(b"notary/v1/" + ALICE.address) == (1).to_bytes(8, "big")


def test_two_modules_may_not_own_one_tx_type() -> None:
    with pytest.raises(ValueError, match="transfer"):
        Ledger([AccountsModule(), _Dup()])


class _Dup:
    name = "dup"
    tx_types = AccountsModule.tx_types

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        pass
