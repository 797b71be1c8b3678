"""The contract between the execution engine and its modules, and what execution yields.

A ledger module owns some transaction types and some state tables. For each type it
gives a stateless field validator (used at mempool admission and again at execution)
and a handler that applies the transaction to an overlay. Nothing here reads a clock
or does I/O: everything a handler may know about its block is in BlockContext.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chain import codec
from chain.crypto import PublicKey
from chain.errors import MalformedError
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger.errors import LedgerError
from ledger.state import Overlay, StateReader

OK = "ok"
"""The TxResult code of a transaction that succeeded."""

MAX_MESSAGE_LEN = 1024
"""Longest result message kept; longer ones are cut so results always decode."""

EventValue = bytes | str | int
"""What an event attribute may hold: canonical, integer-only values."""


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a transaction may know about the block that executes it."""

    chain_id: str
    """The chain being executed; a transaction for another chain never applies."""
    height: int
    """The block's height (1 for the first block after genesis)."""
    timestamp_ms: int
    """The block header's timestamp, milliseconds since the Unix epoch; never a local clock."""
    proposer: PublicKey
    """The public key of the validator that proposed the block."""


@dataclass(frozen=True, slots=True)
class Event:
    """Something a transaction did, for subscribers and explorers (e.g. "transferred")."""

    kind: str
    """What happened, a snake_case name documented with the tx type that emits it."""
    attributes: dict[str, EventValue]
    """Its details; values are bytes, text or integers only."""

    def to_value(self) -> list[Any]:
        # Modules write the attributes in canonical key order, so the stored result
        # encodes without re-sorting; codec.encode sorts them if one did not. Checking
        # the order here as well cost 4-5 % of a loaded node's time at commit.
        return [self.kind, self.attributes]

    @classmethod
    def from_value(cls, value: Any) -> Event:
        kind, attributes = codec.expect_tuple(value, 2, "event")
        attributes = codec.expect_map(attributes, "event attributes")
        for key, item in attributes.items():
            if isinstance(item, bool) or not isinstance(item, bytes | str | int):
                raise MalformedError(f"event attribute {key!r}: expected bytes, text or integer")
        return cls(codec.expect_str(kind, "event kind", max_len=64), attributes)


@dataclass(frozen=True, slots=True)
class TxResult:
    """The outcome of executing one transaction of a block."""

    code: str
    """"ok" on success, else the stable rejection code (see docs/ledger.md)."""
    message: str
    """Empty on success, else what went wrong, for a person."""
    events: tuple[Event, ...] = ()
    """What the transaction did, in order; empty when it failed."""

    @property
    def is_ok(self) -> bool:
        return self.code == OK

    @classmethod
    def ok(cls, events: list[Event] | tuple[Event, ...]) -> TxResult:
        return cls(OK, "", tuple(events))

    @classmethod
    def failed(cls, error: LedgerError) -> TxResult:
        return cls(error.code, error.message[:MAX_MESSAGE_LEN], ())

    def to_value(self) -> list[Any]:
        return [self.code, self.message, [event.to_value() for event in self.events]]

    @classmethod
    def from_value(cls, value: Any) -> TxResult:
        code, message, events = codec.expect_tuple(value, 3, "tx result")
        if not isinstance(events, tuple):
            raise MalformedError("tx result events: expected an array")
        return cls(
            code=codec.expect_str(code, "tx result code", max_len=64),
            message=codec.expect_str(message, "tx result message", max_len=MAX_MESSAGE_LEN),
            events=tuple(Event.from_value(event) for event in events),
        )


FieldValidator = Callable[[Mapping[str, Any]], None]
"""Checks a tx's fields without state; raises MalformedFieldsError, InvalidAmountError..."""

TxApply = Callable[[Overlay, BlockContext, Transaction], list[Event]]
"""Applies a tx whose fields passed validation; raises LedgerError on a rule failure."""

StateCheck = Callable[[StateReader, Transaction], None]
"""Checks at admission, against the committed state, what no pending transaction can
make right (a transfer of an asset that does not exist); raises LedgerError."""


@dataclass(frozen=True, slots=True)
class TxHandler:
    """How a module validates and applies one transaction type."""

    validate_fields: FieldValidator
    """Stateless check of the fields; run at admission and again before `apply`."""
    apply: TxApply
    """State transition; runs in a child overlay that is dropped if it raises LedgerError."""
    check_state: StateCheck | None = None
    """Optional stateful admission check, after the sender, signers and nonce are
    checked; `apply` must still refuse the same (the state may change before the block)."""


class LedgerModule(Protocol):
    """A unit of ledger rules: accounts, assets, registry, governance..."""

    @property
    def name(self) -> str:
        """Unique module name; also its key in genesis.app_state."""
        ...

    @property
    def tx_types(self) -> Mapping[str, TxHandler]:
        """The transaction types this module owns; each type belongs to one module."""
        ...

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        """Write this module's initial state; raises InvalidGenesisStateError."""
        ...

