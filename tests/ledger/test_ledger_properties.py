"""Property tests: conservation, sequential nonces, determinism, against a plain model."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.genesis import GenesisAccount
from chain.tx import Transaction
from ledger.errors import TxNotApplicable
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay, StateReader
from tests.ledger.ledger_fixtures import CTX, KEYS, make_genesis, make_world, transfer

SENDERS = KEYS[:5]  # the first three are funded at genesis, the others start unknown
ASSETS = ["GOV", "EUR", "XYZ"]  # XYZ was never created
GENESIS = make_genesis(accounts=(
    GenesisAccount(KEYS[0].address, {"GOV": 500, "EUR": 40}),
    GenesisAccount(KEYS[1].address, {"GOV": 100}),
    GenesisAccount(KEYS[2].address, {"EUR": 1}),
))
SUPPLY = {"GOV": 600, "EUR": 41, "XYZ": 0}
CREATED = {"GOV", "EUR"}  # genesis creates an asset for every symbol it credits


@dataclass(frozen=True)
class Op:
    sender: int
    to: int
    asset: str
    amount: int
    nonce_offset: int = 0


ops = st.builds(Op, sender=st.integers(0, 4), to=st.integers(0, 5),
                asset=st.sampled_from(ASSETS), amount=st.integers(1, 150))


@dataclass
class Model:
    """The obvious dict-based account model the ledger must agree with."""

    balances: dict[tuple[int, str], int] = field(default_factory=dict)
    nonces: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_genesis(cls) -> Model:
        model = cls()
        for account in GENESIS.accounts:
            index = [k.address for k in KEYS].index(account.address)
            model.nonces[index] = 0
            for asset, amount in account.balances.items():
                model.balances[index, asset] = amount
        return model

    def apply(self, op: Op) -> str:
        """The expected code: "not_applicable:<code>", or the result code."""
        if op.sender not in self.nonces:
            return "not_applicable:unknown_account"
        self.nonces[op.sender] += 1
        if op.asset not in CREATED:
            return "unknown_asset"
        if self.balances.get((op.sender, op.asset), 0) < op.amount:
            return "insufficient_balance"
        self.balances[op.sender, op.asset] -= op.amount
        self.balances[op.to, op.asset] = self.balances.get((op.to, op.asset), 0) + op.amount
        self.nonces.setdefault(op.to, 0)
        return "ok"


def to_tx(op: Op, nonce: int) -> Transaction:
    return transfer(SENDERS[op.sender], nonce, KEYS[op.to].address, op.amount, op.asset)


def total_supply(ledger: Ledger, view: StateReader, asset: str) -> int:
    return sum(ledger.get_balance(view, key.address, asset) for key in KEYS)


@settings(max_examples=60, deadline=None)
@given(st.lists(ops, max_size=40))
def test_transfers_agree_with_model_and_conserve_supply(sequence: list[Op]) -> None:
    world = make_world(GENESIS)
    view, model = world.view(), Model.from_genesis()
    for op in sequence:
        expected = model.apply(op)
        tx = to_tx(op, world.ledger.get_nonce(view, SENDERS[op.sender].address))
        try:
            outcome = world.ledger.apply_tx(view, CTX, tx).code
        except TxNotApplicable as e:
            outcome = f"not_applicable:{e.code}"
        assert outcome == expected
        for asset in ASSETS:
            assert total_supply(world.ledger, view, asset) == SUPPLY[asset]
    for index, key in enumerate(KEYS):
        nonce = world.ledger.get_nonce(view, key.address)
        assert nonce == model.nonces.get(index, 0)
        held = {a: model.balances.get((index, a), 0) for a in ASSETS}
        expected_balances = {a: amount for a, amount in held.items() if amount}
        if index in model.nonces:
            assert world.ledger.get_account(view, key.address)["balances"] == expected_balances
        else:
            assert not expected_balances


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(-2, 2)), max_size=30))
def test_only_the_exact_next_nonce_applies(attempts: list[tuple[int, int]]) -> None:
    world = make_world(GENESIS)
    view = world.view()
    applied = [0, 0, 0]
    for sender, offset in attempts:
        nonce = applied[sender] + offset
        if nonce < 0:
            continue
        tx = transfer(SENDERS[sender], nonce, KEYS[3].address, 1)
        before = view.changes()
        if offset == 0:
            world.ledger.apply_tx(view, CTX, tx)
            applied[sender] += 1
        else:
            with pytest.raises(TxNotApplicable) as info:
                world.ledger.apply_tx(view, CTX, tx)
            assert info.value.code == ("nonce_too_low" if offset < 0 else "nonce_too_high")
            assert view.changes() == before
        assert world.ledger.get_nonce(view, SENDERS[sender].address) == applied[sender]


@settings(max_examples=40, deadline=None)
@given(st.lists(ops, max_size=30))
def test_apply_block_is_deterministic(sequence: list[Op]) -> None:
    model = Model.from_genesis()
    txs = []
    for op in sequence:
        if model.apply(op).startswith("not_applicable"):
            continue  # such a transaction can never be in a block
        txs.append(to_tx(op, model.nonces[op.sender] - 1))
    world = make_world(GENESIS)
    outcomes = []
    # A second ledger over a base built in the opposite order must agree byte for byte.
    for ledger, base in [(world.ledger, dict(world.state)),
                         (Ledger(default_modules()), dict(reversed(world.state.items())))]:
        view = Overlay(base)
        results = ledger.apply_block(view, CTX, txs)
        outcomes.append((list(view.changes().items()), [r.to_value() for r in results]))
    assert outcomes[0] == outcomes[1]
