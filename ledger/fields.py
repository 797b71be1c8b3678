"""Readers for transaction fields, one line per precondition in a module's validator.

Each raises MalformedFieldsError naming the field (wrong name, missing, wrong type or
form) or InvalidAmountError (a whole number out of range). They never read state.
"""

from __future__ import annotations

import functools
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
    if fields.keys() == names:
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
    return isinstance(symbol, str) and len(symbol) <= 32 and _is_asset_symbol(symbol)


# A chain has few symbols and every transfer names one; only strings of a symbol's
# length are cached, so the cache stays small whatever transactions send.
@functools.lru_cache(maxsize=4096)
def _is_asset_symbol(symbol: str) -> bool:
    return ASSET_PATTERN.fullmatch(symbol) is not None


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


NAME_PATTERN = ASSET_PATTERN
"""A namespace name or role scope follows the asset symbol rule (never contains '/')."""


def validate_field_names_optional(fields: Mapping[str, Any], required: frozenset[str],
                                  optional: frozenset[str]) -> None:
    """Raise unless `fields` has every `required` name and no name outside both sets."""
    for name in sorted(required):
        if name not in fields:
            raise MalformedFieldsError(name, "is missing")
    unknown = sorted(set(fields) - required - optional)
    if unknown:
        raise MalformedFieldsError(
            unknown[0], f"is not a field; expected {sorted(required | optional)}")


def expect_int(fields: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedFieldsError(name, f"expected a whole number in [{lo}, {hi}]")
    return value


def expect_bool(fields: Mapping[str, Any], name: str) -> bool:
    value = fields[name]
    if not isinstance(value, bool):
        raise MalformedFieldsError(name, "expected true or false")
    return value


def expect_text(fields: Mapping[str, Any], name: str, max_len: int, *,
                pattern: re.Pattern[str] | None = None) -> str:
    value = fields[name]
    if not isinstance(value, str) or len(value) > max_len:
        raise MalformedFieldsError(name, f"expected text of at most {max_len} characters")
    if pattern is not None and pattern.fullmatch(value) is None:
        raise MalformedFieldsError(name, f"must match {pattern.pattern}")
    return value


def expect_bytes(fields: Mapping[str, Any], name: str, *, size: int | None = None,
                 max_size: int | None = None) -> bytes:
    value = fields[name]
    if not isinstance(value, bytes):
        raise MalformedFieldsError(name, "expected bytes")
    if size is not None and len(value) != size:
        raise MalformedFieldsError(name, f"expected {size} bytes, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise MalformedFieldsError(name, f"expected at most {max_size} bytes")
    return value


def expect_public_key(fields: Mapping[str, Any], name: str) -> bytes:
    return expect_bytes(fields, name, size=32)


def expect_name(fields: Mapping[str, Any], name: str) -> str:
    """A namespace or scope name: the asset symbol rule."""
    return expect_text(fields, name, 32, pattern=NAME_PATTERN)


def expect_map(fields: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = fields[name]
    if not isinstance(value, dict):
        raise MalformedFieldsError(name, "expected a map")
    return value
