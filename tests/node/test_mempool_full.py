"""A full mempool answers "busy, retry" (mempool_full, -32002) and the node goes on.

A real node (LevelDB, RPC on 127.0.0.1) with a small mempool cap (100) and small
blocks (10 txs): a burst of 300 transfers fills it; the rest are refused as busy,
the node keeps running and finalizing, the admitted ones become final, and the
refused ones are accepted once resubmitted after the mempool drained.
"""

from __future__ import annotations

import asyncio

import pytest

from chain.crypto import KeyPair
from chain.genesis import ChainParams
from chain.tx import make_transaction
from cli.service import NodeService
from rpc.dispatcher import BUSY
from sdk import AsyncClient
from sdk.errors import BusyError
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID, make_genesis, make_home, wait_for

SMALL_BLOCKS = ChainParams(block_interval_ms=50, empty_block_interval_ms=400,
                           timeout_propose_ms=400, timeout_vote_ms=200, timeout_delta_ms=100,
                           max_block_txs=10)
CAP = 100


@pytest.fixture
async def small_pool_node(tmp_path):
    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path / "node0", make_genesis([validator], SMALL_BLOCKS), validator,
                     mempool_max_txs=CAP, log_level="INFO")
    service = NodeService(home)
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        yield service, client
    finally:
        await client.close()
        await service.stop()


def transfers(count: int) -> list:
    to = ACCOUNT_KEYS[0].address
    return [make_transaction(CHAIN_ID, ACCOUNT_KEYS[1 + i % 3], i // 3, "transfer",
                             {"to": to, "asset": "GOV", "amount": 1}) for i in range(count)]


async def test_full_mempool_answers_busy_and_the_node_keeps_finalizing(small_pool_node) -> None:
    service, client = small_pool_node
    txs = transfers(300)
    answers = await client.submit_batch(txs)
    admitted = [a for a in answers if "error" not in a]
    busy = [a for a in answers if "error" in a]
    assert len(admitted) == CAP and len(busy) == 200
    for answer in busy:
        error = answer["error"]
        assert error["code"] == BUSY
        assert error["data"]["reason"] == "mempool_full"
        assert "busy, retry later" in error["message"]
    # One transaction alone gets the same typed answer through the SDK.
    with pytest.raises(BusyError) as e:
        await client.submit(txs[-1])
    assert e.value.reason == "mempool_full"
    assert len(service.node.mempool) <= CAP

    height = service.node.store.head_height
    refused = [tx for tx, a in zip(txs, answers, strict=True) if "error" in a]
    for tx in refused[:5]:  # refused as busy is not a verdict on the tx: nothing recorded
        assert (await client.get_tx(tx.hash))["status"] == "unknown"

    async def all_admitted_final() -> bool:
        infos = [await client.get_tx(a["hash"]) for a in admitted[::10]]
        return all(i["status"] == "final" for i in infos)

    await wait_for(all_admitted_final, 30, "the admitted txs to be final")
    assert service.node.store.head_height >= height + CAP // SMALL_BLOCKS.max_block_txs
    assert not service.failed.is_set()

    # Retry: the refused ones are taken once there is room, and become final.
    pending = refused
    for _ in range(50):
        answers = await client.submit_batch(pending)
        pending = [tx for tx, a in zip(pending, answers, strict=True) if "error" in a]
        assert all(a["error"]["data"]["reason"] == "mempool_full"
                   for a in answers if "error" in a)
        if not pending:
            break
        await asyncio.sleep(0.2)
    assert pending == []

    async def last_final() -> bool:
        return (await client.get_tx(txs[-1].hash))["status"] == "final"

    await wait_for(last_final, 30, "the retried txs to be final")
