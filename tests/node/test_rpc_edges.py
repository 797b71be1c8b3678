"""Edges of the JSON-RPC as docs/rpc.md states them, over real sockets: bodies nested too
deeply (HTTP /rpc and /ws), and what `tx_get` says after a `wrong_chain` refusal.
"""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from rpc.dispatcher import MAX_JSON_DEPTH
from sdk import TxRejectedError
from tests.node.test_rpc import post_raw, snapshot, transfer


def nested_call(depth: int) -> bytes:
    """A tx_get call whose params hold a value `depth` levels deep in all."""
    value = "[" * (depth - 2) + "]" * (depth - 2)
    return ('{"jsonrpc": "2.0", "id": 7, "method": "tx_get", "params": {"hash": '
            + value + "}}").encode()


def test_nested_call_has_the_depth_it_claims():
    def depth(doc: object) -> int:
        if isinstance(doc, dict):
            return 1 + max((depth(v) for v in doc.values()), default=0)
        if isinstance(doc, list):
            return 1 + max((depth(v) for v in doc), default=0)
        return 0
    assert depth(json.loads(nested_call(32))) == 32


def assert_too_deep(doc: dict) -> None:
    assert doc["id"] is None
    assert doc["error"]["code"] == -32700
    assert doc["error"]["data"]["reason"] == "parse_error"
    assert "nested" in doc["error"]["message"]
    assert str(MAX_JSON_DEPTH) in doc["error"]["message"]


def assert_logged_at_most_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1, [r.getMessage() for r in loud]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in loud)


@pytest.mark.parametrize("depth", [1000, MAX_JSON_DEPTH + 1, 100_000])
async def test_invalid_deeply_nested_body_answers_parse_error(single_node, caplog, depth):
    before = await snapshot(single_node)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        status, doc = await post_raw(single_node.service.rpc_url, nested_call(depth))
    assert status == 200
    assert_too_deep(doc)
    assert_logged_at_most_one_warning(caplog)
    assert await snapshot(single_node) == before


async def test_invalid_deeply_nested_batch_answers_parse_error(single_node):
    body = ("[" + nested_call(1000).decode() + "]").encode()
    status, doc = await post_raw(single_node.service.rpc_url, body)
    assert status == 200
    assert_too_deep(doc)


async def test_nesting_within_the_bound_is_served(single_node):
    for depth in (32, MAX_JSON_DEPTH):
        status, doc = await post_raw(single_node.service.rpc_url, nested_call(depth))
        assert status == 200
        assert doc["id"] == 7  # parsed, then refused as a bad hash: not a parse error
        assert doc["error"]["data"]["reason"] == "invalid_params"


async def test_invalid_deeply_nested_ws_message_answers_then_serves(single_node, caplog):
    caplog.clear()
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(single_node.service.rpc_url + "/ws") as ws:
        with caplog.at_level(logging.DEBUG):
            await ws.send_str(nested_call(1000).decode())
            message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        assert_too_deep(json.loads(message.data))
        assert_logged_at_most_one_warning(caplog)
        await ws.send_str(nested_call(32).decode())  # the socket still serves
        doc = json.loads((await ws.receive(timeout=10)).data)
        assert doc["id"] == 7 and doc["error"]["data"]["reason"] == "invalid_params"
        await ws.send_json({"jsonrpc": "2.0", "id": 8, "method": "node_status"})
        doc = json.loads((await ws.receive(timeout=10)).data)
        assert doc["id"] == 8 and doc["result"]["chain_id"]


async def test_wrong_chain_refusal_is_remembered_as_rejected_at_admission(single_node):
    tx = transfer(0, chain_id="another-chain")
    with pytest.raises(TxRejectedError) as info:
        await single_node.client.submit(tx)
    assert info.value.reason == "wrong_chain"
    status = await single_node.client.get_tx(tx.hash)
    assert (status["status"], status["code"], status["where"]) == \
        ("rejected", "wrong_chain", "admission")
