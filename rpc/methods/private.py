"""The RPC of private registries: a writer hands its payload to its holding node, readers
ask with a signed request, citizens see who read their record (docs/privacy.md).

No answer carries a payload unless the signed request passes the chain's grants and
roles (node/private.py decides and logs); `state_private_record` shows only what the
chain holds: the commitment, public metadata, holders, grants' existence, erasure.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from ledger.errors import LedgerError
from ledger.private import get_erasure, get_private_namespace
from ledger.registry import RECORD_KEY_PATTERN, get_record
from node.node import Node
from node.private import PrivateError
from p2p.frames import MAX_PRIVATE_PAYLOAD_BYTES
from rpc.dispatcher import NOT_FOUND, UNAUTHORIZED, RpcDispatcher, RpcError, invalid_params
from rpc.openrpc import ANY_OBJECT, HEX, NONCE, MethodSpec, Param, obj
from rpc.params import parse_hex, parse_int, to_json

NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,32}$"}
RECORD_KEY = {"type": "string", "minLength": 1, "maxLength": 128}
_RECORD_PARAMS = (Param("namespace", NAME, "the private namespace", True),
                  Param("key", RECORD_KEY, "the record key", True))
_SIGNED_PARAMS = (
    *_RECORD_PARAMS,
    Param("reader", HEX, "the reader's ed25519 public key", True),
    Param("timestamp_ms", NONCE, "when the request was signed (within a minute of the "
          "node's clock)", True),
    Param("signature", HEX, "the reader's signature in govchain/private-read/v1 over "
          "[action, namespace, key, timestamp_ms]", True))

PRIVATE_SUBMIT = MethodSpec(
    params=(*_RECORD_PARAMS,
            Param("salt", HEX, "the 32-byte salt of the commitment", True),
            Param("payload", HEX, "the payload the final record commits to", True)),
    result=obj({"namespace": {"type": "string"}, "key": {"type": "string"},
                "held": {"type": "boolean"}}, ["namespace", "key", "held"]),
    errors=(NOT_FOUND, UNAUTHORIZED), admin=True,
    description="Admin: localhost or the admin token. Refused unless the record is "
                "final, this node holds its namespace and the payload opens the commitment.",
    tags=("private",))
PRIVATE_READ = MethodSpec(
    params=_SIGNED_PARAMS,
    result=obj({"namespace": {"type": "string"}, "key": {"type": "string"}, "payload": HEX,
                "salt": HEX, "commitment": HEX, "basis": {"type": "string"}},
               ["payload", "salt", "commitment"]),
    errors=(NOT_FOUND, UNAUTHORIZED),
    description="Every request, answered or refused, is in the holder's read log.",
    tags=("private",))
PRIVATE_READS = MethodSpec(
    params=_SIGNED_PARAMS,
    result=obj({"namespace": {"type": "string"}, "key": {"type": "string"}, "holder": HEX,
                "entries": {"type": "array"}}, ["entries"]),
    errors=(NOT_FOUND, UNAUTHORIZED),
    description="For the record's subject, writers, holders and authorities: who read it, "
                "each entry with its Merkle proof against an anchor on the chain.",
    tags=("private",))
STATE_PRIVATE_RECORD = MethodSpec(
    params=_RECORD_PARAMS,
    result=obj({"namespace": {"type": "string"}, "key": {"type": "string"},
                "record": ANY_OBJECT, "holders": {"type": "array"}, "held": {"type": "boolean"},
                "erased": ANY_OBJECT}, ["record", "holders", "held"]),
    errors=(NOT_FOUND,), description="What the chain holds of a private record: never "
                                     "the payload.", tags=("private",))


def register_private_methods(dispatcher: RpcDispatcher, node: Node) -> None:
    """Add the private-registry methods (called once from NodeApi.register)."""
    api = PrivateApi(node)
    r = dispatcher.register
    r("private_submit", api.private_submit, ("namespace", "key", "salt", "payload"),
      "Hand a final private record's payload to its holding node", spec=PRIVATE_SUBMIT)
    r("private_read", api.private_read, ("namespace", "key", "reader", "timestamp_ms",
                                         "signature"),
      "A private record's payload and salt, for a reader with a grant or a role",
      spec=PRIVATE_READ)
    r("private_reads", api.private_reads, ("namespace", "key", "reader", "timestamp_ms",
                                           "signature"),
      "Who read a private record, with proofs against the anchored read log",
      spec=PRIVATE_READS)
    r("state_private_record", api.state_private_record, ("namespace", "key"),
      "A private record's commitment, holders and erasure", spec=STATE_PRIVATE_RECORD)


def describe_erasure(erasure: dict[str, Any]) -> dict[str, Any]:
    """The erasure as JSON, with the sentence the explorer shows."""
    day = datetime.datetime.fromtimestamp(erasure["timestamp_ms"] / 1000, datetime.UTC)
    return {**to_json(erasure), "text": f"erased on {day.date().isoformat()} by "
                                        f"{erasure['authority'].hex()}"}


def _parse_record(params: dict[str, Any]) -> tuple[str, str]:
    namespace, key = params.get("namespace"), params.get("key")
    if not isinstance(namespace, str) or not 0 < len(namespace) <= 32 or "/" in namespace:
        raise invalid_params("namespace must be 1 to 32 letters, digits, '.', '_' or '-'")
    if not isinstance(key, str) or RECORD_KEY_PATTERN.fullmatch(key) is None:
        raise invalid_params(f"key must match {RECORD_KEY_PATTERN.pattern}")
    return namespace, key


def _refusal(error: PrivateError) -> RpcError:
    found = error.code in ("unknown_record", "unknown_namespace", "private_namespace",
                           "not_holder", "not_held", "record_erased")
    return RpcError(NOT_FOUND if found else UNAUTHORIZED, error.code, error.message)


class PrivateApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def private_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace, key = _parse_record(params)
        salt = parse_hex(params.get("salt"), "salt", size=32)
        payload = parse_hex(params.get("payload"), "payload")
        if len(payload) > MAX_PRIVATE_PAYLOAD_BYTES:
            raise invalid_params(f"payload must be at most {MAX_PRIVATE_PAYLOAD_BYTES} bytes")
        try:
            # Written with the payloads of concurrent submissions (one group write).
            await self.node.private.submit(namespace, key, salt, payload)
        except PrivateError as e:
            raise _refusal(e) from e
        self.node.private.wanted.pop((namespace, key), None)  # no need to fetch it now
        return {"namespace": namespace, "key": key, "held": True}

    async def _signed(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        namespace, key = _parse_record(params)
        reader = parse_hex(params.get("reader"), "reader", size=32)
        timestamp_ms = parse_int(params.get("timestamp_ms"), "timestamp_ms")
        signature = parse_hex(params.get("signature"), "signature", size=64)
        try:
            answer = await asyncio.to_thread(self.node.private.read, action, namespace, key,
                                             reader, timestamp_ms, signature)
        except PrivateError as e:
            raise _refusal(e) from e
        result: dict[str, Any] = to_json(answer)
        return result

    async def private_read(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._signed("read", params)

    async def private_reads(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._signed("reads", params)

    async def state_private_record(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace, key = _parse_record(params)
        state = self.node.state
        try:
            ns = get_private_namespace(state, namespace)
        except LedgerError as e:
            raise RpcError(NOT_FOUND, e.code, e.message) from e
        record = get_record(state, namespace, key)
        if record is None:
            raise RpcError(NOT_FOUND, "unknown_record", f"no record {namespace}/{key}")
        erasure = get_erasure(state, namespace, key)
        vault = self.node.private
        held = vault.is_holder(ns) and vault.store.has_payload(namespace, key)
        return {"namespace": namespace, "key": key, "record": to_json(record),
                "holders": [k.hex() for k in ns["holders"]], "held": held,
                "erased": None if erasure is None else describe_erasure(erasure)}
