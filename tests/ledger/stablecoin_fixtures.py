"""The gold-backed stablecoin seeded with identity tiers, two licensed providers and
helpers to pass governance actions (four validators, quorum three)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chain.crypto import KeyPair
from chain.genesis import Genesis, GenesisAccount
from tests.ledger.app_fixtures import VALIDATORS, App, make_app, make_app_genesis

PROVIDER = KeyPair.from_seed(bytes([77]) * 32)
"""A licensed provider: kyc of KGS."""
PROVIDER2 = KeyPair.from_seed(bytes([78]) * 32)
CITIZEN = KeyPair.from_seed(bytes([79]) * 32)
SAVINGS = KeyPair.from_seed(bytes([90]) * 32)
"""The citizen's linked account (a bank account in the digital euro's terms)."""

BASIC, VERIFIED, BLOCKED = 1, 2, 3
TIERS = [
    {"tier": BASIC, "balance_limit": 200_000, "payment_limit": 50_000, "daily_limit": 80_000},
    {"tier": VERIFIED, "balance_limit": 10_000_000, "payment_limit": 5_000_000,
     "daily_limit": 5_000_000},
    {"tier": BLOCKED, "balance_limit": 0, "payment_limit": 0, "daily_limit": 0},
]
"""KGS tiers in genesis; the default is BASIC (holders at genesis are counted there)."""


def make_stablecoin_genesis() -> Genesis:
    base = make_app_genesis()
    app_state = dict(base.app_state)
    app_state["roles"] = {"grants": [
        *base.app_state["roles"]["grants"],
        {"role": "kyc", "scope": "KGS", "address": PROVIDER.address.hex()},
        {"role": "kyc", "scope": "KGS", "address": PROVIDER2.address.hex()}]}
    app_state["tiers"] = {"assets": {"KGS": {"default": BASIC, "tiers": TIERS}}}
    accounts = (*base.accounts, GenesisAccount(PROVIDER.address, {"KGS": 150_000}),
                GenesisAccount(PROVIDER2.address, {}), GenesisAccount(CITIZEN.address, {}),
                GenesisAccount(SAVINGS.address, {}))
    return dataclasses.replace(base, accounts=accounts, app_state=app_state)


def govern(app: App, action: str, args: dict[str, Any]) -> list[Any]:
    """Pass a governance action with three of the four validators; its events."""
    proposed = app.ok(VALIDATORS[0], "propose", {"action": action, "args": args,
                                                "expiry_height": app.height + 100})
    pid = proposed.events[0].attributes["id"]
    app.ok(VALIDATORS[1], "vote", {"proposal": pid})
    result = app.ok(VALIDATORS[2], "vote", {"proposal": pid})
    kinds = [e.kind for e in result.events]
    assert "proposal_passed" in kinds, result.events
    return list(result.events[2:])


@pytest.fixture
def coin() -> App:
    return make_app(make_stablecoin_genesis())
