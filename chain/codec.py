"""Canonical msgpack: the one encoding of every signed or hashed object.

Canonical means exactly one byte string per value: maps with text keys sorted by
their UTF-8 bytes, the shortest integer and length forms, text as str and binary as
bin, no floats, no extension types. `decode` refuses anything else (non-canonical
forms, trailing bytes, unknown types), so that a hash or signature over bytes always
means one value. Never encode with plain msgpack.packb elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import msgpack

from chain.errors import MalformedError, TooLargeError

# A value that the canonical codec can carry.
Value = Any

MAX_DEPTH = 16


def _normalize(value: Value, depth: int = 0) -> Value:
    """Return `value` with maps sorted by key and lists as lists, checking types."""
    if depth > MAX_DEPTH:
        raise MalformedError("value nests deeper than 16 levels")
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    if isinstance(value, list | tuple):
        return [_normalize(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise MalformedError(f"map key {key!r} is not text")
        return {
            key: _normalize(value[key], depth + 1)
            for key in sorted(value, key=lambda k: k.encode())
        }
    raise MalformedError(f"type {type(value).__name__} cannot be encoded canonically")


def encode(value: Value) -> bytes:
    """Encode `value` canonically. Tuples and lists both become msgpack arrays."""
    try:
        encoded: bytes = msgpack.packb(_normalize(value), use_bin_type=True)
    except OverflowError as e:
        raise MalformedError("integer outside the 64-bit range") from e
    return encoded


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise MalformedError(f"msgpack extension type {code} is not allowed")


def _check_types(value: Value, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise MalformedError("value nests deeper than 16 levels")
    if isinstance(value, float):
        raise MalformedError("floats are not allowed")
    if isinstance(value, tuple):
        for item in value:
            _check_types(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_types(item, depth + 1)


def decode(data: bytes, *, max_size: int = 16 * 1024 * 1024) -> Value:
    """Decode canonical bytes; arrays come back as tuples, maps as dicts.

    Raises MalformedError for anything but exactly one canonical value, and
    TooLargeError above `max_size` bytes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError("expected bytes")
    if len(data) > max_size:
        raise TooLargeError(f"{len(data)} bytes exceeds the limit of {max_size}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
        )
    except MalformedError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, UnicodeDecodeError) as e:
        raise MalformedError(f"not valid msgpack: {e}") from e
    _check_types(value)
    if encode(value) != bytes(data):
        raise MalformedError("encoding is not canonical")
    return value


# Field readers used by every type's from_value(): one line per precondition.


def expect_tuple(value: Value, length: int, what: str) -> tuple[Value, ...]:
    if not isinstance(value, tuple) or len(value) != length:
        raise MalformedError(f"{what}: expected an array of {length} items")
    return value


def expect_int(value: Value, what: str, *, lo: int = 0, hi: int = 2**64 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedError(f"{what}: expected an integer in [{lo}, {hi}]")
    return value


def expect_bytes(value: Value, what: str, *, size: int | None = None,
                 max_size: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedError(f"{what}: expected bytes")
    if size is not None and len(value) != size:
        raise MalformedError(f"{what}: expected {size} bytes, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise MalformedError(f"{what}: longer than {max_size} bytes")
    return value


def expect_str(value: Value, what: str, *, max_len: int = 256) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise MalformedError(f"{what}: expected text of at most {max_len} characters")
    return value


def expect_map(value: Value, what: str) -> dict[str, Value]:
    if not isinstance(value, dict):
        raise MalformedError(f"{what}: expected a map")
    return value
