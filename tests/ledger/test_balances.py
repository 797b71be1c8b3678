"""The balance record: an integer, or [amount, tier, rolling day] for a tiered account."""

from __future__ import annotations

import pytest

from chain import codec
from ledger import balances
from ledger.balances import (
    NO_BALANCE,
    BalanceEntry,
    decode_balance_entry,
    encode_balance_entry,
    get_balance_entry,
)
from ledger.errors import CorruptStateError
from ledger.keys import get_balance_key
from ledger.tiers import HOUR_MS, get_account_tier_info
from tests.ledger.app_fixtures import HOLDER, T0, App
from tests.ledger.stablecoin_fixtures import BASIC, CITIZEN, PROVIDER, VERIFIED, coin

__all__ = ["coin"]


@pytest.mark.parametrize("entry", [
    BalanceEntry(7, None, ()),
    BalanceEntry(0, 3, ()),
    BalanceEntry(0, None, ((5, 1),)),
    BalanceEntry(2**64 - 1, 255, ((1, 2), (7, 2**64 - 1))),
])
def test_records_round_trip_canonically(entry: BalanceEntry) -> None:
    data = encode_balance_entry(entry)
    assert data is not None
    assert codec.decode(data) == (entry.amount if entry.tier is None and not entry.window
                                  else (entry.amount, entry.tier, entry.window))
    balances._decoded.clear()  # decode from the bytes, not from the memo
    assert decode_balance_entry(data) == entry


def test_a_plain_balance_keeps_its_integer_form_and_an_empty_record_is_absent() -> None:
    assert encode_balance_entry(BalanceEntry(1000, None, ())) == codec.encode(1000)
    assert encode_balance_entry(NO_BALANCE) is None


@pytest.mark.parametrize("value", [
    0,  # absence says it
    [5, None, []],  # the integer says it
    [0, None, []],
    [5, 256, []],  # no such tier
    [5, 1, [[3, 1], [3, 1]]],  # hours must increase
    [5, 1, [[4, 1], [3, 1]]],
    [5, 1, [[3, 0]]],  # an empty bucket is not kept
    [5, 1, [[3, 1, 1]]],
    [5, 1],
    [-1, 1, []],
    "5",
    {"amount": 5},
])
def test_invalid_balance_records_are_refused(value: object) -> None:
    with pytest.raises(CorruptStateError):
        decode_balance_entry(codec.encode(value))


def test_the_tier_and_rolling_day_share_the_balance_record(coin: App) -> None:
    coin.ok(PROVIDER, "tier_assign", {"asset": "KGS", "account": CITIZEN.address,
                                      "tier": VERIFIED})
    entry = get_balance_entry(coin.state, CITIZEN.address, "KGS")
    assert entry == BalanceEntry(0, VERIFIED, ())  # assigned before it holds anything
    coin.ok(HOLDER, "transfer", {"to": CITIZEN.address, "asset": "KGS", "amount": 40_000})
    hour = (T0 + coin.height * 1000) // HOUR_MS
    assert get_balance_entry(coin.state, HOLDER.address, "KGS") == BalanceEntry(
        60_000, None, ((hour, 40_000),))
    assert get_balance_entry(coin.state, CITIZEN.address, "KGS") == BalanceEntry(
        40_000, VERIFIED, ())
    assert codec.decode(coin.state[get_balance_key(CITIZEN.address, "KGS")]) == (
        40_000, VERIFIED, ())


def test_emptying_an_account_does_not_reset_its_rolling_day(coin: App) -> None:
    """HOLDER (tier BASIC: 50,000 a payment, 80,000 a day) sends everything it holds in
    two payments, receives more, and still may not exceed its daily limit."""
    coin.ok(HOLDER, "transfer", {"to": PROVIDER.address, "asset": "KGS", "amount": 40_000})
    coin.ok(HOLDER, "transfer", {"to": CITIZEN.address, "asset": "KGS", "amount": 40_000})
    coin.ok(HOLDER, "burn", {"asset": "KGS", "amount": 20_000})
    entry = get_balance_entry(coin.state, HOLDER.address, "KGS")
    assert entry.amount == 0 and entry.tier is None and sum(a for _h, a in entry.window) \
        == 80_000
    coin.ok(CITIZEN, "transfer", {"to": HOLDER.address, "asset": "KGS", "amount": 10_000})
    coin.assert_fails(HOLDER, "transfer", {"to": CITIZEN.address, "asset": "KGS",
                                           "amount": 1}, "tier_daily_limit")
    info = get_account_tier_info(coin.state, "KGS", HOLDER.address, T0 + coin.height * 1000)
    assert info is not None and info["tier"] == BASIC and info["sent_in_rolling_day"] == 80_000
