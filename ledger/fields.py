"""Readers for transaction fields, one line per precondition in a module's validator.

Each raises MalformedFieldsError naming the field (wrong name, missing, wrong type or
form) or InvalidAmountError (a whole number out of range). They never read state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chain.crypto import ADDRESS_SIZE, Address
from ledger.errors import InvalidAmountError, MalformedFieldsError

MAX_AMOUNT = 2**64 - 1
"""The largest amount or balance: the largest integer canonical msgpack carries."""

ASSET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
"""An asset symbol: 1 to 32 ASCII letters, digits, '.', '_' or '-', not starting with a sign."""


def validate_field_names(fields: Mapping[str, Any], names: frozenset[str]) -> None:
    """Raise unless `fields` has exactly the field names `names`."""
    if len(fields) == len(names) and all(name in fields for name in names):
        return
    for name in sorted(names):
        if name not in fields:
            raise MalformedFieldsError(name, "is missing")
    unknown = sorted(set(fields) - names)[0]
    raise MalformedFieldsError(unknown, f"is not a field; expected {sorted(names)}")


def expect_address(fields: Mapping[str, Any], name: str) -> Address:
    value = fields[name]
    if not isinstance(value, bytes) or len(value) != ADDRESS_SIZE:
        raise MalformedFieldsError(name, f"expected a {ADDRESS_SIZE}-byte address")
    return Address(value)


def is_valid_asset(symbol: object) -> bool:
    """True when `symbol` is text that can name an asset."""
    return isinstance(symbol, str) and ASSET_PATTERN.fullmatch(symbol) is not None


def expect_asset(fields: Mapping[str, Any], name: str) -> str:
    value = fields[name]
    if not is_valid_asset(value):
        raise MalformedFieldsError(
            name, "expected an asset symbol of 1 to 32 letters, digits, '.', '_' or '-'")
    assert isinstance(value, str)
    return value


def expect_amount(fields: Mapping[str, Any], name: str) -> int:
    """A whole number in [1, MAX_AMOUNT]: non-integers are malformed, others invalid."""
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedFieldsError(name, "expected a whole number")
    if not 0 < value <= MAX_AMOUNT:
        raise InvalidAmountError(f"{name} must be between 1 and {MAX_AMOUNT}, got {value}")
    return value
