"""JSON-RPC 2.0 over HTTP: request parsing, dispatch, batches, limits and typed errors.

This module knows the protocol, not the methods: rpc.methods.chain registers the methods. A
bad request of any kind (invalid JSON, nested too deeply, wrong shape, unknown method,
bad params, too large) gets a well-formed JSON-RPC error and never reaches the node's state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rpc.openrpc import Handler, Method, MethodSpec

log = logging.getLogger("govchain.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TX_REJECTED = -32000
NOT_FOUND = -32001
BUSY = -32002
TOO_LARGE = -32003
RATE_LIMITED = -32004
TIMEOUT = -32005
UNAUTHORIZED = -32006

MAX_JSON_DEPTH = 64
"""Arrays and objects nested in one request, the envelope and a batch included: far
more than any method needs, and few enough that no handler recurses dangerously."""


class RpcError(Exception):
    """An error answered to the client: JSON-RPC code, stable reason and message."""

    def __init__(self, code: int, reason: str, message: str,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.data = data or {}

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message,
                "data": {"reason": self.reason, **self.data}}


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, "invalid_params", message)


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling, as far as the transport knows."""

    remote: str | None = None
    """The client's IP address."""
    is_admin: bool = False
    """True when the caller may use admin methods (localhost or the admin token)."""


Admit = Callable[[web.Request], CallContext]
"""Checks a request before its body is read (rate limit, admin auth); raises RpcError."""


class RpcDispatcher:
    """Registered methods and the JSON-RPC request/response cycle."""

    def __init__(self, *, max_batch: int) -> None:
        self.methods: dict[str, Method] = {}
        self.max_batch = max_batch
        self.calls_by_method: dict[tuple[str, str], int] = {}

    def register(self, name: str, handler: Handler, params: tuple[str, ...],
                 summary: str, *, spec: MethodSpec | None = None) -> None:
        if spec is not None:
            assert tuple(p.name for p in spec.params) == params, f"{name}: spec params differ"
        self.methods[name] = Method(name, handler, params, summary, spec)

    async def handle_body(self, body: bytes | str, context: CallContext | None = None) -> Any:
        """The response document for a request body (None for only notifications)."""
        try:
            doc = decode_request(body, context)
        except RpcError as e:
            return _error_response(None, e)
        return await self.handle_doc(doc, context)

    async def handle_doc(self, doc: Any, context: CallContext | None = None) -> Any:
        """The response document for a decoded request (None for only notifications)."""
        if isinstance(doc, list):
            if not doc:
                return _error_response(None, RpcError(INVALID_REQUEST, "invalid_request",
                                                      "empty batch"))
            if len(doc) > self.max_batch:
                return _error_response(None, RpcError(
                    TOO_LARGE, "batch_too_large",
                    f"batch of {len(doc)} calls exceeds the limit of {self.max_batch}"))
            responses = [await self.handle_call(call, context) for call in doc]
            answered = [r for r in responses if r is not None]
            return answered or None
        return await self.handle_call(doc, context)

    async def handle_call(self, call: Any, context: CallContext | None = None
                          ) -> dict[str, Any] | None:
        if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or \
                not isinstance(call.get("method"), str):
            call_id = call.get("id") if isinstance(call, dict) else None
            if not _is_valid_id(call_id):
                call_id = None
            return _error_response(call_id, RpcError(
                INVALID_REQUEST, "invalid_request",
                'expected an object with "jsonrpc": "2.0" and a "method" string'))
        is_notification = "id" not in call
        call_id = call.get("id")
        if not _is_valid_id(call_id):
            return _error_response(None, RpcError(INVALID_REQUEST, "invalid_request",
                                                  "id must be a string, a number or null"))
        name = call["method"]
        try:
            method = self.methods.get(name)
            if method is None:
                raise RpcError(METHOD_NOT_FOUND, "method_not_found",
                               f"method {name!r} does not exist; rpc_discover lists them")
            if method.is_admin and not (context is not None and context.is_admin):
                raise RpcError(UNAUTHORIZED, "unauthorized",
                               f"{name} is an admin method: call it from localhost or send "
                               "the node's admin token (Authorization: Bearer <token>)")
            params = _named_params(method, call.get("params"))
            result = await method.handler(params)
        except RpcError as e:
            self._count(name, e.reason)
            return None if is_notification else _error_response(call_id, e)
        except Exception:
            log.exception("internal error in RPC method %s", name)
            self._count(name, "internal_error")
            return None if is_notification else _error_response(
                call_id, RpcError(INTERNAL_ERROR, "internal_error", "internal error"))
        self._count(name, "ok")
        return None if is_notification else {"jsonrpc": "2.0", "id": call_id, "result": result}

    def _count(self, name: str, status: str) -> None:
        key = (name if name in self.methods else "unknown", status)
        self.calls_by_method[key] = self.calls_by_method.get(key, 0) + 1


def decode_request(body: bytes | str, context: CallContext | None = None) -> Any:
    """The JSON document of a request body; RpcError parse_error if it is not JSON or is
    nested deeper than MAX_JSON_DEPTH arrays and objects."""
    try:
        doc = json.loads(body)
        too_deep = _is_deeper_than(doc, MAX_JSON_DEPTH)
    except (ValueError, UnicodeDecodeError) as e:
        raise RpcError(PARSE_ERROR, "parse_error", f"request is not valid JSON: {e}") from e
    except RecursionError:
        # The decoder recurses once per level and gives up near the interpreter's limit
        # (about 1,000 levels): answered like any other body that is too deep.
        too_deep = True
    if too_deep:
        log.warning("refused a request from %s: nested deeper than %d levels",
                    context.remote if context is not None else "?", MAX_JSON_DEPTH)
        raise RpcError(PARSE_ERROR, "parse_error",
                       f"request is nested too deeply: at most {MAX_JSON_DEPTH} levels of "
                       "arrays and objects")
    return doc


def _is_deeper_than(doc: Any, limit: int) -> bool:
    """True when `doc` holds more than `limit` nested arrays and objects (no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)] if isinstance(doc, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def _is_valid_id(call_id: Any) -> bool:
    return call_id is None or (isinstance(call_id, str | int | float)
                               and not isinstance(call_id, bool))


def _named_params(method: Method, params: Any) -> dict[str, Any]:
    if params is None:
        params = {}
    if isinstance(params, dict):
        unknown = set(params) - set(method.params)
        if unknown:
            raise invalid_params(f"{method.name} has no parameter {sorted(unknown)[0]!r}; "
                                 f"it takes {list(method.params)}")
        named = params
    elif isinstance(params, list):
        if len(params) > len(method.params):
            raise invalid_params(f"{method.name} takes at most {len(method.params)} "
                                 "positional parameters")
        named = dict(zip(method.params, params, strict=False))
    else:
        raise invalid_params("params must be an object or an array")
    if method.spec is not None:
        for param in method.spec.params:
            if param.required and named.get(param.name) is None:
                raise invalid_params(f"{method.name} needs `{param.name}`: {param.description}")
    return named


def _error_response(call_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": error.to_json()}


HTTP_STATUS = {RATE_LIMITED: 429, UNAUTHORIZED: 403, BUSY: 503}


def make_rpc_handler(dispatcher: RpcDispatcher, max_body_bytes: int, admit: Admit | None = None
                     ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        context = CallContext(remote=request.remote)
        if admit is not None:
            try:
                context = admit(request)
            except RpcError as e:
                return _json_response(_error_response(None, e),
                                      status=HTTP_STATUS.get(e.code, 400))
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _json_response(_error_response(None, RpcError(
                TOO_LARGE, "body_too_large",
                f"request body exceeds the limit of {max_body_bytes} bytes")), status=413)
        chunks: list[bytes] = []
        size = 0
        while size <= max_body_bytes:
            chunk = await request.content.read(max_body_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        if len(body) > max_body_bytes:
            return _json_response(_error_response(None, RpcError(
                TOO_LARGE, "body_too_large",
                f"request body exceeds the limit of {max_body_bytes} bytes")), status=413)
        result = await dispatcher.handle_body(body, context)
        if result is None:
            return web.Response(status=204)
        return _json_response(result)
    return handle


def _json_default(value: Any) -> Any:
    """Bytes inside results travel as hex, like every hash and key in the API."""
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_response(doc: Any, status: int = 200) -> web.Response:
    body = json.dumps(doc, separators=(",", ":"), default=_json_default).encode()
    return web.Response(body=body, status=status, content_type="application/json")
