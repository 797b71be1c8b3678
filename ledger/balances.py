"""The balance table: what an account holds of an asset, and its tier and rolling day.

One record per (account, asset) at `bal/v1/<address>/<asset>` (ledger/keys.py), so a
tiered payment reads and writes one record per side, as a plain one does:

- `amount`, a positive integer: the account holds `amount`, and (for an asset with
  identity tiers) holds the asset's default tier and sent nothing in the rolling day.
  Every record of an asset without tiers has this form.
- `[amount, tier or nil, [[hour, amount sent], ...]]`: the same with the tier a
  licensed provider assigned (nil: the default) and the rolling day's hourly sends,
  oldest first (ledger/tiers.py). `amount` may be 0: the tier and the sends in the
  rolling day outlive the balance.

Absent means 0, no tier assigned, nothing sent. Exactly one form per value: the array
never says what the integer (or absence) says. ledger/accounts.py moves the amounts,
ledger/tiers.py owns the tier and the rolling day. Pure.
"""

from __future__ import annotations

from typing import NamedTuple

from chain import codec
from chain.errors import ChainError
from ledger.errors import CorruptStateError
from ledger.fields import MAX_AMOUNT
from ledger.keys import get_balance_key
from ledger.state import Overlay, StateReader

MAX_TIER = 255
"""Tiers are numbered 0 to 255."""

Window = tuple[tuple[int, int], ...]
"""(clock hour, amount sent in that hour) of the rolling day, oldest first."""


class BalanceEntry(NamedTuple):
    """One account's record for one asset (a tuple: built on every value move)."""

    amount: int
    """What the account holds, in the asset's smallest unit."""
    tier: int | None
    """The tier assigned by a licensed provider; None: the asset's default tier."""
    window: Window
    """The hourly sends of the rolling day (pruned when the account next pays)."""


NO_BALANCE = BalanceEntry(0, None, ())

_MEMO_SIZE = 65_536
_decoded: dict[bytes, BalanceEntry] = {}
"""Encoded record -> the record: a memo of a pure function (the bytes say everything),
filled by both directions, as for account records: every value move reads two."""


def _memo(data: bytes, entry: BalanceEntry) -> None:
    if len(_decoded) >= _MEMO_SIZE:
        _decoded.clear()
    _decoded[data] = entry


def _is_amount(value: object, lo: int) -> bool:
    return type(value) is int and lo <= value <= MAX_AMOUNT


def decode_balance_entry(data: bytes) -> BalanceEntry:
    """The record encoded in `data`; raises CorruptStateError for any other form."""
    entry = _decoded.get(data)
    if entry is not None:
        return entry
    try:
        value = codec.decode(data)
    except ChainError as e:
        raise CorruptStateError(f"balance record does not decode: {e}") from e
    if _is_amount(value, 1):
        entry = BalanceEntry(value, None, ())
    elif (isinstance(value, tuple) and len(value) == 3 and _is_amount(value[0], 0)
          and (value[1] is None or (type(value[1]) is int and 0 <= value[1] <= MAX_TIER))
          and isinstance(value[2], tuple) and _is_window(value[2])
          and (value[1] is not None or value[2])):
        entry = BalanceEntry(value[0], value[1], value[2])
    else:
        raise CorruptStateError(f"balance record has unexpected form {value!r}")
    _memo(data, entry)
    return entry


def _is_window(window: tuple[object, ...]) -> bool:
    previous = -1
    for bucket in window:
        if not (isinstance(bucket, tuple) and len(bucket) == 2 and _is_amount(bucket[0], 0)
                and _is_amount(bucket[1], 1) and bucket[0] > previous):
            return False
        previous = bucket[0]
    return True


def encode_balance_entry(entry: BalanceEntry) -> bytes | None:
    """The record's canonical bytes; None when it says nothing (the key is then absent)."""
    if entry.tier is None and not entry.window:
        if not entry.amount:
            return None
        data = codec.pack_unchecked(entry.amount)
    else:
        # Canonical by construction (integers, nil, arrays): no walk over the value.
        data = codec.pack_unchecked(entry)
    _memo(data, entry)
    return data


def get_balance_entry(view: StateReader, address: bytes, asset: str) -> BalanceEntry:
    """`address`'s record for `asset` (NO_BALANCE when absent)."""
    data = view.get(get_balance_key(address, asset))
    if data is None:
        return NO_BALANCE
    try:
        return decode_balance_entry(data)
    except CorruptStateError as e:
        raise CorruptStateError(f"balance of {address.hex()} in {asset}: {e}") from e


def get_balance(view: StateReader, address: bytes, asset: str) -> int:
    """`address`'s balance of `asset`; 0 when it holds none."""
    return get_balance_entry(view, address, asset).amount


def put_balance_entry(view: Overlay, address: bytes, asset: str, entry: BalanceEntry) -> None:
    data = encode_balance_entry(entry)
    key = get_balance_key(address, asset)
    if data is None:
        view.delete(key)
    else:
        view.put(key, data)
