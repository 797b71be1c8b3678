"""WebSocket /ws over a real socket: subscriptions, replay then live, lag, limits, pings."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from chain.crypto import KeyPair
from cli.service import NodeService
from rpc.websocket import WsClient
from sdk import AsyncClient, TxRejectedError
from tests.node.conftest import ACCOUNT_KEYS, RunningNode, make_genesis, make_home, wait_for
from tests.node.test_rpc import ALICE, BOB, transfer

CAROL = ACCOUNT_KEYS[2]


async def start_node(tmp_path, **config: object) -> RunningNode:
    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path / "node0", make_genesis([validator]), validator, **config)
    service = NodeService(home)
    await service.start()
    return RunningNode(service, AsyncClient(service.rpc_url))


@pytest.fixture
async def ws_node(tmp_path):
    running = await start_node(tmp_path, ws_max_subscriptions=3, ws_max_connections=2,
                               ws_ping_interval_s=0.5)
    try:
        yield running
    finally:
        await running.client.close()
        await running.service.stop()


class WsSession:
    """A raw JSON-RPC WebSocket client for tests: calls and notifications apart."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0
        self.notifications: list[dict[str, Any]] = []

    async def receive(self, timeout_s: float = 10.0) -> dict[str, Any]:
        message = await self.ws.receive(timeout=timeout_s)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        return json.loads(message.data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        await self.ws.send_json({"jsonrpc": "2.0", "id": self.ids, "method": method,
                                 "params": params})
        for _ in range(10_000):
            doc = await self.receive()
            if doc.get("id") == self.ids:
                return doc
            self.notifications.append(doc)
        raise AssertionError("no answer")

    async def next_notification(self, timeout_s: float = 10.0) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.pop(0)["params"]["result"]
        doc = await self.receive(timeout_s)
        assert doc["method"] == "subscription", doc
        return doc["params"]["result"]


async def connect(running: RunningNode, session: aiohttp.ClientSession, **kw: Any) -> WsSession:
    ws = await session.ws_connect(running.service.rpc_url + "/ws", **kw)
    return WsSession(ws)


async def test_blocks_replay_from_height_then_live_in_order(ws_node):
    await wait_for(lambda: _height_at_least(ws_node, 3), 20, "height 3")
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        answer = await ws.call("subscribe", topic="blocks", from_height=1)
        assert answer["result"]["from_height"] == 1
        head = ws_node.node.store.head_height
        heights = []
        for _ in range(head + 3):
            block = await ws.next_notification()
            assert block["type"] == "block"
            assert block["certificate"]["height"] == block["height"]
            heights.append(block["height"])
        assert heights == list(range(1, head + 4))  # replayed, then live, no gap or repeat
        await ws.ws.close()


async def _height_at_least(running: RunningNode, height: int) -> bool:
    return running.node.store.head_height >= height


async def test_tx_subscription_reports_final_then_ends(ws_node):
    tx = transfer(0, 42)
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        answer = await ws.call("subscribe", topic="tx", hash=tx.hash.hex())
        sub_id = answer["result"]["subscription"]
        await ws_node.client.submit(tx)
        result = await ws.next_notification()
        assert result["type"] == "tx" and result["status"] == "final"
        assert result["hash"] == tx.hash.hex()
        gone = await ws.call("unsubscribe", subscription=sub_id)
        assert gone["error"]["data"]["reason"] == "unknown_subscription"


@pytest.mark.parametrize("outcome", ["final", "rejected"])
async def test_tx_subscription_to_a_settled_tx_answers_first_then_notifies(ws_node, outcome):
    if outcome == "final":
        tx = transfer(0, 42)
        await ws_node.client.submit(tx, wait="final")
    else:  # refused at admission, and remembered as such
        tx = transfer(0, 42, chain_id="another-chain")
        with pytest.raises(TxRejectedError):
            await ws_node.client.submit(tx)
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        await ws.ws.send_json({"jsonrpc": "2.0", "id": 5, "method": "subscribe",
                               "params": {"topic": "tx", "hash": tx.hash.hex()}})
        answer = await ws.receive()
        assert answer["id"] == 5, f"the answer must come before its notification: {answer}"
        notification = await ws.receive()
        assert notification["params"]["subscription"] == answer["result"]["subscription"]
        result = notification["params"]["result"]
        assert (result["type"], result["status"], result["hash"]) == ("tx", outcome,
                                                                      tx.hash.hex())


async def test_events_filtered_by_account_and_kind(ws_node):
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        await ws.call("subscribe", topic="events",
                      filter={"account": CAROL.address.hex(), "kind": "transferred"})
        await ws_node.client.submit(transfer(0, 1, to=BOB))          # not Carol's
        await ws_node.client.submit(transfer(1, 7, to=CAROL))        # Carol's
        result = await ws.next_notification()
        assert result["type"] == "events"
        assert [e["attributes"]["amount"] for e in result["events"]] == [7]
        assert result["events"][0]["kind"] == "transferred"
        assert result["events"][0]["sender"] == ALICE.address.hex()


async def test_rpc_calls_work_over_websocket(ws_node):
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        status = await ws.call("node_status")
        assert status["result"]["chain_id"]
        bad = await ws.call("tx_get", hash="zz")
        assert bad["error"]["data"]["reason"] == "invalid_params"


async def test_invalid_subscribe_params_get_typed_errors(ws_node):
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        cases = [({"topic": "nope"}, "invalid_params"),
                 ({"topic": "blocks", "from_height": 10**9}, "invalid_params"),
                 ({"topic": "tx"}, "invalid_params"),
                 ({"topic": "events", "filter": {"colour": "red"}}, "invalid_params"),
                 ({"topic": "blocks", "extra": 1}, "invalid_params")]
        for params, reason in cases:
            answer = await ws.call("subscribe", **params)
            assert answer["error"]["data"]["reason"] == reason, params
        await ws.ws.send_str("{not json")
        assert (await ws.receive())["error"]["data"]["reason"] == "parse_error"


async def test_invalid_too_many_subscriptions_answers_an_error(ws_node):
    async with aiohttp.ClientSession() as session:
        ws = await connect(ws_node, session)
        for _ in range(3):
            assert "result" in await ws.call("subscribe", topic="blocks")
        refused = await ws.call("subscribe", topic="blocks")
        assert refused["error"]["data"]["reason"] == "too_many_subscriptions"


async def test_invalid_too_many_connections_answers_an_error_then_closes(ws_node):
    async with aiohttp.ClientSession() as session:
        first = await connect(ws_node, session)
        second = await connect(ws_node, session)
        await first.call("node_status")
        await second.call("node_status")
        third = await connect(ws_node, session)
        doc = await third.receive()
        assert doc["error"]["data"]["reason"] == "too_many_connections"
        closing = await third.ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert third.ws.close_code == 1013


async def test_server_pings_so_dead_links_are_noticed(ws_node):
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ws_node.service.rpc_url + "/ws", autoping=False)
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.PING
        # No pong: the server closes the link within about one more interval.
        for _ in range(20):
            message = await ws.receive(timeout=5)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING):
                break
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING)


class StalledSocket:
    """A WebSocket whose reader never reads: nothing queued is ever sent."""

    async def send_str(self, text: str) -> None:
        await asyncio.Event().wait()


async def test_slow_client_gets_an_explicit_lagged_notice(tmp_path):
    running = await start_node(tmp_path, ws_queue_max=3)
    try:
        hub = running.service.gateway.hub
        client = WsClient(StalledSocket(), "198.51.100.7", hub.max_queue)  # type: ignore[arg-type]
        hub.clients.add(client)
        sub = hub.subscribe(client, {"topic": "blocks"})
        hub.start(client, sub)
        first = sub.answer()["from_height"]
        await wait_for(lambda: _height_at_least(running, first + 4), 20, "4 more blocks")
        texts = [json.loads(t) for t in client.queue]
        results = [t["params"]["result"] for t in texts]
        assert [r["height"] for r in results if r["type"] == "block"] == [first, first + 1,
                                                                            first + 2]
        lagged = results[-1]
        assert lagged["type"] == "lagged" and lagged["resume_from_height"] == first + 3
        assert client.subscriptions == {}  # ended, and said so
        hub.clients.discard(client)
    finally:
        await running.client.close()
        await running.service.stop()
