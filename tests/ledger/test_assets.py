"""Assets: mint within the attested reserve, burn, attestations, freezes, roles."""

from __future__ import annotations

from ledger.assets import get_asset_info, get_attestations, get_holder_info
from tests.ledger.app_fixtures import (
    AUDITOR,
    COMPLIANCE,
    HOLDER,
    ISSUER,
    OTHER,
    REPORT,
    RESERVE,
    STRANGER,
    T0,
    App,
)


def attest(app: App, reserve: int, offset_ms: int = 0) -> None:
    app.ok(AUDITOR, "attest", {"asset": "KGS", "reserve": reserve, "report_hash": REPORT,
                               "timestamp_ms": T0 + app.height * 1000 + offset_ms})


def test_genesis_seeds_the_stablecoin(app: App) -> None:
    info = get_asset_info(app.state, "KGS")
    assert (info["supply"], info["reserve"], info["attestations"]) == (100_000, RESERVE, 1)
    assert info["issuers"] == [ISSUER.address] and info["reserve_backed"] is True
    assert get_asset_info(app.state, "GOV")["supply"] == 1000 + 10 + 5 + 5 + 5000


def test_mint_within_reserve_then_beyond_is_refused(app: App) -> None:
    result = app.ok(ISSUER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 900_000})
    assert result.events[0].kind == "minted"
    assert result.events[0].attributes["supply"] == RESERVE
    app.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 1},
                     "reserve_exceeded")
    attest(app, RESERVE + 10)
    app.ok(ISSUER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 10})
    assert get_asset_info(app.state, "KGS")["supply"] == RESERVE + 10


def test_invalid_mint_without_issuer_role(app: App) -> None:
    app.assert_fails(STRANGER, "mint", {"asset": "KGS", "to": STRANGER.address, "amount": 1},
                     "missing_role")
    app.assert_fails(AUDITOR, "mint", {"asset": "KGS", "to": AUDITOR.address, "amount": 1},
                     "missing_role")


def test_invalid_mint_of_unknown_asset(app: App) -> None:
    app.assert_fails(ISSUER, "mint", {"asset": "USD", "to": OTHER.address, "amount": 1},
                     "unknown_asset")


def test_plain_asset_mint_is_uncapped_but_needs_the_role(app: App) -> None:
    app.assert_fails(ISSUER, "mint", {"asset": "GOV", "to": OTHER.address, "amount": 1},
                     "missing_role")


def test_burn_is_a_redemption_reducing_supply(app: App) -> None:
    result = app.ok(HOLDER, "burn", {"asset": "KGS", "amount": 40_000})
    assert result.events[0].kind == "burned"
    assert get_asset_info(app.state, "KGS")["supply"] == 60_000
    assert get_holder_info(app.state, "KGS", HOLDER.address)["balance"] == 60_000
    app.assert_fails(HOLDER, "burn", {"asset": "KGS", "amount": 60_001}, "insufficient_balance")


def test_attestation_history_and_shortfall_is_published(app: App) -> None:
    attest(app, 50_000)  # below the supply of 100,000: accepted, reported
    history = get_attestations(app.state, "KGS", 0, 10)
    assert [a["reserve"] for a in history] == [RESERVE, 50_000]
    app.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 1},
                     "reserve_exceeded")


def test_invalid_attest_without_auditor_role(app: App) -> None:
    app.assert_fails(ISSUER, "attest", {"asset": "KGS", "reserve": 5, "report_hash": REPORT,
                                        "timestamp_ms": T0}, "missing_role")


def test_invalid_attest_stale_or_future(app: App) -> None:
    app.assert_fails(AUDITOR, "attest", {"asset": "KGS", "reserve": 5, "report_hash": REPORT,
                                         "timestamp_ms": T0 - 30_000}, "stale_attestation")
    app.assert_fails(AUDITOR, "attest", {"asset": "KGS", "reserve": 5, "report_hash": REPORT,
                                         "timestamp_ms": T0 + 10**9}, "stale_attestation")


def test_freeze_blocks_sending_and_receiving_until_unfrozen(app: App) -> None:
    app.ok(COMPLIANCE, "freeze", {"asset": "KGS", "account": HOLDER.address})
    app.assert_fails(HOLDER, "transfer", {"to": OTHER.address, "asset": "KGS", "amount": 1},
                     "account_frozen")
    app.ok(ISSUER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 5})
    app.assert_fails(OTHER, "transfer", {"to": HOLDER.address, "asset": "KGS", "amount": 1},
                     "account_frozen")
    app.assert_fails(HOLDER, "burn", {"asset": "KGS", "amount": 1}, "account_frozen")
    app.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": HOLDER.address, "amount": 1},
                     "account_frozen")
    # other assets still move
    app.ok(HOLDER, "transfer", {"to": OTHER.address, "asset": "GOV", "amount": 1})
    app.assert_fails(COMPLIANCE, "freeze", {"asset": "KGS", "account": HOLDER.address},
                     "already_frozen")
    app.ok(COMPLIANCE, "unfreeze", {"asset": "KGS", "account": HOLDER.address})
    app.ok(HOLDER, "transfer", {"to": OTHER.address, "asset": "KGS", "amount": 1})
    app.assert_fails(COMPLIANCE, "unfreeze", {"asset": "KGS", "account": HOLDER.address},
                     "not_frozen")


def test_invalid_freeze_without_compliance_role(app: App) -> None:
    app.assert_fails(ISSUER, "freeze", {"asset": "KGS", "account": HOLDER.address},
                     "missing_role")


def test_invalid_attest_on_plain_asset(app: App) -> None:
    from ledger.roles import apply_grant_role
    from ledger.state import Overlay
    view = Overlay(app.state)
    apply_grant_role(view, "auditor", "GOV", AUDITOR.address)
    app.commit(view)
    app.assert_fails(AUDITOR, "attest", {"asset": "GOV", "reserve": 5, "report_hash": REPORT,
                                         "timestamp_ms": T0}, "not_reserve_backed")


def test_invalid_asset_fields_are_malformed(app: App) -> None:
    app.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": b"short", "amount": 1},
                     "malformed_fields")
    app.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 0},
                     "invalid_amount")
    app.assert_fails(AUDITOR, "attest", {"asset": "KGS", "reserve": 1, "report_hash": b"x",
                                         "timestamp_ms": T0}, "malformed_fields")
