"""The key-value view the ledger executes over, and its buffered overlay.

`Overlay` buffers writes over a read-only base so a block (and each transaction
inside it, through `child()`) can be applied, inspected with `changes()` and then
kept or thrown away. It never touches storage: the node turns `changes()` into one
atomic write batch.
"""

from __future__ import annotations

from typing import Any, Protocol

from chain import codec
from chain.errors import ChainError
from ledger.errors import CorruptStateError


class StateReader(Protocol):
    """Read access to committed state: the value at a key, or None when absent.

    A plain `dict[bytes, bytes]` is a StateReader (used by tests and the simulator).
    """

    def get(self, key: bytes, /) -> bytes | None: ...


class Overlay:
    """A buffered read-write view over `base`; reads see this overlay's own writes first."""

    __slots__ = ("_base", "_writes")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes, /) -> bytes | None:
        """The value at `key` as this view sees it, or None when absent or deleted."""
        writes = self._writes
        if key in writes:
            return writes[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value` (recorded even when equal to the base's value)."""
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        """Remove `key`; a no-op against the base when the base has no such key."""
        if self._base.get(key) is None:
            self._writes.pop(key, None)
        else:
            self._writes[key] = None

    def child(self) -> Overlay:
        """A nested overlay over this one: commit() it to keep its writes, drop it to undo."""
        return Overlay(self)

    def commit(self) -> None:
        """Merge this overlay's writes into its parent overlay, then start empty again."""
        parent = self._base
        if not isinstance(parent, Overlay):
            raise TypeError("commit() merges a child into its parent; this overlay has none")
        for key, value in self._writes.items():
            if value is None:
                parent.delete(key)
            else:
                parent._writes[key] = value
        self._writes = {}

    def changes(self) -> dict[bytes, bytes | None]:
        """What this overlay changed against its base, in write order (None = deleted)."""
        return dict(self._writes)

    def __len__(self) -> int:
        return len(self._writes)


def get_value(view: StateReader, key: bytes, what: str) -> Any:
    """The decoded canonical value at `key`, or None when absent; CorruptStateError if bad."""
    data = view.get(key)
    if data is None:
        return None
    try:
        return codec.decode(data)
    except ChainError as e:
        raise CorruptStateError(f"the {what} at {key!r} does not decode: {e}") from e


def put_value(view: Overlay, key: bytes, value: Any) -> None:
    """Write `value` canonically encoded at `key`."""
    view.put(key, codec.encode(value))
