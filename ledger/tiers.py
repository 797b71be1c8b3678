"""Identity tiers: per-asset balance, per-payment and rolling-day limits on accounts.

Governance defines an asset's tiers (set_tier, set_default_tier); accounts holding the
asset's `kyc` role (licensed providers) assign accounts to tiers (tier_assign); an
account may name a linked account that takes what would exceed its balance limit
(tier_sweep). The checks themselves run in ledger/accounts.py, through which every
value move passes. Pure: time is the block header's, never a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from chain import codec
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.balances import MAX_TIER, Window, get_balance_entry, put_balance_entry
from ledger.errors import (
    CorruptStateError,
    InvalidGenesisStateError,
    InvalidParamError,
    LedgerError,
    TierDailyLimitError,
    TierPaymentLimitError,
    TooManyError,
    UnknownAssetError,
    UnknownTierError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import (
    get_asset_key,
    get_asset_rules_key,
    get_sweep_key,
    get_tier_count_key,
)
from ledger.roles import KYC, validate_role
from ledger.state import Overlay, StateReader, get_value, put_value

TIER_ASSIGN = "tier_assign"
TIER_SWEEP = "tier_sweep"
SET_TIER = "set_tier"
SET_DEFAULT_TIER = "set_default_tier"

MAX_TIERS = 16
"""Most tiers one asset defines."""
HOUR_MS = 3_600_000
DAY_HOURS = 24
"""The rolling day: the block's clock hour (block time // 1 h) and the 23 before it."""


@dataclass(frozen=True, slots=True)
class TierLimits:
    """What an account of one tier may hold and send, in the asset's smallest unit."""

    tier: int
    """The tier number, 0 to 255."""
    balance_limit: int
    """The most the account may hold after a credit; 0: not allowed to hold."""
    payment_limit: int
    """The most one payment (transfer sent) may move."""
    daily_limit: int
    """The most the account may send within the rolling day."""

    def to_value(self) -> list[int]:
        return [self.tier, self.balance_limit, self.payment_limit, self.daily_limit]


NO_HOLDING = TierLimits(0, 0, 0, 0)
"""Tier 0 until governance sets it: not allowed to hold."""


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """An asset's payment rules: its tiers, if any, and its travel-rule threshold."""

    tiered: bool
    """True once governance (or genesis) defined tiers: every value move checks them."""
    default_tier: int
    """The tier of every account without an assignment (tier 0 at first)."""
    tiers: tuple[TierLimits, ...]
    """The tiers governance defined, by number."""
    travel_threshold: int = 0
    """The amount from which a provider-to-provider transfer carries a travel-rule
    commitment (ledger/travel.py); 0: no travel rule."""
    by_tier: Mapping[int, TierLimits] = dataclasses.field(
        init=False, repr=False, compare=False)
    """`tiers` by number (derived): every value move looks its two tiers up."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_tier", {limits.tier: limits for limits in self.tiers})

    def get_limits(self, tier: int) -> TierLimits:
        # Only tier 0 may be undefined: assignments need a defined tier.
        return self.by_tier.get(tier, NO_HOLDING)

    def is_defined(self, tier: int) -> bool:
        return tier == 0 or tier in self.by_tier

    def replace(self, **changes: Any) -> TierPolicy:
        return dataclasses.replace(self, **changes)

    def to_value(self) -> dict[str, Any]:
        return {"default": self.default_tier, "tiered": self.tiered,
                "tiers": [t.to_value() for t in self.tiers], "travel": self.travel_threshold}

    @classmethod
    def from_value(cls, value: Any) -> TierPolicy:
        try:
            tiers = tuple(TierLimits(*(int(x) for x in entry)) for entry in value["tiers"])
            return cls(bool(value["tiered"]), int(value["default"]), tiers,
                       int(value["travel"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptStateError(f"asset rules have unexpected form: {e}") from e


NO_RULES = TierPolicy(False, 0, ())
"""What an asset without a rules record behaves as."""

_decoded_policies: dict[bytes, TierPolicy] = {}
"""Encoded rules -> rules: a memo of a pure function, read by every transfer."""


def get_asset_rules(view: StateReader, symbol: str) -> TierPolicy | None:
    """The asset's rules record (tiers and travel-rule threshold), or None."""
    data = view.get(get_asset_rules_key(symbol))
    if data is None:
        return None
    policy = _decoded_policies.get(data)
    if policy is None:
        try:
            policy = TierPolicy.from_value(codec.decode(data))
        except ChainError as e:
            raise CorruptStateError(f"asset rules of {symbol} do not decode: {e}") from e
        if len(_decoded_policies) >= 1024:
            _decoded_policies.clear()
        _decoded_policies[data] = policy
    return policy


def get_tier_policy(view: StateReader, symbol: str) -> TierPolicy | None:
    """The asset's rules when it has tiers, else None (then no tier rule applies)."""
    rules = get_asset_rules(view, symbol)
    return rules if rules is not None and rules.tiered else None


def put_asset_rules(view: Overlay, symbol: str, rules: TierPolicy) -> None:
    put_value(view, get_asset_rules_key(symbol), rules.to_value())


def get_account_tier_state(view: StateReader, symbol: str, address: bytes
                           ) -> tuple[int | None, Window]:
    """(the tier assigned, or None for the default; the rolling day's hourly buckets)."""
    entry = get_balance_entry(view, address, symbol)
    return entry.tier, entry.window


def get_account_tier(view: StateReader, symbol: str, address: bytes, policy: TierPolicy
                     ) -> int:
    assigned = get_balance_entry(view, address, symbol).tier
    return policy.default_tier if assigned is None else assigned


def get_sweep_account(view: StateReader, symbol: str, address: bytes) -> bytes | None:
    value = get_value(view, get_sweep_key(symbol, address), "sweep account")
    return None if value is None else bytes(value)


def get_holder_count(view: StateReader, symbol: str, tier: int) -> int:
    value = get_value(view, get_tier_count_key(symbol, tier), "holder count")
    return 0 if value is None else int(value)


def apply_holder_count(view: Overlay, symbol: str, tier: int, delta: int) -> None:
    count = get_holder_count(view, symbol, tier) + delta
    if count < 0:
        raise CorruptStateError(f"holder count of {symbol} tier {tier} would be negative")
    key = get_tier_count_key(symbol, tier)
    if count:
        put_value(view, key, count)
    else:
        view.delete(key)


def get_day_buckets(buckets: Window, timestamp_ms: int) -> tuple[Window, int]:
    """The hourly buckets still inside the rolling day at `timestamp_ms`, and their sum."""
    hour = timestamp_ms // HOUR_MS
    inside = tuple(b for b in buckets if b[0] > hour - DAY_HOURS)
    return inside, sum(a for _h, a in inside)


def compute_payment_window(limits: TierLimits, window: Window, timestamp_ms: int,
                           symbol: str, address: bytes, amount: int) -> Window:
    """Refuse a payment above the sender's per-payment or rolling-day limit; return the
    sender's rolling day with the payment recorded (hours that left the day dropped)."""
    if amount > limits.payment_limit:
        raise TierPaymentLimitError(
            f"a payment of {amount} {symbol} exceeds the per-payment limit "
            f"{limits.payment_limit} of tier {limits.tier}")
    hour = timestamp_ms // HOUR_MS
    if not window:  # the common cases first: nothing sent, or only in this hour
        if amount > limits.daily_limit:
            _raise_daily_limit(limits, symbol, address, 0, amount)
        return ((hour, amount),)
    if len(window) == 1 and window[0][0] == hour:
        spent = window[0][1]
        if spent + amount > limits.daily_limit:
            _raise_daily_limit(limits, symbol, address, spent, amount)
        return ((hour, spent + amount),)
    inside = tuple(b for b in window if b[0] > hour - DAY_HOURS)
    spent = sum(a for _h, a in inside)
    if spent + amount > limits.daily_limit:
        _raise_daily_limit(limits, symbol, address, spent, amount)
    if inside and inside[-1][0] == hour:
        return (*inside[:-1], (hour, inside[-1][1] + amount))
    return (*inside, (hour, amount))


def _raise_daily_limit(limits: TierLimits, symbol: str, address: bytes, spent: int,
                       amount: int) -> NoReturn:
    raise TierDailyLimitError(
        f"account {address.hex()} sent {spent} {symbol} in the rolling day; {amount} more "
        f"exceeds the daily limit {limits.daily_limit} of tier {limits.tier}")


def compute_excess(limits: TierLimits, old_balance: int, amount: int) -> int:
    """What of a credit of `amount` lies above the balance limit (0: it fits).

    An account already above its limit (the limit was lowered) keeps its balance; only
    new credits are refused or swept.
    """
    return max(0, min(amount, old_balance + amount - limits.balance_limit))


# ------------------------------------------------------------------ transactions


def _get_existing_policy(view: StateReader, symbol: str) -> TierPolicy:
    policy = get_tier_policy(view, symbol)
    if policy is None:
        raise UnknownTierError(f"asset {symbol!r} has no tiers; governance defines them")
    return policy


def validate_assign_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "account", "tier"}))
    f.expect_asset(fields, "asset")
    f.expect_address(fields, "account")
    f.expect_int(fields, "tier", 0, MAX_TIER)


def apply_tier_assign(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """A kyc provider of the asset puts an account in a tier (from the next tx on)."""
    symbol, account, tier = tx.fields["asset"], tx.fields["account"], tx.fields["tier"]
    validate_role(view, KYC, symbol, tx.sender)
    policy = _get_existing_policy(view, symbol)
    if not policy.is_defined(tier):
        raise UnknownTierError(f"asset {symbol!r} has no tier {tier}")
    entry = get_balance_entry(view, account, symbol)
    previous = policy.default_tier if entry.tier is None else entry.tier
    if entry.amount and previous != tier:
        apply_holder_count(view, symbol, previous, -1)
        apply_holder_count(view, symbol, tier, +1)
    put_balance_entry(view, account, symbol, entry._replace(tier=tier))
    return [Event("tier_assigned", {"account": account, "asset": symbol, "by": tx.sender,
                                    "previous": previous, "tier": tier})]


def validate_sweep_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "linked"}))
    f.expect_asset(fields, "asset")
    f.expect_address(fields, "linked")


def apply_tier_sweep(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """The sender names its linked account for `asset`; naming itself removes the link."""
    symbol, linked = tx.fields["asset"], tx.fields["linked"]
    if view.get(get_asset_key(symbol)) is None:
        raise UnknownAssetError(f"no asset {symbol!r}; governance creates assets")
    key = get_sweep_key(symbol, tx.sender)
    if linked == tx.sender:
        view.delete(key)
    else:
        put_value(view, key, linked)
    return [Event("sweep_linked", {"account": tx.sender, "asset": symbol, "linked": linked})]


# ------------------------------------------------------------------ governance actions


def validate_set_tier_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"asset", "tier", "balance_limit",
                                            "payment_limit", "daily_limit"}))
    f.expect_asset(args, "asset")
    f.expect_int(args, "tier", 0, MAX_TIER)
    for name in ("balance_limit", "payment_limit", "daily_limit"):
        f.expect_int(args, name, 0, f.MAX_AMOUNT)


def _get_supply(view: StateReader, symbol: str) -> int:
    record = get_value(view, get_asset_key(symbol), "asset record")
    if record is None:
        raise UnknownAssetError(f"no asset {symbol!r}: create it before its tiers")
    return int(record["supply"])


def apply_set_tier(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]) -> list[Event]:
    """Define or change a tier; a change applies to new credits and payments only."""
    symbol = args["asset"]
    supply = _get_supply(view, symbol)
    policy = get_asset_rules(view, symbol) or NO_RULES
    if not policy.tiered:
        if supply:
            raise InvalidParamError(
                f"asset {symbol!r} has a supply of {supply}: tiers start before the first "
                f"mint (or in genesis), so that every holder is counted in its tier")
        policy = policy.replace(tiered=True)
    limits = TierLimits(args["tier"], args["balance_limit"], args["payment_limit"],
                        args["daily_limit"])
    others = [t for t in policy.tiers if t.tier != limits.tier]
    if len(others) >= MAX_TIERS:
        raise TooManyError(f"asset {symbol!r} has {MAX_TIERS} tiers, the most")
    tiers = tuple(sorted([*others, limits], key=lambda t: t.tier))
    put_asset_rules(view, symbol, policy.replace(tiers=tiers))
    return [Event("tier_set", {"asset": symbol, "balance_limit": limits.balance_limit,
                               "daily_limit": limits.daily_limit,
                               "payment_limit": limits.payment_limit, "tier": limits.tier})]


def validate_set_default_tier_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"asset", "tier"}))
    f.expect_asset(args, "asset")
    f.expect_int(args, "tier", 0, MAX_TIER)


def apply_set_default_tier(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                           ) -> list[Event]:
    """Change the tier of unassigned accounts; refused while some of them hold the asset
    (their holder counts would move tier without a trace)."""
    symbol, tier = args["asset"], args["tier"]
    policy = _get_existing_policy(view, symbol)
    if not policy.is_defined(tier):
        raise UnknownTierError(f"asset {symbol!r} has no tier {tier}")
    if tier != policy.default_tier and get_holder_count(view, symbol, policy.default_tier):
        raise InvalidParamError(
            f"accounts of the default tier {policy.default_tier} hold {symbol}: assign them a "
            f"tier before the default changes")
    put_asset_rules(view, symbol, policy.replace(default_tier=tier))
    return [Event("default_tier_set", {"asset": symbol, "tier": tier})]


GOVERNANCE_ACTIONS = {
    SET_TIER: (validate_set_tier_args, apply_set_tier),
    SET_DEFAULT_TIER: (validate_set_default_tier_args, apply_set_default_tier),
}
"""Governance actions of this module (merged into ledger.governance.ACTIONS)."""


# ------------------------------------------------------------------ reads and genesis


def get_tier_info(view: StateReader, symbol: str) -> dict[str, Any] | None:
    """The asset's tiers with their holder counts, or None when it has none."""
    policy = get_tier_policy(view, symbol)
    if policy is None:
        return None
    numbers = sorted({0, policy.default_tier, *(t.tier for t in policy.tiers)})
    return {"default_tier": policy.default_tier, "tiers": [
        {"tier": n, "balance_limit": policy.get_limits(n).balance_limit,
         "payment_limit": policy.get_limits(n).payment_limit,
         "daily_limit": policy.get_limits(n).daily_limit,
         "holders": get_holder_count(view, symbol, n)} for n in numbers]}


def get_account_tier_info(view: StateReader, symbol: str, address: bytes, timestamp_ms: int
                          ) -> dict[str, Any] | None:
    policy = get_tier_policy(view, symbol)
    if policy is None:
        return None
    tier = get_account_tier(view, symbol, address, policy)
    _assigned, buckets = get_account_tier_state(view, symbol, address)
    _inside, spent = get_day_buckets(buckets, timestamp_ms)
    linked = get_sweep_account(view, symbol, address)
    return {"tier": tier, **{k: v for k, v in zip(
        ("balance_limit", "payment_limit", "daily_limit"),
        policy.get_limits(tier).to_value()[1:], strict=True)},
        "sent_in_rolling_day": spent, "sweep_to": linked}


def _apply_genesis_asset(view: Overlay, genesis: Genesis, symbol: str, entry: Any) -> None:
    if not isinstance(entry, dict) or set(entry) - {"default", "tiers"}:
        raise InvalidGenesisStateError(f"tiers of {symbol}: expected default and tiers")
    if view.get(get_asset_key(symbol)) is None:
        raise InvalidGenesisStateError(f"tiers of {symbol}: no such asset")
    tiers = []
    for item in entry.get("tiers", []):
        args = {"asset": symbol, **item} if isinstance(item, dict) else {}
        validate_set_tier_args(args)
        tiers.append(TierLimits(args["tier"], args["balance_limit"], args["payment_limit"],
                                args["daily_limit"]))
    policy = TierPolicy(True, int(entry.get("default", 0)),
                        tuple(sorted(tiers, key=lambda t: t.tier)))
    if len({t.tier for t in tiers}) != len(tiers) or len(tiers) > MAX_TIERS or \
            not policy.is_defined(policy.default_tier):
        raise InvalidGenesisStateError(f"tiers of {symbol}: duplicate, too many or undefined")
    put_asset_rules(view, symbol, policy)
    limits = policy.get_limits(policy.default_tier)
    for account in genesis.accounts:
        amount = account.balances.get(symbol, 0)
        if amount > limits.balance_limit:
            raise InvalidGenesisStateError(
                f"account {account.address.hex()} holds {amount} {symbol}, above the default "
                f"tier's balance limit {limits.balance_limit}")
        if amount:
            apply_holder_count(view, symbol, policy.default_tier, +1)


class TiersModule:
    """Identity tiers: assignments by kyc providers, sweep links; governance sets limits."""

    name = "tiers"
    tx_types: Mapping[str, TxHandler] = {
        TIER_ASSIGN: TxHandler(validate_assign_fields, apply_tier_assign),
        TIER_SWEEP: TxHandler(validate_sweep_fields, apply_tier_sweep),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        """app_state.tiers: {"assets": {symbol: {"default": n, "tiers": [{tier, ...}]}}}."""
        settings = genesis.app_state.get(self.name) or {}
        if not isinstance(settings, dict) or set(settings) - {"assets"}:
            raise InvalidGenesisStateError('app_state.tiers takes {"assets": {...}} only')
        assets = settings.get("assets", {})
        if not isinstance(assets, dict):
            raise InvalidGenesisStateError("app_state.tiers.assets must be an object")
        try:
            for symbol in sorted(assets, key=str.encode):
                _apply_genesis_asset(view, genesis, symbol, assets[symbol])
        except (LedgerError, ValueError, TypeError) as e:
            if isinstance(e, InvalidGenesisStateError):
                raise
            raise InvalidGenesisStateError(f"app_state.tiers has a bad value: {e}") from e
