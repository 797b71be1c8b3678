"""Method descriptions (params and result as JSON Schema, errors) and the OpenRPC document.

Every RPC method carries its MethodSpec at registration (RpcDispatcher.register), so
`rpc_discover` describes exactly the methods the server runs, from one place. This
module holds no method logic and never touches the node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

OPENRPC_VERSION = "1.2.6"

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Param:
    """One named parameter of a method."""

    name: str
    """Parameter name; positional params map onto names in declaration order."""
    schema: Schema
    """JSON Schema of the value."""
    description: str
    """What it means, in one line."""
    required: bool = False
    """Whether a call without it is refused with invalid_params."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """What a method takes, answers and may fail with."""

    params: tuple[Param, ...]
    """Parameters, in positional order."""
    result: Schema
    """JSON Schema of the result."""
    errors: tuple[int, ...] = ()
    """JSON-RPC error codes the method itself may answer (besides the generic ones)."""
    description: str = ""
    """Longer explanation; the one-line summary is given at registration."""
    admin: bool = False
    """Admin methods answer only to localhost or to a holder of the admin token."""
    tags: tuple[str, ...] = field(default=())
    """Groups for documentation, e.g. ("tx",)."""


# ------------------------------------------------------------------ schema building blocks

HASH = {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{64}$",
        "description": "32 bytes as hex"}
ADDRESS = {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{40}$",
           "description": "20-byte account address as hex"}
HEX = {"type": "string", "pattern": "^(0x)?([0-9a-fA-F]{2})*$", "description": "bytes as hex"}
HEIGHT = {"type": "integer", "minimum": 1, "description": "block height"}
NONCE = {"type": "integer", "minimum": 0}
ANY_OBJECT: Schema = {"type": "object"}


def obj(properties: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    """An object schema; extra properties allowed (answers may grow)."""
    return {"type": "object", "properties": properties, "required": sorted(required)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


# Generic error codes, answered by the dispatcher for any method.
GENERIC_ERRORS: dict[int, str] = {
    -32700: "parse_error: the body is not JSON",
    -32600: "invalid_request: not a JSON-RPC 2.0 request object, or an empty batch",
    -32601: "method_not_found: no such method (rpc_discover lists them)",
    -32602: "invalid_params: a parameter is missing, unknown or of the wrong form",
    -32603: "internal_error: a bug in the node; the request had no effect on state",
    -32003: "too_large: body_too_large or batch_too_large",
    -32004: "rate_limited: too many requests from this address; retry after data.retry_after_s",
}

ERROR_MESSAGES: dict[int, str] = {
    **GENERIC_ERRORS,
    -32000: "tx_rejected: refused at admission; data.reason is the rule, data.where=admission",
    -32001: "not_found: no such block, account or subscription",
    -32002: "busy: the mempool or a per-client limit is full; retry later",
    -32005: "timeout: the operation did not finish in time",
    -32006: "unauthorized: admin method from a non-local address without the admin token",
}


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    """A registered RPC method."""

    name: str
    """Method name, e.g. tx_submit."""
    handler: Handler
    """Coroutine taking the params object."""
    params: tuple[str, ...]
    """Parameter names in order, so positional params map onto names."""
    summary: str
    """One line for rpc_discover."""
    spec: MethodSpec | None = None
    """Params and result schemas and errors, for rpc_discover (build_document below)."""

    @property
    def is_admin(self) -> bool:
        return self.spec is not None and self.spec.admin


def method_document(method: Method) -> dict[str, Any]:
    """The OpenRPC method object of one registered method."""
    spec = method.spec
    doc: dict[str, Any] = {"name": method.name, "summary": method.summary,
                           "paramStructure": "either"}
    if spec is None:
        doc["params"] = [{"name": p, "schema": {}} for p in method.params]
        doc["result"] = {"name": "result", "schema": {}}
        doc["x-undocumented"] = True
        return doc
    if spec.description:
        doc["description"] = spec.description
    doc["params"] = [{"name": p.name, "description": p.description, "required": p.required,
                      "schema": p.schema} for p in spec.params]
    doc["result"] = {"name": "result", "schema": spec.result}
    codes = sorted(set(spec.errors) | set(GENERIC_ERRORS))
    doc["errors"] = [{"code": c, "message": ERROR_MESSAGES.get(c, "error")} for c in codes]
    if spec.admin:
        doc["x-admin"] = True
    if spec.tags:
        doc["tags"] = [{"name": t} for t in spec.tags]
    return doc


def build_document(methods: Iterable[Method], version: str) -> dict[str, Any]:
    """The OpenRPC document of `methods`, sorted by name."""
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": "govchain node JSON-RPC", "version": version,
                 "description": "HTTP POST /rpc and WebSocket /ws; see docs/rpc.md"},
        "methods": [method_document(m) for m in sorted(methods, key=lambda m: m.name)],
        "components": {"errors": {str(code): {"code": code, "message": message}
                                  for code, message in sorted(ERROR_MESSAGES.items())}},
    }
