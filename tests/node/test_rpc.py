"""The JSON-RPC end to end over a real socket, including every kind of bad input."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from chain import codec
from chain.crypto import KeyPair
from chain.errors import TooLargeError
from chain.tx import Transaction, make_transaction
from sdk import RpcClientError
from tests.node.conftest import ACCOUNT_KEYS, BALANCE, CHAIN_ID

ALICE, BOB = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]


def transfer(nonce: int, amount: int = 10, key: KeyPair = ALICE, chain_id: str = CHAIN_ID,
             to: KeyPair = BOB) -> Transaction:
    return make_transaction(chain_id, key, nonce, "transfer",
                            {"to": to.address, "asset": "GOV", "amount": amount})


async def post_raw(url: str, body: bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(
            url + "/rpc", data=body, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json(content_type=None)


async def snapshot(running) -> tuple:
    """What bad input must never change: accounts and the mempool."""
    client = running.client
    accounts = [await client.call("state_account", address=k.address.hex())
                for k in (ALICE, BOB)]
    return (tuple(json.dumps(a, sort_keys=True) for a in accounts),
            len(running.node.mempool))


async def test_node_status(single_node):
    status = await single_node.client.call("node_status")
    assert status["chain_id"] == CHAIN_ID
    assert status["is_validator"] is True
    assert len(status["genesis_hash"]) == 64
    assert status["version"]
    for key in ("height", "head_hash", "finalized_height", "node_id", "peers"):
        assert key in status


async def test_transfer_becomes_final(single_node):
    client = single_node.client
    tx = transfer(0, 250)
    result = await client.submit(tx, wait="final")
    assert result["status"] == "final"
    assert result["code"] == "ok"
    assert result["hash"] == tx.hash.hex()
    assert result["events"][0]["kind"] == "transferred"
    bob = await client.call("state_account", address=BOB.address.hex())
    assert bob["balances"]["GOV"] == BALANCE + 250
    alice = await client.call("state_account", address=ALICE.address.hex())
    assert alice["nonce"] == 1 and alice["next_nonce"] == 1
    block = await client.call("chain_block", height=result["height"])
    assert tx.hash.hex() in block["txs"]
    assert block["certificate"]["height"] == result["height"]
    same = await client.call("chain_block", hash=block["hash"])
    assert same["height"] == block["height"]


async def test_submit_is_idempotent(single_node):
    client = single_node.client
    tx = transfer(0)
    first = await client.submit(tx)
    second = await client.submit(tx)
    assert first["hash"] == second["hash"] == tx.hash.hex()
    final = await client.submit(tx, wait="final")
    assert final["status"] == "final"
    again = await client.submit(tx)
    assert again["status"] == "final"


async def test_execution_failure_is_reported_and_consumes_nonce(single_node):
    client = single_node.client
    too_much = transfer(0, BALANCE + 1)
    result = await client.submit(too_much, wait="final")
    assert result["status"] == "rejected"
    assert result["where"] == "execution"
    assert result["code"] == "insufficient_balance"
    follow_up = await client.submit(transfer(1, 5), wait="final")
    assert follow_up["status"] == "final"


async def test_nonce_gap_waits_with_reason_then_final(single_node):
    client = single_node.client
    later = transfer(1)
    pending = await client.submit(later)
    assert pending["status"] == "pending"
    assert "nonce 0" in pending["waiting_for"]
    await client.submit(transfer(0), wait="final")
    for _ in range(100):
        status = await client.call("tx_get", hash=later.hash.hex())
        if status["status"] == "final":
            break
        await asyncio.sleep(0.05)
    assert status["status"] == "final"


async def test_tx_get_unknown(single_node):
    result = await single_node.client.call("tx_get", hash="00" * 32)
    assert result["status"] == "unknown"


async def test_batch_submit(single_node):
    txs = [transfer(n) for n in range(20)]
    answers = await single_node.client.submit_batch(txs)
    assert [a["hash"] for a in answers] == [tx.hash.hex() for tx in txs]
    assert all(a["status"] == "pending" for a in answers)
    result = await single_node.client.submit(txs[-1], wait="final")
    assert result["status"] == "final"


async def test_json_rpc_batch_request(single_node):
    client = single_node.client
    results = await client.batch([("node_status", {}), ("no_such_method", {}),
                                  ("tx_get", {"hash": "zz"})])
    assert results[0]["chain_id"] == CHAIN_ID
    assert isinstance(results[1], RpcClientError) and results[1].reason == "method_not_found"
    assert isinstance(results[2], RpcClientError) and results[2].reason == "invalid_params"


@pytest.mark.parametrize("tx_hex, reason", [
    ("zz", "invalid_params"),
    ("", "malformed"),
    ("c1", "malformed"),
    (codec.encode([1, 2, 3]).hex(), "malformed"),
])
async def test_invalid_tx_bytes_rejected(single_node, tx_hex, reason):
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.call("tx_submit", tx=tx_hex)
    assert info.value.reason == reason
    assert await snapshot(single_node) == before


async def test_invalid_non_canonical_tx_rejected(single_node):
    tx = transfer(0)
    value = list(codec.decode(tx.encoded))
    import msgpack
    unsorted_fields = dict(reversed(list(value[4].items())))
    non_canonical = msgpack.packb([*value[:4], unsorted_fields, value[5]], use_bin_type=True)
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.call("tx_submit", tx=non_canonical.hex())
    assert info.value.reason == "malformed"
    assert await snapshot(single_node) == before


async def test_invalid_wrong_chain_rejected(single_node):
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.submit(transfer(0, chain_id="another-chain"))
    assert info.value.reason == "wrong_chain"
    assert await snapshot(single_node) == before


async def test_invalid_bad_signature_rejected(single_node):
    tx = transfer(0)
    forged = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.tx_type,
                         {**tx.fields, "amount": 999}, tx.signatures)
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.submit(forged)
    assert info.value.reason == "bad_signature"
    status = await single_node.client.call("tx_get", hash=forged.hash.hex())
    assert status["status"] == "rejected" and status["where"] == "admission"
    assert await snapshot(single_node) == before


async def test_invalid_signer_not_sender_rejected(single_node):
    tx = make_transaction(CHAIN_ID, BOB, 0, "transfer",
                          {"to": BOB.address, "asset": "GOV", "amount": 1},
                          sender=ALICE.address)
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.submit(tx)
    assert info.value.reason == "unauthorized"
    assert await snapshot(single_node) == before


async def test_invalid_replayed_nonce_rejected(single_node):
    client = single_node.client
    await client.submit(transfer(0, 7), wait="final")
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await client.submit(transfer(0, 8))  # same nonce, different tx
    assert info.value.reason == "nonce_too_low"
    assert await snapshot(single_node) == before


async def test_invalid_nonce_too_far_ahead_rejected(single_node):
    with pytest.raises(RpcClientError) as info:
        await single_node.client.submit(transfer(10**6))
    assert info.value.reason == "nonce_too_high"


async def test_invalid_unknown_sender_rejected(single_node):
    stranger = KeyPair.from_seed(b"\x55" * 32)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.submit(transfer(0, key=stranger))
    assert info.value.reason == "unknown_account"


async def test_invalid_too_large_tx_rejected_with_one_message(single_node):
    # The size is checked once, where both the RPC's and a peer's bytes are decoded.
    node = single_node.node
    limit = node.params.max_tx_bytes
    tx = make_transaction(CHAIN_ID, ALICE, 0, "transfer",
                          {"to": BOB.address, "asset": "GOV", "amount": 1, "memo": "x" * limit})
    size = len(tx.encoded)
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await single_node.client.submit(tx)
    words = f"transaction of {size} bytes exceeds the limit of {limit}"
    assert (info.value.reason, info.value.message) == ("too_large", words)
    assert info.value.data == {"reason": "too_large"}  # found decoding: no hash, no where
    assert await snapshot(single_node) == before
    with pytest.raises(TooLargeError) as decoded:
        node.admission.decode_tx(tx.encoded)
    assert decoded.value.message == words


async def test_invalid_unknown_asset_rejected_without_using_the_nonce(single_node):
    client = single_node.client
    tx = make_transaction(CHAIN_ID, ALICE, 0, "transfer",
                          {"to": BOB.address, "asset": "NOPE", "amount": 1})
    before = await snapshot(single_node)
    with pytest.raises(RpcClientError) as info:
        await client.submit(tx)
    assert info.value.reason == "unknown_asset"
    assert "'NOPE'" in str(info.value)
    assert await snapshot(single_node) == before
    status = await client.call("tx_get", hash=tx.hash.hex())
    assert (status["status"], status["code"], status["where"]) == (
        "rejected", "unknown_asset", "admission")
    # Nonce 0 is still Alice's to use.
    assert (await client.submit(transfer(0, 5), wait="final"))["status"] == "final"


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 200, "parse_error"),
    (b"[]", 200, "invalid_request"),
    (b'{"jsonrpc": "1.0", "method": "node_status", "id": 1}', 200, "invalid_request"),
    (b'{"jsonrpc": "2.0", "method": 5, "id": 1}', 200, "invalid_request"),
    (b'{"jsonrpc": "2.0", "method": "nope", "id": 1}', 200, "method_not_found"),
    (b'{"jsonrpc": "2.0", "method": "tx_get", "params": 7, "id": 1}', 200, "invalid_params"),
    (b'{"jsonrpc": "2.0", "method": "tx_get", "params": {"x": 1}, "id": 1}', 200,
     "invalid_params"),
    (b'{"jsonrpc": "2.0", "method": "chain_block", "params": {"height": -1}, "id": 1}', 200,
     "invalid_params"),
    (b'{"jsonrpc": "2.0", "method": "chain_block", "params": {"height": 99999}, "id": 1}',
     200, "block_not_found"),
    (b'{"jsonrpc": "2.0", "method": "state_account", "params": {"address": 5}, "id": 1}',
     200, "invalid_params"),
])
async def test_invalid_requests_get_typed_errors(single_node, body, status, reason):
    before = await snapshot(single_node)
    code, doc = await post_raw(single_node.service.rpc_url, body)
    assert code == status
    assert doc["jsonrpc"] == "2.0"
    assert doc["error"]["data"]["reason"] == reason
    assert isinstance(doc["error"]["code"], int)
    assert await snapshot(single_node) == before


async def test_invalid_huge_body_rejected(single_node):
    limit = single_node.service.home.config.rpc_max_body_bytes
    body = b'{"jsonrpc": "2.0", "method": "node_status", "id": 1, "pad": "' + \
        b"x" * (limit + 10) + b'"}'
    code, doc = await post_raw(single_node.service.rpc_url, body)
    assert code == 413
    assert doc["error"]["data"]["reason"] == "body_too_large"


async def test_invalid_oversized_batch_rejected(single_node):
    limit = single_node.service.home.config.rpc_max_batch
    calls = [{"jsonrpc": "2.0", "method": "node_status", "id": i} for i in range(limit + 1)]
    _code, doc = await post_raw(single_node.service.rpc_url, json.dumps(calls).encode())
    assert doc["error"]["data"]["reason"] == "batch_too_large"


async def test_chain_validators_and_health(single_node):
    validators = await single_node.client.call("chain_validators")
    assert validators["quorum"] == 1
    assert validators["validators"][0]["name"] == "ministry-0"
    async with aiohttp.ClientSession() as session, \
            session.get(single_node.service.rpc_url + "/health") as response:
        assert response.status == 200


async def test_rpc_discover_lists_every_method(single_node):
    doc = await single_node.client.call("rpc_discover")
    names = {m["name"] for m in doc["methods"]}
    dispatcher_names = set(single_node.service.api_dispatcher.methods)
    assert names == dispatcher_names
    assert {"tx_submit", "tx_get", "chain_block", "node_status"} <= names
