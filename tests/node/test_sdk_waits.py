"""The SDK's waiting calls end: subscriptions to settled transactions, notifications that
overtake the subscribe answer, and a typed RpcTimeoutError for every wait that runs out.

Real node or a real aiohttp server on 127.0.0.1 (OS-assigned port) in every test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from devnet.ports import get_free_port
from sdk import AsyncClient, Client, RpcTimeoutError, UnreachableError
from tests.node.test_rpc import ALICE, BOB, transfer

BOUND_S = 15.0
"""A test that has not finished by then is hanging: fail it instead of waiting on."""


async def first(subscription: AsyncIterator[dict]) -> dict:
    return await asyncio.wait_for(anext(subscription), BOUND_S)


async def test_tx_subscription_to_a_final_tx_yields_it(single_node):
    tx = transfer(0, 5)
    assert (await single_node.client.submit(tx, wait="final"))["status"] == "final"
    subscription = single_node.client.subscribe("tx", tx_hash=tx.hash)
    result = await first(subscription)
    assert (result["type"], result["status"], result["hash"]) == ("tx", "final",
                                                                  tx.hash.hex())
    with pytest.raises(StopAsyncIteration):
        await anext(subscription)  # a tx subscription yields once


async def test_tx_subscription_to_a_pending_tx_yields_it_when_final(single_node):
    later = transfer(1, 5)  # waits for nonce 0
    await single_node.client.submit(later)
    subscription = single_node.client.subscribe("tx", tx_hash=later.hash.hex())
    waiting = asyncio.ensure_future(first(subscription))
    await single_node.client.submit(transfer(0, 5))
    result = await waiting
    assert (result["status"], result["hash"]) == ("final", later.hash.hex())


async def _fake_node(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_notification_that_overtakes_the_subscribe_answer_is_kept():
    """A node that notifies before it answers (as govchain did) loses nothing."""
    async def overtaking(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        call = json.loads((await ws.receive()).data)
        notice = {"type": "tx", "hash": "ab" * 32, "status": "final"}
        await ws.send_json({"jsonrpc": "2.0", "method": "subscription",
                            "params": {"subscription": "s9", "result": {"type": "tx",
                                                                        "status": "x"}}})
        await ws.send_json({"jsonrpc": "2.0", "method": "subscription",
                            "params": {"subscription": "s7", "result": notice}})
        await ws.send_json({"jsonrpc": "2.0", "id": call["id"],
                            "result": {"subscription": "s7"}})
        await ws.receive()  # until the client closes
        return ws

    runner, url = await _fake_node(overtaking)
    try:
        async with AsyncClient(url) as client:
            result = await first(client.subscribe("tx", tx_hash="ab" * 32))
        assert result == {"type": "tx", "hash": "ab" * 32, "status": "final"}
    finally:
        await runner.cleanup()


async def test_invalid_tx_subscription_times_out_with_a_typed_error(single_node):
    unknown = transfer(0, 77)  # never submitted
    subscription = single_node.client.subscribe("tx", tx_hash=unknown.hash, timeout_s=0.3)
    with pytest.raises(RpcTimeoutError) as info:
        await first(subscription)
    assert info.value.code == -32005 and info.value.reason == "timeout"
    assert unknown.hash.hex() in info.value.message
    assert "unknown" in info.value.message  # the tx's status, as the node last said
    await subscription.close()


async def test_invalid_blocks_subscription_times_out_when_asked():
    async def quiet(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:  # answers subscribe, then never notifies
            call = json.loads(message.data)
            await ws.send_json({"jsonrpc": "2.0", "id": call["id"],
                                "result": {"subscription": "s1", "from_height": 3}})
        return ws

    runner, url = await _fake_node(quiet)
    try:
        async with AsyncClient(url) as client:
            subscription = client.subscribe("blocks", timeout_s=0.2)
            with pytest.raises(RpcTimeoutError) as info:
                await first(subscription)
        assert "no notification within 0.2 s" in info.value.message
        assert "height 3" in info.value.message
    finally:
        await runner.cleanup()


async def test_invalid_subscribe_to_a_dead_node_fails_at_once():
    async with AsyncClient(f"http://127.0.0.1:{get_free_port()}") as client:
        with pytest.raises(UnreachableError) as info:
            await first(client.subscribe("blocks"))
    assert "/ws" in info.value.message


async def test_invalid_async_wait_for_final_times_out_with_a_typed_error(single_node):
    stuck = transfer(3, 1)  # nonce gap: never final while nonces 0..2 are missing
    with pytest.raises(RpcTimeoutError) as info:
        await single_node.client.submit_and_wait(stuck, timeout_s=0.2)
    assert info.value.data["status"]["status"] == "pending"
    assert "waiting for nonce 0" in info.value.message


async def test_invalid_sync_waits_for_final_time_out_with_a_typed_error(single_node):
    client = Client(single_node.service.rpc_url)
    stuck = transfer(3, 1)
    await single_node.client.submit(stuck)
    with pytest.raises(RpcTimeoutError) as info:
        await asyncio.to_thread(client.wait_final, stuck.hash, 0.2)
    assert isinstance(info.value, TimeoutError)  # code catching TimeoutError still works
    assert "waiting for nonce 0" in info.value.message
    with pytest.raises(RpcTimeoutError):
        await asyncio.to_thread(client.transfer, ALICE, BOB.address, 1, "GOV", nonce=5,
                                timeout_s=0.2)


async def test_subscribe_answer_that_never_comes_times_out():
    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:  # reads calls, never answers
            pass
        return ws

    runner, url = await _fake_node(silent)
    try:
        async with AsyncClient(url, timeout_s=0.2) as client:
            with pytest.raises(RpcTimeoutError) as info:
                await first(client.subscribe("blocks"))
        assert "subscribe" in info.value.message
    finally:
        await runner.cleanup()

