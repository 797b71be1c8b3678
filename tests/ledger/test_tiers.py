"""Identity tiers: balance, per-payment and rolling-day limits, sweeps, holder counts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.accounts import get_balance
from ledger.tiers import HOUR_MS, get_account_tier_info, get_holder_count, get_tier_info
from tests.ledger.app_fixtures import (
    HOLDER,
    ISSUER,
    OTHER,
    STRANGER,
    T0,
    VALIDATORS,
    App,
    make_app,
)
from tests.ledger.stablecoin_fixtures import (
    BASIC,
    BLOCKED,
    CITIZEN,
    PROVIDER,
    SAVINGS,
    VERIFIED,
    coin,
    govern,
    make_stablecoin_genesis,
)

__all__ = ["coin"]
HOUR_BLOCKS = HOUR_MS // 1000
"""ctx_at gives block h the time T0 + h seconds."""


def pay(app: App, key: object, to: bytes, amount: int, code: str = "ok") -> None:
    fields = {"to": to, "asset": "KGS", "amount": amount}
    if code == "ok":
        app.ok(key, "transfer", fields)  # type: ignore[arg-type]
    else:
        app.assert_fails(key, "transfer", fields, code)  # type: ignore[arg-type]


def test_genesis_holders_are_counted_in_the_default_tier(coin: App) -> None:
    info = get_tier_info(coin.state, "KGS")
    assert info is not None and info["default_tier"] == BASIC
    by_tier = {t["tier"]: t["holders"] for t in info["tiers"]}
    assert by_tier == {0: 0, BASIC: 2, VERIFIED: 0, BLOCKED: 0}


def test_invalid_payment_above_the_per_payment_limit(coin: App) -> None:
    pay(coin, HOLDER, CITIZEN.address, 50_001, "tier_payment_limit")
    pay(coin, HOLDER, CITIZEN.address, 50_000)
    assert get_balance(coin.state, CITIZEN.address, "KGS") == 50_000


def test_invalid_payment_above_the_rolling_day_limit_then_the_window_moves(coin: App) -> None:
    pay(coin, HOLDER, CITIZEN.address, 50_000)
    pay(coin, HOLDER, CITIZEN.address, 30_000)  # 80,000: the daily limit exactly
    pay(coin, HOLDER, CITIZEN.address, 1, "tier_daily_limit")
    first_hour = (T0 + 1000) // HOUR_MS
    # Still inside: the block's clock hour and the 23 before it.
    coin.height = (first_hour + 23) * HOUR_BLOCKS - T0 // 1000 + 10
    pay(coin, HOLDER, CITIZEN.address, 1, "tier_daily_limit")
    coin.height = (first_hour + 24) * HOUR_BLOCKS - T0 // 1000 + 10
    pay(coin, HOLDER, CITIZEN.address, 1)
    info = get_account_tier_info(coin.state, "KGS", HOLDER.address, T0 + coin.height * 1000)
    assert info is not None and info["sent_in_rolling_day"] == 1


def test_invalid_credit_above_the_balance_limit(coin: App) -> None:
    pay(coin, HOLDER, PROVIDER.address, 50_000)  # 200,000: the balance limit exactly
    pay(coin, HOLDER, PROVIDER.address, 1, "tier_balance_limit")
    assert get_balance(coin.state, PROVIDER.address, "KGS") == 200_000


def test_sweep_sends_the_excess_to_the_linked_account(coin: App) -> None:
    coin.ok(PROVIDER, "tier_assign", {"asset": "KGS", "account": SAVINGS.address,
                                      "tier": VERIFIED})
    coin.ok(PROVIDER, "tier_sweep", {"asset": "KGS", "linked": SAVINGS.address})
    pay(coin, HOLDER, PROVIDER.address, 40_000)
    result = coin.ok(HOLDER, "transfer", {"to": PROVIDER.address, "asset": "KGS",
                                          "amount": 30_000})
    assert [e.kind for e in result.events] == ["transferred", "swept"]
    assert result.events[1].attributes["amount"] == 20_000  # 220,000 - 200,000
    assert get_balance(coin.state, PROVIDER.address, "KGS") == 200_000
    assert get_balance(coin.state, SAVINGS.address, "KGS") == 20_000
    assert get_holder_count(coin.state, "KGS", VERIFIED) == 1


def test_not_allowed_to_hold(coin: App) -> None:
    coin.ok(PROVIDER, "tier_assign", {"asset": "KGS", "account": CITIZEN.address,
                                      "tier": BLOCKED})
    pay(coin, HOLDER, CITIZEN.address, 1, "not_allowed_to_hold")
    coin.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": CITIZEN.address, "amount": 1},
                      "not_allowed_to_hold")


def test_invalid_tier_assign(coin: App) -> None:
    fields = {"asset": "KGS", "account": CITIZEN.address, "tier": VERIFIED}
    coin.assert_fails(STRANGER, "tier_assign", fields, "missing_role")
    coin.assert_fails(PROVIDER, "tier_assign", {**fields, "tier": 9}, "unknown_tier")
    coin.assert_fails(PROVIDER, "tier_assign", {**fields, "tier": 256}, "malformed_fields")
    coin.assert_fails(PROVIDER, "tier_assign", {**fields, "asset": "GOV"}, "missing_role")


def test_assignment_and_emptying_move_the_holder_counts(coin: App) -> None:
    coin.ok(PROVIDER, "tier_assign", {"asset": "KGS", "account": HOLDER.address,
                                      "tier": VERIFIED})
    assert (get_holder_count(coin.state, "KGS", BASIC),
            get_holder_count(coin.state, "KGS", VERIFIED)) == (1, 1)
    coin.ok(HOLDER, "burn", {"asset": "KGS", "amount": 100_000})
    assert get_holder_count(coin.state, "KGS", VERIFIED) == 0


def test_a_lowered_limit_applies_to_new_credits_only(coin: App) -> None:
    govern(coin, "set_tier", {"asset": "KGS", "tier": BASIC, "balance_limit": 1_000,
                              "payment_limit": 50_000, "daily_limit": 80_000})
    assert get_balance(coin.state, PROVIDER.address, "KGS") == 150_000  # kept
    pay(coin, PROVIDER, CITIZEN.address, 1_000)  # sending is fine
    pay(coin, HOLDER, PROVIDER.address, 1, "tier_balance_limit")  # receiving is not


def test_plain_assets_have_no_tiers(coin: App) -> None:
    coin.ok(HOLDER, "transfer", {"to": CITIZEN.address, "asset": "GOV", "amount": 999})
    assert get_tier_info(coin.state, "GOV") is None


def test_tiers_of_a_new_asset_start_at_not_allowed_to_hold() -> None:
    app = make_app(make_stablecoin_genesis())
    govern(app, "create_asset", {"symbol": "KGSX", "name": "x", "decimals": 0,
                                 "issuer": ISSUER.address, "reserve_backed": False})
    govern(app, "set_tier", {"asset": "KGSX", "tier": 5, "balance_limit": 10,
                             "payment_limit": 10, "daily_limit": 10})
    app.assert_fails(ISSUER, "mint", {"asset": "KGSX", "to": OTHER.address, "amount": 1},
                     "not_allowed_to_hold")
    govern(app, "set_default_tier", {"asset": "KGSX", "tier": 5})
    app.ok(ISSUER, "mint", {"asset": "KGSX", "to": OTHER.address, "amount": 10})
    app.assert_fails(ISSUER, "mint", {"asset": "KGSX", "to": OTHER.address, "amount": 1},
                     "tier_balance_limit")
    info = get_tier_info(app.state, "KGSX")
    assert info is not None and {t["tier"]: t["holders"] for t in info["tiers"]} == {0: 0, 5: 1}


def test_invalid_tiers_after_the_first_mint_are_refused(coin: App) -> None:
    args = {"asset": "GOV", "tier": 1, "balance_limit": 1, "payment_limit": 1,
            "daily_limit": 1}
    result = coin.do(VALIDATORS[0], "propose", {"action": "set_tier", "args": args,
                                               "expiry_height": coin.height + 100})
    assert result.code == "invalid_param"
    result = coin.do(VALIDATORS[0], "propose", {"action": "set_default_tier", "args": {
        "asset": "KGS", "tier": VERIFIED}, "expiry_height": coin.height + 100})
    assert result.code == "invalid_param"  # BASIC holders would change tier silently


def test_invalid_sweep_into_a_linked_account_over_its_own_limit(coin: App) -> None:
    coin.ok(PROVIDER, "tier_sweep", {"asset": "KGS", "linked": CITIZEN.address})
    coin.ok(PROVIDER, "tier_assign", {"asset": "KGS", "account": CITIZEN.address,
                                      "tier": BLOCKED})
    pay(coin, HOLDER, PROVIDER.address, 50_001 - 1)  # 199,999: fits
    pay(coin, HOLDER, PROVIDER.address, 2, "not_allowed_to_hold")  # the excess cannot land
    assert get_balance(coin.state, CITIZEN.address, "KGS") == 0
    coin.ok(PROVIDER, "tier_sweep", {"asset": "KGS", "linked": PROVIDER.address})  # unlink
    pay(coin, HOLDER, PROVIDER.address, 2, "tier_balance_limit")


def test_invalid_tier_governance_arguments(coin: App) -> None:
    good = {"asset": "KGS", "tier": 4, "balance_limit": 1, "payment_limit": 1,
            "daily_limit": 1}
    for bad in ({**good, "balance_limit": -1}, {**good, "daily_limit": True},
                {**good, "tier": 256}, {**good, "payment_limit": "1"},
                {k: v for k, v in good.items() if k != "daily_limit"}):
        result = coin.do(VALIDATORS[0], "propose", {"action": "set_tier", "args": bad,
                                                   "expiry_height": coin.height + 100})
        assert result.code == "malformed_fields", bad


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pay", "mint", "burn", "assign", "link"]),
                          st.integers(0, 3), st.integers(0, 3),
                          st.integers(1, 120_000)), max_size=25))
def test_holder_counts_match_the_balances_whatever_happens(ops: list) -> None:
    """Property: after any mix of payments, mints, burns, assignments and sweep links
    (accepted or refused), each tier's holder count is the number of its accounts
    holding KGS."""
    app = make_app(make_stablecoin_genesis())
    people = [HOLDER, PROVIDER, CITIZEN, SAVINGS]
    tiers = [BASIC, VERIFIED, BASIC, BLOCKED]
    for kind, a, b, amount in ops:
        if kind == "pay":
            app.do(people[a], "transfer", {"to": people[b].address, "asset": "KGS",
                                           "amount": amount})
        elif kind == "mint":
            app.do(ISSUER, "mint", {"asset": "KGS", "to": people[a].address,
                                    "amount": amount})
        elif kind == "burn":
            app.do(people[a], "burn", {"asset": "KGS", "amount": amount})
        elif kind == "link":
            app.do(people[a], "tier_sweep", {"asset": "KGS", "linked": people[b].address})
        else:
            app.do(PROVIDER, "tier_assign", {"asset": "KGS", "account": people[a].address,
                                             "tier": tiers[b]})
        expected: dict[int, int] = {}
        for person in people:
            info = get_account_tier_info(app.state, "KGS", person.address, 0)
            assert info is not None
            if get_balance(app.state, person.address, "KGS"):
                expected[info["tier"]] = expected.get(info["tier"], 0) + 1
        for tier in (0, BASIC, VERIFIED, BLOCKED):
            assert get_holder_count(app.state, "KGS", tier) == expected.get(tier, 0)
