"""JSON-RPC over WebSocket at /ws, with subscriptions to blocks, a tx, and events.

Theory of operation (docs/rpc-websocket.md): each subscription has the next height it
owes its client. It replays final blocks from storage up to the head, paced by the
client, then turns live: the commit listener delivers each new height exactly when it
is the one owed, so a height is never skipped nor sent twice. Each client has one
bounded outgoing queue; a live notification that does not fit ends the subscription
with a `lagged` notification naming the first missed height (never a silent drop or
close), and the client resumes from there. Nothing here changes chain state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from chain.crypto import Hash32
from chain.vote import CommitCertificate
from node.execution import ExecutedBlock
from node.node import Node
from rpc.dispatcher import (
    BUSY,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NOT_FOUND,
    CallContext,
    RpcDispatcher,
    RpcError,
    decode_request,
    invalid_params,
)
from rpc.limits import RequestGuard
from rpc.methods.chain import block_json
from rpc.openrpc import ADDRESS, HASH, HEIGHT, MethodSpec, Param, obj
from rpc.params import parse_hex, parse_int, to_json

log = logging.getLogger("govchain.ws")

TOPICS = ("blocks", "tx", "events")
FILTER_KEYS = ("kind", "account", "asset", "namespace", "tx_type")
SEND_TIMEOUT_S = 10.0
BLOCK_CACHE = 64

SUBSCRIBE = MethodSpec(
    params=(Param("topic", {"enum": list(TOPICS)}, "blocks, tx or events", True),
            Param("from_height", HEIGHT, "replay final blocks from this height, then live"),
            Param("hash", HASH, "the tx hash (topic tx)"),
            Param("filter", obj({"kind": {"type": "string"}, "account": ADDRESS,
                                 "asset": {"type": "string"}, "namespace": {"type": "string"},
                                 "tx_type": {"type": "string"}}),
                  "events only: every given key must match")),
    result=obj({"subscription": {"type": "string"}, "from_height": HEIGHT}, ["subscription"]),
    errors=(BUSY, NOT_FOUND),
    description="WebSocket /ws only. Notifications: {method: subscription, params: "
                "{subscription, result}} where result.type is block, events, tx or lagged.",
    tags=("websocket",))
UNSUBSCRIBE = MethodSpec(
    params=(Param("subscription", {"type": "string", "maxLength": 64},
                  "the id subscribe returned", True),),
    result=obj({"unsubscribed": {"type": "boolean"}}), errors=(NOT_FOUND,),
    description="WebSocket /ws only.", tags=("websocket",))


@dataclass(eq=False)
class Subscription:
    """One client subscription and how far it has been served."""

    id: str
    topic: str
    next_height: int
    """The next final height owed to the client (blocks, events)."""
    tx_hash: Hash32 | None = None
    filter: dict[str, str] = field(default_factory=dict)
    live: bool = False
    """False while replaying from storage; then the commit listener delivers."""
    ended: bool = False
    replay: asyncio.Task[None] | None = None

    def answer(self) -> dict[str, Any]:
        """The result of the subscribe call that made this subscription."""
        if self.topic == "tx":
            return {"subscription": self.id}
        return {"subscription": self.id, "from_height": self.next_height}


class WsClient:
    """One WebSocket connection: its subscriptions and its bounded outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse, remote: str, max_queue: int) -> None:
        self.ws = ws
        self.remote = remote
        self.max_queue = max_queue
        self.subscriptions: dict[str, Subscription] = {}
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.lagged = 0

    def has_space(self) -> bool:
        return len(self.queue) < self.max_queue

    def push(self, doc: dict[str, Any]) -> None:
        """Queue a response or control notice (not counted against the limit's drop rule)."""
        self.queue.append(json.dumps(doc, separators=(",", ":"), default=_json_default))
        if not self.has_space():
            self.space.clear()
        self.wakeup.set()

    def notify(self, sub: Subscription, result: dict[str, Any]) -> None:
        self.push({"jsonrpc": "2.0", "method": "subscription",
                   "params": {"subscription": sub.id, "result": result}})

    def end(self, sub: Subscription) -> None:
        sub.ended = True
        self.subscriptions.pop(sub.id, None)
        if sub.replay is not None and sub.replay is not asyncio.current_task():
            sub.replay.cancel()

    def lag(self, sub: Subscription) -> None:
        """The queue is full: end `sub` and say exactly where to resume."""
        self.lagged += 1
        self.end(sub)
        self.notify(sub, {"type": "lagged", "missed_from_height": sub.next_height,
                          "resume_from_height": sub.next_height,
                          "message": f"the client read too slowly: {self.max_queue} "
                                     "notifications were waiting; this subscription ended, "
                                     "subscribe again with from_height to resume"})

    async def write_loop(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.queue:
                text = self.queue.popleft()
                if len(self.queue) < self.max_queue // 2 or not self.queue:
                    self.space.set()
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.ws.send_str(text)
            self.space.set()


class SubscriptionHub:
    """Every WebSocket client of a node, fed by the node's commit listener."""

    def __init__(self, node: Node, dispatcher: RpcDispatcher, guard: RequestGuard) -> None:
        self.node = node
        self.dispatcher = dispatcher
        self.guard = guard
        config = node.home.config
        self.max_connections = config.ws_max_connections
        self.max_subscriptions = config.ws_max_subscriptions
        self.max_queue = max(2, config.ws_queue_max)
        self.ping_interval_s = config.ws_ping_interval_s
        self.max_message_bytes = config.rpc_max_body_bytes
        self.clients: set[WsClient] = set()
        self.refused_connections = 0
        self._ids = itertools.count(1)
        self._block_cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._events_cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        node.add_commit_listener(self.on_commit)

    def register(self, dispatcher: RpcDispatcher) -> None:
        """Describe subscribe/unsubscribe in rpc_discover; over HTTP they only explain."""
        async def websocket_only(params: dict[str, Any]) -> Any:
            raise RpcError(METHOD_NOT_FOUND, "websocket_only",
                           "subscribe and unsubscribe work on the WebSocket /ws, "
                           "as single calls (not over HTTP, not in a batch)")
        dispatcher.register("subscribe", websocket_only, tuple(p.name for p in SUBSCRIBE.params),
                            "Follow final blocks, one tx, or events", spec=SUBSCRIBE)
        dispatcher.register("unsubscribe", websocket_only, ("subscription",),
                            "End a subscription", spec=UNSUBSCRIBE)

    # ------------------------------------------------------------------ connection

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        remote = request.remote or ""
        ws = web.WebSocketResponse(heartbeat=self.ping_interval_s,
                                   max_msg_size=self.max_message_bytes)
        await ws.prepare(request)
        try:
            self.guard.check_rate(remote)
        except RpcError as e:
            await self._refuse(ws, e)
            return ws
        if len(self.clients) >= self.max_connections:
            self.refused_connections += 1
            await self._refuse(ws, RpcError(
                BUSY, "too_many_connections",
                f"this node serves at most {self.max_connections} WebSocket clients; "
                "retry later or use another node"))
            return ws
        client = WsClient(ws, remote, self.max_queue)
        is_admin = self.guard.is_admin(remote, request.headers.get("Authorization"))
        context = CallContext(remote, is_admin)
        self.clients.add(client)
        writer = asyncio.create_task(client.write_loop(), name=f"ws writer {remote}")
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(client, context, message.data)
                elif message.type == WSMsgType.BINARY:
                    client.push(_error(None, RpcError(INVALID_REQUEST, "invalid_request",
                                                      "send JSON-RPC as text frames")))
                if writer.done():
                    break
        finally:
            self.clients.discard(client)
            for sub in list(client.subscriptions.values()):
                client.end(sub)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            await ws.close()
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, error: RpcError) -> None:
        await ws.send_str(json.dumps(_error(None, error)))
        await ws.close(code=1013, message=error.reason.encode())

    async def close(self) -> None:
        for client in list(self.clients):
            for sub in list(client.subscriptions.values()):
                client.end(sub)
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"node stopping")

    async def _on_text(self, client: WsClient, context: CallContext, text: str) -> None:
        try:
            doc = decode_request(text, context)
        except RpcError as e:
            client.push(_error(None, e))
            return
        call_id = doc.get("id") if isinstance(doc, dict) else None
        if isinstance(call_id, bool) or not isinstance(call_id, str | int | float | None):
            call_id = None
        try:
            self.guard.check_rate(client.remote)
        except RpcError as e:
            client.push(_error(call_id, e))
            return
        if isinstance(doc, dict) and doc.get("method") in ("subscribe", "unsubscribe") \
                and doc.get("jsonrpc") == "2.0":
            try:
                params = doc.get("params") or {}
                if not isinstance(params, dict):
                    raise invalid_params("params must be an object")
                if doc["method"] == "subscribe":
                    sub = self.subscribe(client, params)
                    result = sub.answer()
                else:
                    sub, result = None, self.unsubscribe(client, params)
            except RpcError as e:
                client.push(_error(call_id, e))
                return
            # The answer names the subscription, so it is queued before any notification.
            client.push({"jsonrpc": "2.0", "id": call_id, "result": result})
            if sub is not None:
                self.start(client, sub)
            return
        answer = await self.dispatcher.handle_doc(doc, context)
        if answer is not None:
            client.queue.append(json.dumps(answer, separators=(",", ":"),
                                           default=_json_default))
            client.wakeup.set()

    # ------------------------------------------------------------------ subscribe

    def subscribe(self, client: WsClient, params: dict[str, Any]) -> Subscription:
        """Check `params` and register a subscription; nothing is sent until `start`."""
        unknown = set(params) - {p.name for p in SUBSCRIBE.params}
        if unknown:
            raise invalid_params(f"subscribe has no parameter {sorted(unknown)[0]!r}")
        topic = params.get("topic")
        if topic not in TOPICS:
            raise invalid_params(f"topic must be one of {list(TOPICS)}")
        if len(client.subscriptions) >= self.max_subscriptions:
            raise RpcError(BUSY, "too_many_subscriptions",
                           f"a client may hold at most {self.max_subscriptions} subscriptions; "
                           "unsubscribe from one first")
        head = self.node.store.head_height
        sub = Subscription(f"s{next(self._ids)}", topic, head + 1)
        if topic == "tx":
            if params.get("from_height") is not None or params.get("filter") is not None:
                raise invalid_params("topic tx takes only `hash`")
            sub.tx_hash = Hash32(parse_hex(params.get("hash"), "hash", size=32))
        else:
            if params.get("hash") is not None:
                raise invalid_params("`hash` is for topic tx")
            if params.get("from_height") is not None:
                # Below the base height (pruned, or before a state sync) no blocks are
                # held to replay.
                sub.next_height = parse_int(params["from_height"], "from_height",
                                            lo=self.node.store.base_height, hi=head + 1)
            if topic == "events":
                sub.filter = _parse_filter(params.get("filter"))
            elif params.get("filter") is not None:
                raise invalid_params("`filter` is for topic events")
        client.subscriptions[sub.id] = sub
        return sub

    def start(self, client: WsClient, sub: Subscription) -> None:
        """Begin delivery, once the answer naming `sub` is queued: a settled tx is
        notified at once, stored heights are replayed, else the subscription is live."""
        if sub.topic == "tx":
            sub.live = True
            self._check_tx(client, sub)
        elif sub.next_height > self.node.store.head_height:
            sub.live = True
        else:
            sub.replay = asyncio.create_task(self._replay(client, sub),
                                             name=f"ws replay {sub.id}")

    def unsubscribe(self, client: WsClient, params: dict[str, Any]) -> dict[str, Any]:
        sub_id = params.get("subscription")
        sub = client.subscriptions.get(sub_id) if isinstance(sub_id, str) else None
        if sub is None:
            raise RpcError(NOT_FOUND, "unknown_subscription",
                           f"no subscription {sub_id!r} on this connection")
        client.end(sub)
        return {"unsubscribed": True}

    # ------------------------------------------------------------------ delivery

    async def _replay(self, client: WsClient, sub: Subscription) -> None:
        """Serve stored heights at the client's pace, then hand over to the live path."""
        while not sub.ended:
            if sub.next_height > self.node.store.head_height:
                sub.live = True
                return
            await client.space.wait()
            await asyncio.sleep(0)  # a long replay never starves the loop
            if sub.ended:
                return
            self._deliver(client, sub, sub.next_height)

    def on_commit(self, executed: ExecutedBlock, certificate: CommitCertificate) -> None:
        """Called by the driver after each commit; must never raise into it."""
        try:
            self._on_height(executed.block.height)
        except Exception:
            log.exception("WebSocket delivery of block %d failed", executed.block.height)

    def _on_height(self, height: int) -> None:
        for client in list(self.clients):
            for sub in list(client.subscriptions.values()):
                if sub.topic == "tx":
                    self._check_tx(client, sub)
                elif sub.live and not sub.ended:
                    if height == sub.next_height:
                        if client.has_space():
                            self._deliver(client, sub, height)
                        else:
                            client.lag(sub)
                    elif height > sub.next_height:  # fell behind somehow: replay the gap
                        sub.live = False
                        sub.replay = asyncio.create_task(self._replay(client, sub))

    def _deliver(self, client: WsClient, sub: Subscription, height: int) -> None:
        if sub.topic == "blocks":
            client.notify(sub, self._block_doc(height))
        else:
            matching = [e for e in self._events(height) if _matches(sub.filter, e)]
            if matching:
                client.notify(sub, {"type": "events", "height": height, "events": matching})
        sub.next_height = height + 1

    def _check_tx(self, client: WsClient, sub: Subscription) -> None:
        assert sub.tx_hash is not None
        status = self.node.get_tx_status(sub.tx_hash)
        if status["status"] in ("final", "rejected"):
            client.notify(sub, {"type": "tx", **status})
            client.end(sub)

    def _block_doc(self, height: int) -> dict[str, Any]:
        doc = self._block_cache.get(height)
        if doc is None:
            store = self.node.store
            block = store.get_block(height)
            assert block is not None, f"final block {height} missing"
            doc = {"type": "block", **block_json(block, store.get_certificate(height),
                                                 full=False)}
            _remember(self._block_cache, height, doc)
        return doc

    def _events(self, height: int) -> list[dict[str, Any]]:
        events = self._events_cache.get(height)
        if events is None:
            store = self.node.store
            block = store.get_block(height)
            assert block is not None, f"final block {height} missing"
            events = []
            for tx in block.txs:
                record = store.get_tx(tx.hash)
                if record is None or record.code != "ok":
                    continue
                for i, (kind, attributes) in enumerate(record.events):
                    events.append({"tx_hash": tx.hash.hex(), "tx_index": record.index,
                                   "event_index": i, "tx_type": tx.tx_type,
                                   "sender": tx.sender.hex(), "kind": kind,
                                   "attributes": to_json(dict(attributes))})
            _remember(self._events_cache, height, events)
        return events


def _remember(cache: OrderedDict[int, Any], height: int, value: Any) -> None:
    cache[height] = value
    while len(cache) > BLOCK_CACHE:
        cache.popitem(last=False)


def _parse_filter(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_params("filter must be an object")
    result: dict[str, str] = {}
    for key, item in value.items():
        if key not in FILTER_KEYS:
            raise invalid_params(f"filter key {key!r} is not one of {list(FILTER_KEYS)}")
        if not isinstance(item, str) or not 0 < len(item) <= 128:
            raise invalid_params(f"filter {key!r} must be a non-empty string")
        result[key] = item.lower().removeprefix("0x") if key == "account" else item
    if "account" in result:
        parse_hex(result["account"], "filter.account", size=20)
    return result


def _matches(filter_: dict[str, str], event: dict[str, Any]) -> bool:
    """Generic match on an event's kind, its tx, and its attribute values."""
    attributes = event["attributes"]
    checks: dict[str, Callable[[str], bool]] = {
        "kind": lambda v: event["kind"] == v,
        "tx_type": lambda v: event["tx_type"] == v,
        "asset": lambda v: attributes.get("asset") == v,
        "namespace": lambda v: attributes.get("namespace") == v
        or event["kind"].startswith(v + "."),
        "account": lambda v: event["sender"] == v or v in attributes.values(),
    }
    return all(checks[key](value) for key, value in filter_.items())


def _error(call_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": error.to_json()}


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
