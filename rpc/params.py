"""Parsing JSON-RPC params into chain values, and chain values into JSON.

Shared by every method module. A bad param raises the dispatcher's invalid_params
error, naming the param; nothing here reads the node.
"""

from __future__ import annotations

from typing import Any

from rpc.dispatcher import invalid_params


def parse_hex(value: Any, name: str, *, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise invalid_params(f"{name} must be a hex string")
    try:
        data = bytes.fromhex(value.removeprefix("0x"))
    except ValueError as e:
        raise invalid_params(f"{name} is not valid hex") from e
    if size is not None and len(data) != size:
        raise invalid_params(f"{name} must be {size} bytes ({2 * size} hex digits)")
    return data


def parse_int(value: Any, name: str, *, lo: int = 0, hi: int = 2**63) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise invalid_params(f"{name} must be an integer in [{lo}, {hi}]")
    return value


def to_json(value: Any) -> Any:
    """Canonical values as JSON: bytes become hex, tuples lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
