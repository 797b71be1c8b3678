"""Errors of the node layer, each with a stable code for RPC and CLI output."""

from __future__ import annotations

from node.rejection import RejectionCode


class NodeError(Exception):
    """Root of errors raised by the node layer."""

    code: str = "node_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(NodeError):
    """Raised when the node home, its config file or a key file is missing or wrong."""

    code = "config_error"


class MempoolError(NodeError):
    """Raised when the mempool refuses a transaction at admission."""

    code: RejectionCode

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class MempoolFullError(MempoolError):
    """Raised when the mempool is at its cap: the client should retry later."""

    def __init__(self, message: str) -> None:
        super().__init__(RejectionCode.MEMPOOL_FULL, message)
