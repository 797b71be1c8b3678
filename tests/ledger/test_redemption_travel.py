"""Redemption requests and their settlement; the travel rule between providers."""

from __future__ import annotations

import os

from ledger.accounts import get_balance
from ledger.assets import get_asset_info
from ledger.redemption import get_redemption
from sdk.stablecoin import compute_travel_commitment
from tests.ledger.app_fixtures import HOLDER, ISSUER, STRANGER, App
from tests.ledger.stablecoin_fixtures import CITIZEN, PROVIDER, PROVIDER2, coin, govern

__all__ = ["coin"]


def redeem(app: App, amount: int, reference: str = "BO-2026-0001") -> int:
    result = app.ok(HOLDER, "redeem", {"asset": "KGS", "amount": amount,
                                       "reference": reference})
    return int(result.events[0].attributes["id"])


def test_redeem_burns_and_the_issuer_records_the_payout(coin: App) -> None:
    request = redeem(coin, 40_000)
    assert get_asset_info(coin.state, "KGS")["supply"] == 210_000
    assert get_redemption(coin.state, "KGS", request)["status"] == "pending"
    coin.ok(ISSUER, "redemption_settle", {"asset": "KGS", "request": request,
                                          "outcome": "paid", "note": "wire 889-11"})
    record = get_redemption(coin.state, "KGS", request)
    assert (record["status"], record["note"], record["settled_by"]) == (
        "paid", "wire 889-11", ISSUER.address)
    assert get_balance(coin.state, HOLDER.address, "KGS") == 60_000


def test_a_refused_redemption_returns_the_coins(coin: App) -> None:
    request = redeem(coin, 40_000)
    coin.ok(ISSUER, "redemption_settle", {"asset": "KGS", "request": request,
                                          "outcome": "refused", "note": "sanctions hit"})
    assert get_balance(coin.state, HOLDER.address, "KGS") == 100_000
    assert get_asset_info(coin.state, "KGS")["supply"] == 250_000
    assert get_redemption(coin.state, "KGS", request)["status"] == "refused"


def test_invalid_redemptions(coin: App) -> None:
    coin.assert_fails(HOLDER, "redeem", {"asset": "KGS", "amount": 100_001, "reference": "x"},
                      "insufficient_balance")
    coin.assert_fails(HOLDER, "redeem", {"asset": "KGS", "amount": 1, "reference": ""},
                      "malformed_fields")
    coin.assert_fails(HOLDER, "redeem", {"asset": "KGS", "amount": 0, "reference": "x"},
                      "invalid_amount")
    request = redeem(coin, 1)
    settle = {"asset": "KGS", "request": request, "outcome": "paid", "note": ""}
    coin.assert_fails(STRANGER, "redemption_settle", settle, "missing_role")
    coin.assert_fails(ISSUER, "redemption_settle", {**settle, "request": 99},
                      "unknown_redemption")
    coin.assert_fails(ISSUER, "redemption_settle", {**settle, "outcome": "maybe"},
                      "malformed_fields")
    coin.ok(ISSUER, "redemption_settle", settle)
    coin.assert_fails(ISSUER, "redemption_settle", settle, "redemption_closed")


RECORD = {"originator": "Aibek Sadyrov, acct 40817-01", "originator_vasp": "Exchange A",
          "beneficiary": "Nurlan Usenov, acct 77-3", "beneficiary_vasp": "Exchange B"}


def test_provider_transfers_above_the_threshold_carry_the_commitment(coin: App) -> None:
    govern(coin, "set_travel_rule", {"asset": "KGS", "threshold": 1_000})
    move = {"to": PROVIDER2.address, "asset": "KGS", "amount": 1_000}
    coin.assert_fails(PROVIDER, "transfer", move, "travel_rule_required")
    coin.ok(PROVIDER, "transfer", {**move, "amount": 999})  # below the threshold
    commitment = compute_travel_commitment(RECORD, os.urandom(16))
    result = coin.ok(PROVIDER, "transfer", {**move, "travel_rule": commitment})
    assert result.events[0].attributes["travel_rule"] == commitment
    # A citizen is no provider: the rule is between providers only.
    coin.ok(PROVIDER, "transfer", {**move, "to": CITIZEN.address})


def test_invalid_travel_rule_commitment_of_the_wrong_size(coin: App) -> None:
    move = {"to": PROVIDER2.address, "asset": "KGS", "amount": 1, "travel_rule": b"short"}
    coin.assert_fails(PROVIDER, "transfer", move, "malformed_fields")
    coin.assert_fails(PROVIDER, "transfer", {**move, "memo": b"x" * 32}, "malformed_fields")
