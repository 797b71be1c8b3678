"""Shared helpers for ledger tests: a small funded chain and transaction builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.crypto import KeyPair, PublicKey
from chain.genesis import Genesis, GenesisAccount
from chain.tx import Transaction, make_transaction
from chain.vote import Validator, ValidatorSet
from ledger.execution import BlockContext, Ledger, default_modules
from ledger.state import Overlay

CHAIN_ID = "test-chain"
KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(6)]
ALICE, BOB, CAROL, DAVE = KEYS[0], KEYS[1], KEYS[2], KEYS[3]
VALIDATOR_KEYS = [KeyPair.from_seed(bytes([50 + i]) * 32) for i in range(2)]
"""The genesis validators; kept apart from KEYS since each validator gets an account."""
CTX = BlockContext(CHAIN_ID, height=1, timestamp_ms=1_700_000_000_000,
                   proposer=PublicKey(VALIDATOR_KEYS[1].public_key))


def make_genesis(**overrides: Any) -> Genesis:
    """Alice 1000 GOV + 50 EUR, Bob 200 GOV, Carol 0 GOV (exists, holds nothing)."""
    values: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "genesis_time_ms": 1_600_000_000_000,
        "validator_set": ValidatorSet((Validator(VALIDATOR_KEYS[0].public_key, "ministry-a"),
                                       Validator(VALIDATOR_KEYS[1].public_key, "ministry-b"))),
        "accounts": (GenesisAccount(ALICE.address, {"GOV": 1000, "EUR": 50}),
                     GenesisAccount(BOB.address, {"GOV": 200}),
                     GenesisAccount(CAROL.address, {"GOV": 0})),
    }
    values.update(overrides)
    return Genesis(**values)


def transfer(key: KeyPair, nonce: int, to: bytes, amount: Any, asset: Any = "GOV",
             **extra: Any) -> Transaction:
    fields = {"to": to, "asset": asset, "amount": amount, **extra}
    return make_transaction(CHAIN_ID, key, nonce, "transfer", fields)


@dataclass
class World:
    """A ledger and the committed state right after genesis."""

    ledger: Ledger
    state: dict[bytes, bytes]

    def view(self) -> Overlay:
        """A fresh overlay over the genesis state."""
        return Overlay(self.state)


def make_world(genesis: Genesis | None = None) -> World:
    ledger = Ledger(default_modules())
    view = Overlay({})
    ledger.apply_genesis(view, genesis or make_genesis())
    state = {key: value for key, value in view.changes().items() if value is not None}
    return World(ledger, state)
