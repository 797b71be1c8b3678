"""Gold attestations: the auditor's report signature, the bar list, expiry of minting."""

from __future__ import annotations

from typing import Any

import pytest

from chain.crypto import KeyPair
from ledger.assets import get_asset_info
from ledger.reserve import is_attestation_expired
from sdk.stablecoin import (
    Bar,
    BarListError,
    build_attestation,
    compute_bar_proof,
    compute_bar_root,
    verify_bar_proof,
)
from tests.ledger.app_fixtures import AUDITOR, CHAIN_ID, ISSUER, OTHER, REPORT, T0, VALIDATORS, App
from tests.ledger.stablecoin_fixtures import coin, govern

__all__ = ["coin"]
REPORT_KEY = KeyPair.from_seed(b"\x42" * 32)
"""The audit firm's report-signing key (not its chain account's key)."""
RATE = 2
"""KGS units per mg of fine gold."""
BARS = [Bar("AB1234", "Valcambi", 12_441_000, 9999, "Bishkek-1"),
        Bar("AB1235", "Valcambi", 12_500_000, 9995, "Bishkek-1"),
        Bar("K-0007", "Kyrgyzaltyn", 400_000_000 // 32, 9999, "Bishkek-2")]
FINE = sum(b.fine_weight_mg for b in BARS)
HOUR_MS = 3_600_000


def gold(app: App, *, key: KeyPair = REPORT_KEY, stated: int = FINE, offset_ms: int = 0,
         **changes: Any) -> dict[str, Any]:
    fields = build_attestation(CHAIN_ID, "KGS", BARS, stated_fine_weight_mg=stated,
                               units_per_fine_mg=RATE, report_hash=REPORT,
                               timestamp_ms=T0 + (app.height + 1) * 1000 + offset_ms,
                               report_key=key)
    return {**fields, **changes}


def register(app: App) -> None:
    govern(app, "register_auditor_key", {"asset": "KGS", "auditor": AUDITOR.address,
                                         "public_key": REPORT_KEY.public_key,
                                         "registered": True})
    govern(app, "set_reserve_policy", {"asset": "KGS", "max_age_ms": HOUR_MS,
                                       "units_per_fine_mg": RATE})


def test_gold_attestation_names_the_bar_list(coin: App) -> None:
    register(coin)
    result = coin.ok(AUDITOR, "attest", gold(coin))
    attributes = result.events[0].attributes
    assert attributes["bar_root"] == compute_bar_root(BARS)
    assert attributes["fine_weight_mg"] == FINE and attributes["bar_count"] == 3
    info = get_asset_info(coin.state, "KGS")
    assert info["reserve"] == FINE * RATE
    assert info["latest_attestation"]["bar_root"] == compute_bar_root(BARS)


def test_invalid_attestation_signed_by_an_unregistered_key(coin: App) -> None:
    register(coin)
    coin.assert_fails(AUDITOR, "attest", gold(coin, key=KeyPair.from_seed(b"\x43" * 32)),
                      "unregistered_auditor_key")


def test_invalid_attestation_whose_figures_differ_from_the_signed_report(coin: App) -> None:
    register(coin)
    fields = gold(coin)
    coin.assert_fails(AUDITOR, "attest", {**fields, "reserve": fields["reserve"] + 2,
                                          "fine_weight_mg": FINE + 1}, "bad_report_signature")


def test_invalid_attestation_dated_in_the_future(coin: App) -> None:
    register(coin)
    coin.assert_fails(AUDITOR, "attest", gold(coin, offset_ms=1), "stale_attestation")


def test_invalid_bar_list_total_differs_from_the_stated_weight(coin: App) -> None:
    with pytest.raises(BarListError, match="states"):
        gold(coin, stated=FINE - 1)


def test_invalid_attestation_without_gold_fields_under_a_policy(coin: App) -> None:
    register(coin)
    coin.assert_fails(AUDITOR, "attest", {"asset": "KGS", "reserve": 5, "report_hash": REPORT,
                                          "timestamp_ms": T0 + coin.height * 1000},
                      "attestation_incomplete")
    fields = gold(coin)
    del fields["bar_count"]
    coin.assert_fails(AUDITOR, "attest", fields, "attestation_incomplete")


def test_invalid_reserve_not_backed_by_the_stated_gold(coin: App) -> None:
    register(coin)
    govern(coin, "set_reserve_policy", {"asset": "KGS", "max_age_ms": HOUR_MS,
                                        "units_per_fine_mg": RATE + 1})
    coin.assert_fails(AUDITOR, "attest", gold(coin), "reserve_weight_mismatch")


def test_minting_stops_when_the_attestation_expires_and_resumes_with_a_new_one(
        coin: App) -> None:
    register(coin)
    coin.ok(AUDITOR, "attest", gold(coin))
    attested_ms = T0 + coin.height * 1000
    mint = {"asset": "KGS", "to": OTHER.address, "amount": 10}
    coin.ok(ISSUER, "mint", mint)
    coin.height = (attested_ms + HOUR_MS - T0) // 1000 - 1  # the next block is at the limit
    coin.ok(ISSUER, "mint", mint)
    latest = get_asset_info(coin.state, "KGS")["latest_attestation"]
    assert is_attestation_expired(coin.state, "KGS", latest, attested_ms + HOUR_MS) is False
    assert is_attestation_expired(coin.state, "KGS", latest, attested_ms + HOUR_MS + 1)
    coin.assert_fails(ISSUER, "mint", mint, "attestation_expired")
    coin.ok(AUDITOR, "attest", gold(coin))
    coin.ok(ISSUER, "mint", mint)


def test_bar_proof_shows_a_bar_in_the_attested_list() -> None:
    root = compute_bar_root(BARS)
    for index in range(len(BARS)):
        assert verify_bar_proof(compute_bar_proof(BARS, index), root)
    proof = compute_bar_proof(BARS, 1)
    assert not verify_bar_proof({**proof, "bar": {**proof["bar"], "weight_mg": 1}}, root)
    assert not verify_bar_proof({**proof, "index": 0}, root)
    assert not verify_bar_proof({"bar": "junk"}, root)


def test_a_withdrawn_report_key_no_longer_signs(coin: App) -> None:
    register(coin)
    govern(coin, "register_auditor_key", {"asset": "KGS", "auditor": AUDITOR.address,
                                          "public_key": REPORT_KEY.public_key,
                                          "registered": False})
    coin.assert_fails(AUDITOR, "attest", gold(coin), "unregistered_auditor_key")


def test_invalid_report_key_for_an_account_that_is_not_auditor(coin: App) -> None:
    result = coin.do(VALIDATORS[0], "propose", {
        "action": "register_auditor_key", "expiry_height": coin.height + 100,
        "args": {"asset": "KGS", "auditor": ISSUER.address,
                 "public_key": REPORT_KEY.public_key, "registered": True}})
    assert result.code == "missing_role"
    result = coin.do(VALIDATORS[0], "propose", {
        "action": "set_reserve_policy", "expiry_height": coin.height + 100,
        "args": {"asset": "GOV", "max_age_ms": 1, "units_per_fine_mg": 1}})
    assert result.code == "not_reserve_backed"


def test_a_report_key_of_one_auditor_does_not_sign_for_another(coin: App) -> None:
    register(coin)
    govern(coin, "grant_role", {"role": "auditor", "scope": "KGS", "address": OTHER.address})
    coin.assert_fails(OTHER, "attest", gold(coin), "unregistered_auditor_key")
