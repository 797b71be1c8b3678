"""The error tree of the ledger: why a transaction is refused or fails.

Every error has a stable machine-readable `code` (listed in docs/ledger.md) and a
message a person can act on; the RPC reports both. Our own bugs are assertions or
plain exceptions, never LedgerError.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of all errors raised by ledger rules."""

    code: str
    """The stable machine-readable reason, for example "insufficient_balance"."""
    message: str
    """What went wrong and what to do about it, for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _CodedError(LedgerError):
    """A LedgerError whose code is fixed by its class."""

    CODE = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class NonceTooLowError(_CodedError):
    """Raised when a transaction's nonce was already used by its sender."""

    CODE = "nonce_too_low"


class NonceTooHighError(_CodedError):
    """Raised when a transaction's nonce skips ahead of the sender's next nonce."""

    CODE = "nonce_too_high"


class InsufficientBalanceError(_CodedError):
    """Raised when an account holds less of an asset than it tries to move."""

    CODE = "insufficient_balance"


class BalanceOverflowError(_CodedError):
    """Raised when a credit would take a balance above the largest encodable amount."""

    CODE = "balance_overflow"


class UnknownAccountError(_CodedError):
    """Raised when an address has no account record (never funded or created)."""

    CODE = "unknown_account"


class UnknownTxTypeError(_CodedError):
    """Raised when no ledger module handles a transaction's type."""

    CODE = "unknown_tx_type"


class MalformedFieldsError(_CodedError):
    """Raised when a transaction's fields are missing, unknown or of the wrong type."""

    CODE = "malformed_fields"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


class InvalidAmountError(_CodedError):
    """Raised when an amount is a whole number but out of range (zero, negative, too big)."""

    CODE = "invalid_amount"


class UnauthorizedError(_CodedError):
    """Raised when a transaction's signers may not act for its sender."""

    CODE = "unauthorized"


class WrongChainError(_CodedError):
    """Raised when a transaction names another chain than the block being executed."""

    CODE = "wrong_chain"


class InvalidGenesisStateError(_CodedError):
    """Raised when a genesis document cannot be applied (bad asset, duplicate account...)."""

    CODE = "invalid_genesis"


class CorruptStateError(_CodedError):
    """Raised when a state record is missing or does not decode: the data directory is bad."""

    CODE = "corrupt_state"


class TxNotApplicable(LedgerError):
    """Raised when a transaction must never be in a block (wrong nonce, unauthorized...).

    Carries the underlying error's code. A proposer drops such a transaction; a
    validator rejects a block that contains one. `index` names its place in the block.
    """

    def __init__(self, cause: LedgerError, index: int | None = None) -> None:
        where = "" if index is None else f"transaction {index} of the block: "
        super().__init__(cause.code, where + cause.message)
        self.cause = cause
        self.index = index
