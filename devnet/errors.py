"""The devnet error: something the developer can fix, printed as one line.

Every failure devnet expects (a busy port, a devnet already running, a node that
does not answer) raises DevnetError with a message saying what to do next.
"""

from __future__ import annotations


class DevnetError(Exception):
    """Raised when a devnet command cannot do what was asked; the message says why."""

    code: str = "devnet_error"
