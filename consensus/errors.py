"""The error tree of the consensus layer.

ConsensusError is raised only for misuse by our own shell (an event that the shell
must never send). Remote input never raises here: the core ignores a bad message or
reports it as evidence.
"""

from __future__ import annotations


class ConsensusError(Exception):
    """Root of all errors raised by the consensus layer."""

    code: str = "consensus_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownEventError(ConsensusError):
    """Raised when the core is given an object that is none of the Event types."""

    code = "unknown_event"


class HeightOrderError(ConsensusError):
    """Raised when StartHeight does not move the core to a higher height."""

    code = "height_order"


class NotStartedError(ConsensusError):
    """Raised when the core gets an event that needs a height before any StartHeight."""

    code = "not_started"


class BuiltBlockMismatchError(ConsensusError):
    """Raised when BlockBuilt carries a block that does not fit the RequestBlock it answers."""

    code = "built_block_mismatch"
