"""Typed exceptions of the SDK, one per node error code, each carrying the node's reason.

`RpcClientError.reason` is the stable machine-readable reason (for example
nonce_too_low, rate_limited); `code` is the JSON-RPC code. Catch a subclass to act
on a kind of failure, or RpcClientError for all of them.
"""

from __future__ import annotations

from typing import Any


class RpcClientError(Exception):
    """The node answered with a JSON-RPC error, or could not be reached."""

    code: int = 0

    def __init__(self, code: int, reason: str, message: str,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.data = data or {}


class UnreachableError(RpcClientError):
    """Raised when the node cannot be reached or answers something that is not JSON-RPC."""


class InvalidRequestError(RpcClientError):
    """Raised when the node could not parse the request (a bug in the caller)."""


class MethodNotFoundError(RpcClientError):
    """Raised when the method does not exist (or is WebSocket-only over HTTP)."""


class InvalidParamsError(RpcClientError):
    """Raised when a parameter is missing or malformed."""


class InternalError(RpcClientError):
    """Raised when the node failed internally; the request changed nothing."""


class TxRejectedError(RpcClientError):
    """Raised when a transaction is refused at admission; `reason` names the rule."""


class NotFoundError(RpcClientError):
    """Raised when a block, account or subscription does not exist."""


class BusyError(RpcClientError):
    """Raised when the mempool or a per-client limit is full: retry later."""


class TooLargeError(RpcClientError):
    """Raised when a body or batch exceeds the node's limit."""


class RateLimitedError(RpcClientError):
    """Raised when this client sent too many requests; `retry_after_s` says how long to wait."""

    @property
    def retry_after_s(self) -> float:
        return float(self.data.get("retry_after_s", 1.0))


class RpcTimeoutError(RpcClientError, TimeoutError):
    """Raised when the node could not finish in time, or a wait of the SDK ran out (the
    node's answer, a final transaction, a notification); `data` holds what is known, e.g.
    `status`. It is a TimeoutError too, so `except TimeoutError` catches it."""


class UnauthorizedError(RpcClientError):
    """Raised when an admin method is called remotely without the admin token."""


TIMEOUT_CODE = -32005
"""The JSON-RPC code of a timeout, the node's or the SDK's own."""

ERRORS_BY_CODE: dict[int, type[RpcClientError]] = {
    -32700: InvalidRequestError, -32600: InvalidRequestError, -32601: MethodNotFoundError,
    -32602: InvalidParamsError, -32603: InternalError, -32000: TxRejectedError,
    -32001: NotFoundError, -32002: BusyError, -32003: TooLargeError,
    -32004: RateLimitedError, TIMEOUT_CODE: RpcTimeoutError, -32006: UnauthorizedError,
}


def error_from_json(error: Any) -> RpcClientError:
    """The typed exception of a JSON-RPC error object."""
    if not isinstance(error, dict):
        return UnreachableError(0, "bad_response", f"unexpected error object {error!r}")
    raw_data = error.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    code = error.get("code", 0) if isinstance(error.get("code"), int) else 0
    cls = ERRORS_BY_CODE.get(code, RpcClientError)
    return cls(code, str(data.get("reason", "error")), str(error.get("message", "")), data)


def unwrap(doc: Any) -> Any:
    """The result of a JSON-RPC response, or raise its typed error."""
    if not isinstance(doc, dict) or ("result" not in doc and "error" not in doc):
        raise UnreachableError(0, "bad_response", f"unexpected response {doc!r}")
    if "error" in doc:
        raise error_from_json(doc["error"])
    return doc["result"]
