"""Canonical msgpack: the one encoding of every signed or hashed object.

Canonical means exactly one byte string per value: maps with text keys sorted by
their UTF-8 bytes, the shortest integer and length forms, text as str and binary as
bin, no floats, no extension types. `decode` refuses anything else (non-canonical
forms, trailing bytes, unknown types), so that a hash or signature over bytes always
means one value. Never encode with plain msgpack.packb elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, NoReturn

import msgpack

from chain.errors import MalformedError, TooLargeError

# A value that the canonical codec can carry.
Value = Any

MAX_DEPTH = 16


_NoneType = type(None)
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers a canonical value may hold (msgpack's int64 and uint64)."""
_LEAF_TYPES = frozenset({bytes, str, bool, _NoneType})


def _is_ready(value: Value, depth: int = 0) -> bool:
    """Check types and ranges; True when `value` packs canonically as it is.

    Raises MalformedError for a value with no canonical form. Returns False when a map's
    keys are not in order (encode then sorts them; decode refuses). Text keys sort by
    code point, which is the order of their UTF-8 bytes. Leaves inside arrays and maps
    are checked inline: this runs on every decode and encode.
    """
    if depth > MAX_DEPTH:
        raise MalformedError("value nests deeper than 16 levels")
    kind = type(value)
    if kind is tuple or kind is list:
        items = value
    elif kind is dict:
        keys = list(value)
        for key in keys:
            if type(key) is not str:
                raise MalformedError(f"map key {key!r} is not text")
        ready = keys == sorted(keys)
        items = value.values()
    elif kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise MalformedError("integer outside the 64-bit range")
        return True
    elif kind in _LEAF_TYPES:
        return True
    else:
        return _is_ready_other(value, depth)
    if kind is not dict:
        ready = True
    if depth >= MAX_DEPTH and items:
        raise MalformedError("value nests deeper than 16 levels")
    for item in items:
        item_kind = type(item)
        if item_kind in _LEAF_TYPES:
            continue
        if item_kind is int:
            if not INT_MIN <= item <= INT_MAX:
                raise MalformedError("integer outside the 64-bit range")
            continue
        ready = _is_ready(item, depth + 1) and ready
    return ready


def _is_ready_other(value: Value, depth: int) -> bool:
    """_is_ready for anything but the builtin types: never ready as it is."""
    if isinstance(value, Mapping):
        _is_ready(dict(value), depth)
        return False
    if isinstance(value, bool | int | str | bytes | list | tuple):
        return _is_ready(_as_builtin(value), depth) and False
    if isinstance(value, float):
        raise MalformedError("floats are not allowed")
    raise MalformedError(f"type {type(value).__name__} cannot be encoded canonically")


def _as_builtin(value: Value) -> Value:
    """Subclasses (IntEnum, NewType-free subclasses of bytes...) as their base type."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    return list(value)


def _normalize(value: Value) -> Value:
    """`value` with maps sorted by key and subclasses as builtins (types already checked)."""
    kind = type(value)
    if kind is tuple or kind is list:
        return [_normalize(item) for item in value]
    if kind is dict or isinstance(value, Mapping):
        return {key: _normalize(value[key]) for key in sorted(value)}
    if kind is int or kind is bytes or kind is str or kind is bool or kind is _NoneType:
        return value
    return _normalize(_as_builtin(value))


_packers = threading.local()
"""One msgpack Packer per thread: msgpack.packb makes a new one (and its buffer) per
call, which cost more than packing a small value (0.6 of 0.9 us for an account
record). A Packer is not safe to share between threads."""


def _pack(value: Value) -> bytes:
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    try:
        encoded: bytes = packer.pack(value)
    except (OverflowError, ValueError, TypeError, UnicodeEncodeError) as e:
        raise MalformedError(f"value cannot be encoded: {e}") from e
    return encoded


def encode(value: Value) -> bytes:
    """Encode `value` canonically. Tuples and lists both become msgpack arrays."""
    if _is_ready(value):
        return _pack(value)
    return _pack(_normalize(value))


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise MalformedError(f"msgpack extension type {code} is not allowed")


def unpack_unchecked(data: bytes) -> Value:
    """msgpack bytes to a value with decode's unpacking rules but WITHOUT its canonical
    checks; the caller must check the value's form and that `pack_unchecked(value) ==
    data` itself (chain.tx does so for the transaction shape). Raises MalformedError."""
    try:
        return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True,
                               ext_hook=_reject_ext)
    except MalformedError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, UnicodeDecodeError) as e:
        raise MalformedError(f"not valid msgpack: {e}") from e


def pack_unchecked(value: Value) -> bytes:
    """msgpack of a value whose canonical form the caller has checked."""
    return _pack(value)


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
    if not _is_ready(value) or _pack(value) != bytes(data):
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
