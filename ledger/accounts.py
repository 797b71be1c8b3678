"""The accounts module: account records (nonce, held assets), balances and transfers.

Every other module moves value through `apply_debit`/`apply_credit` so that balances
and each account's asset list stay consistent. Amounts are integers in the asset's
smallest unit; a balance is never negative and never above MAX_AMOUNT.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chain import codec
from chain.crypto import Address
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.balances import BalanceEntry, get_balance_entry, put_balance_entry
from ledger.balances import get_balance as get_balance  # the balance read, re-exported
from ledger.errors import (
    AccountFrozenError,
    BalanceOverflowError,
    CorruptStateError,
    InsufficientBalanceError,
    InvalidGenesisStateError,
    NotAllowedToHoldError,
    TierBalanceLimitError,
    UnknownAssetError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import get_account_key, get_asset_key, get_freeze_key
from ledger.state import Overlay, StateReader
from ledger.tiers import (
    TierLimits,
    TierPolicy,
    apply_holder_count,
    compute_excess,
    compute_payment_window,
    get_asset_rules,
    get_sweep_account,
)
from ledger.travel import TRAVEL_RULE_FIELD, validate_travel_rule

TRANSFER = "transfer"
TRANSFER_FIELDS = frozenset({"to", "asset", "amount"})
TRANSFER_OPTIONAL_FIELDS = frozenset({TRAVEL_RULE_FIELD})


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """What the ledger knows of an account besides its balances."""

    nonce: int
    """The next nonce the account must use: the count of its transactions executed."""
    assets: tuple[str, ...]
    """The assets it holds a non-zero balance of, sorted: lists balances without a scan."""

    def to_value(self) -> dict[str, Any]:
        return {"assets": self.assets, "nonce": self.nonce}  # canonical key order

    @classmethod
    def from_value(cls, value: Any) -> AccountRecord:
        record = codec.expect_map(value, "account record")
        assets = record.get("assets")
        if set(record) != {"nonce", "assets"} or not isinstance(assets, tuple) or not all(
                isinstance(asset, str) for asset in assets):
            raise CorruptStateError(f"account record has unexpected form {record!r}")
        return cls(codec.expect_int(record["nonce"], "account nonce"), assets)


EMPTY_ACCOUNT = AccountRecord(nonce=0, assets=())


_RECORD_MEMO_SIZE = 65_536
_decoded_records: dict[bytes, AccountRecord] = {}
"""Encoded account record -> the record: a memo of a pure function (the bytes say
everything), filled by both directions. An account's record is read at admission and
in every block that touches it, usually as the bytes this process just encoded."""


def _memo_record(data: bytes, record: AccountRecord) -> None:
    if len(_decoded_records) >= _RECORD_MEMO_SIZE:
        _decoded_records.clear()
    _decoded_records[data] = record


def get_account_record(view: StateReader, address: bytes) -> AccountRecord | None:
    """The account record of `address`, or None if the account does not exist."""
    data = view.get(get_account_key(address))
    if data is None:
        return None
    record = _decoded_records.get(data)
    if record is not None:
        return record
    try:
        record = AccountRecord.from_value(codec.decode(data))
    except ChainError as e:
        raise CorruptStateError(f"account {address.hex()} does not decode: {e}") from e
    _memo_record(data, record)
    return record


def put_account_record(view: Overlay, address: bytes, record: AccountRecord) -> None:
    # Canonical by construction (keys in order, text assets, an integer nonce): no
    # walk over the value to check it (a fifth of the time of a transfer's writes).
    data = codec.pack_unchecked(record.to_value())
    _memo_record(data, record)
    view.put(get_account_key(address), data)


def is_frozen(view: StateReader, address: bytes, asset: str) -> bool:
    """True when compliance froze `address` for `asset` (ledger/assets.py writes it)."""
    return view.get(get_freeze_key(address, asset)) is not None


def validate_not_frozen(view: StateReader, address: bytes, asset: str) -> None:
    if is_frozen(view, address, asset):
        raise AccountFrozenError(
            f"account {address.hex()} is frozen for {asset}: it can neither send nor "
            f"receive it until the asset's compliance officer unfreezes it")


def apply_debit(view: Overlay, address: bytes, asset: str, amount: int) -> int:
    """Take `amount` of `asset` from `address` and return what it holds now; raises
    InsufficientBalanceError.

    Raises AccountFrozenError when `address` is frozen for `asset`: every value move
    goes through here, so a freeze holds for transfers, burns and any later module.
    """
    entry = _get_debited_entry(view, address, asset, amount)
    _put_debited_entry(view, address, asset,
                       BalanceEntry(entry.amount - amount, entry.tier, entry.window))
    return entry.amount - amount


def _get_debited_entry(view: Overlay, address: bytes, asset: str, amount: int
                       ) -> BalanceEntry:
    validate_not_frozen(view, address, asset)
    entry = get_balance_entry(view, address, asset)
    if entry.amount < amount:
        raise InsufficientBalanceError(
            f"account {address.hex()} holds {entry.amount} {asset}, needs {amount}")
    return entry


def _put_debited_entry(view: Overlay, address: bytes, asset: str, entry: BalanceEntry
                       ) -> None:
    put_balance_entry(view, address, asset, entry)
    if entry.amount:
        return
    record = get_account_record(view, address)
    assert record is not None, "a non-zero balance implies an account record"
    assets = tuple(a for a in record.assets if a != asset)
    put_account_record(view, address, AccountRecord(record.nonce, assets))


def apply_credit(view: Overlay, address: bytes, asset: str, amount: int) -> int:
    """Give `amount` of `asset` to `address`, creating its account if need be; return
    the balance it held before.

    Raises AccountFrozenError when `address` is frozen for `asset`.
    """
    entry = _get_credited_entry(view, address, asset, amount)
    _put_credited_entry(view, address, asset, entry, entry.amount + amount)
    return entry.amount


def _get_credited_entry(view: Overlay, address: bytes, asset: str, amount: int
                        ) -> BalanceEntry:
    validate_not_frozen(view, address, asset)
    entry = get_balance_entry(view, address, asset)
    if entry.amount + amount > f.MAX_AMOUNT:
        raise BalanceOverflowError(
            f"account {address.hex()} would hold more than {f.MAX_AMOUNT} {asset}")
    return entry


def _put_credited_entry(view: Overlay, address: bytes, asset: str, entry: BalanceEntry,
                        final: int) -> None:
    """Write `final` (what the account keeps of a non-zero credit) over `entry`.

    A credit to an account without a balance creates its account record, even when the
    whole credit is swept on (final 0): the account then exists, holding nothing.
    """
    put_balance_entry(view, address, asset, BalanceEntry(final, entry.tier, entry.window))
    if entry.amount:
        return
    record = get_account_record(view, address) or EMPTY_ACCOUNT
    assets = list(record.assets)
    if final:
        bisect.insort(assets, asset)
    put_account_record(view, address, AccountRecord(record.nonce, tuple(assets)))


# ------------------------------------------------------------------ tier rules


def _raise_over_limit(limits: TierLimits, address: bytes, asset: str, amount: int) -> None:
    if limits.balance_limit == 0:
        raise NotAllowedToHoldError(
            f"account {address.hex()} is in tier {limits.tier} of {asset}, which may not hold "
            f"it: a licensed provider must assign it a tier first")
    raise TierBalanceLimitError(
        f"crediting {amount} {asset} would take account {address.hex()} above the balance "
        f"limit {limits.balance_limit} of tier {limits.tier}; name a linked account "
        f"(tier_sweep) to receive the excess")


def apply_tiered_debit(view: Overlay, ctx: BlockContext, asset: str, address: bytes,
                       amount: int, *, payment: bool, policy: TierPolicy | None) -> None:
    """apply_debit, then the sender's tier: payment limits (for a payment) and counts.

    `policy` is `get_tier_policy(view, asset)`, read once by the caller. The balance,
    the tier and the rolling day are one record: read once, written once.
    """
    if policy is None:
        apply_debit(view, address, asset, amount)
        return
    entry = _get_debited_entry(view, address, asset, amount)
    tier = policy.default_tier if entry.tier is None else entry.tier
    window = entry.window
    if payment:
        window = compute_payment_window(policy.get_limits(tier), window, ctx.timestamp_ms,
                                        asset, address, amount)
    left = entry.amount - amount
    _put_debited_entry(view, address, asset, BalanceEntry(left, entry.tier, window))
    if left == 0:
        apply_holder_count(view, asset, tier, -1)


def _apply_limited_credit(view: Overlay, policy: TierPolicy, asset: str, address: bytes,
                          amount: int, *, sweep: bool) -> list[Event]:
    entry = _get_credited_entry(view, address, asset, amount)
    old = entry.amount
    tier = policy.default_tier if entry.tier is None else entry.tier
    limits = policy.get_limits(tier)
    if old + amount <= limits.balance_limit:  # the common case: no excess
        _put_credited_entry(view, address, asset, entry, old + amount)
        if old == 0:
            apply_holder_count(view, asset, tier, +1)
        return []
    excess = compute_excess(limits, old, amount)
    linked = get_sweep_account(view, asset, address) if sweep else None
    if linked is None:
        _raise_over_limit(limits, address, asset, amount)
    assert linked is not None
    final = old + amount - excess
    _put_credited_entry(view, address, asset, entry, final)
    events = _apply_limited_credit(view, policy, asset, linked, excess, sweep=False)
    events.insert(0, Event("swept", {"amount": excess, "asset": asset, "from": address,
                                     "to": linked}))
    if old == 0 and final:
        apply_holder_count(view, asset, tier, +1)
    return events


def apply_tiered_credit(view: Overlay, asset: str, address: bytes, amount: int, *,
                        policy: TierPolicy | None) -> list[Event]:
    """apply_credit within the recipient's tier balance limit.

    What would exceed the limit goes to the recipient's linked account (one hop: the
    linked account's own limit holds, its own link is not followed), else the credit is
    refused: `not_allowed_to_hold` for a tier whose limit is 0, `tier_balance_limit`
    otherwise. Returns the `swept` event, if any.
    """
    if policy is None:
        apply_credit(view, address, asset, amount)
        return []
    return _apply_limited_credit(view, policy, asset, address, amount, sweep=True)


# ------------------------------------------------------------------ transfer


def validate_transfer_fields(fields: Mapping[str, Any]) -> None:
    """`to`: 20-byte address; `asset`: asset symbol; `amount`: whole number > 0;
    optional `travel_rule`: the 32-byte commitment of ledger/travel.py."""
    if fields.keys() != TRANSFER_FIELDS:
        f.validate_field_names_optional(fields, TRANSFER_FIELDS, TRANSFER_OPTIONAL_FIELDS)
        f.expect_bytes(fields, TRAVEL_RULE_FIELD, size=32)
    f.expect_address(fields, "to")
    f.expect_asset(fields, "asset")
    f.expect_amount(fields, "amount")


def validate_asset_exists(view: StateReader, symbol: str) -> None:
    """Raise UnknownAssetError unless genesis or governance created `symbol`.

    Only the presence of the asset record is read (ledger/assets.py owns its form), so
    accounts stays below assets.
    """
    if view.get(get_asset_key(symbol)) is None:
        raise UnknownAssetError(f"no asset {symbol!r}; governance creates assets")


def check_transfer_state(view: StateReader, tx: Transaction) -> None:
    """At admission: the asset exists. A transfer of any other could only fail, and would
    use up the sender's nonce doing so; pending transfers cannot create an asset."""
    validate_asset_exists(view, tx.fields["asset"])


def apply_transfer(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """Move `amount` of `asset` from the sender to `to` (to oneself is allowed, a no-op)."""
    to: Address = tx.fields["to"]
    asset: str = tx.fields["asset"]
    amount: int = tx.fields["amount"]
    commitment: bytes | None = tx.fields.get(TRAVEL_RULE_FIELD)
    validate_asset_exists(view, asset)  # else it would fail as insufficient_balance
    rules = get_asset_rules(view, asset)  # tiers and travel rule: one read
    policy = None
    if rules is not None:
        if rules.travel_threshold:
            validate_travel_rule(view, rules, asset, tx.sender, to, amount, commitment)
        policy = rules if rules.tiered else None
    apply_tiered_debit(view, ctx, asset, tx.sender, amount, payment=True, policy=policy)
    swept = apply_tiered_credit(view, asset, to, amount, policy=policy)
    attributes: dict[str, bytes | str | int] = {"amount": amount, "asset": asset,
                                                "from": tx.sender, "to": to}
    if commitment is not None:
        attributes[TRAVEL_RULE_FIELD] = commitment
    return [Event("transferred", attributes), *swept]


def validate_genesis_accounts(genesis: Genesis) -> None:
    """Raise InvalidGenesisStateError on a duplicate account, bad symbol or amount."""
    seen: set[bytes] = set()
    supply: dict[str, int] = {}
    for account in genesis.accounts:
        if account.address in seen:
            raise InvalidGenesisStateError(f"account {account.address.hex()} is listed twice")
        seen.add(account.address)
        for asset, amount in account.balances.items():
            if not f.is_valid_asset(asset):
                raise InvalidGenesisStateError(f"{asset!r} is not a valid asset symbol")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise InvalidGenesisStateError(f"balance of {asset} must be a whole number >= 0")
            supply[asset] = supply.get(asset, 0) + amount
            if supply[asset] > f.MAX_AMOUNT:
                raise InvalidGenesisStateError(
                    f"total supply of {asset} exceeds {f.MAX_AMOUNT}")


class AccountsModule:
    """Accounts and transfers; the foundation other modules move value through."""

    name = "accounts"
    tx_types: Mapping[str, TxHandler] = {
        TRANSFER: TxHandler(validate_transfer_fields, apply_transfer, check_transfer_state),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        if genesis.app_state.get(self.name):
            raise InvalidGenesisStateError("app_state.accounts takes no settings yet")
        validate_genesis_accounts(genesis)
        for account in genesis.accounts:
            put_account_record(view, account.address, EMPTY_ACCOUNT)
            for asset in sorted(account.balances, key=str.encode):
                if account.balances[asset] > 0:
                    apply_credit(view, account.address, asset, account.balances[asset])
