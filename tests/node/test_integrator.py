"""The integrator's view over real sockets: SDK on a 4-validator network, resume across
a restart, nonce gaps, typed rejections, rate limits, admin access, proofs, tx files.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from chain import codec
from chain.crypto import KeyPair
from cli.service import NodeService
from devnet.ports import get_free_port
from ledger.accounts import AccountRecord
from node.config import ADMIN_TOKEN_FILE, CONFIG_FILE, NodeHome, render_config
from sdk import (
    AsyncClient,
    Client,
    RateLimitedError,
    TxRejectedError,
    UnauthorizedError,
    add_signature_to_file,
    build_tx,
    generate_key,
    load_key,
    load_tx_file,
    save_key,
    save_tx_file,
    sign_tx,
)
from sdk.errors import error_from_json
from sdk.proof import ProofError
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    CHAIN_ID,
    VALIDATOR_KEYS,
    RunningNode,
    connect_to,
    make_genesis,
    start_network,
    stop_network,
    wait_for,
)
from tests.node.test_rpc import ALICE, BOB, snapshot, transfer
from tests.node.test_ws import start_node

ROOT = Path(__file__).resolve().parents[2]


async def test_sdk_submit_and_wait_on_four_validators(network4):
    client = network4[2].client
    result = await client.send(ALICE, "transfer",
                               {"to": "0x" + BOB.address.hex(), "asset": "GOV", "amount": 5})
    assert result["status"] == "final" and result["code"] == "ok"
    for running in network4:  # final means final on every node
        info = await wait_for(lambda r=running: _final(r, result["hash"]), 10, "final")
        assert info["height"] == result["height"]


async def _final(running: RunningNode, tx_hash: str):
    info = await running.client.get_tx(tx_hash)
    return info if info["status"] == "final" else None


async def test_blocks_subscription_resumes_across_node_restart(tmp_path):
    nodes = await start_network(tmp_path, 4)
    port = get_free_port()
    watched = nodes[3]
    restarted: NodeService | None = None
    try:
        # Give the watched node a fixed RPC port so the SDK can reconnect to it.
        await watched.service.stop()
        await watched.client.close()
        home_path = watched.service.home.path
        _set_config(home_path, rpc_listen=f"127.0.0.1:{port}")
        service = NodeService(NodeHome.load(home_path))
        await service.start()
        connect_to(service, [n.service for n in nodes[:3]])
        client = AsyncClient(service.rpc_url)
        subscription = client.subscribe("blocks", from_height=1, reconnect_timeout_s=30)
        heights: list[int] = []

        async def consume() -> None:
            async for block in subscription:
                heights.append(block["height"])
                if len(heights) >= 40 or (subscription.reconnects and block["height"]
                                          >= restart_height[0] + 5):
                    return

        restart_height = [10**9]
        consumer = asyncio.create_task(consume())
        await wait_for(lambda: _ready(heights, 3), 20, "3 blocks via the subscription")
        await service.stop()
        await asyncio.sleep(0.5)  # blocks keep coming on the other three meanwhile
        restarted = NodeService(NodeHome.load(home_path))
        await restarted.start()
        connect_to(restarted, [n.service for n in nodes[:3]])
        restart_height[0] = restarted.node.store.head_height
        await asyncio.wait_for(consumer, 60)
        await subscription.close()
        await client.close()
        assert subscription.reconnects >= 1
        assert heights == list(range(1, len(heights) + 1)), heights  # every block, in order
        assert heights[-1] >= restart_height[0] + 5
    finally:
        if restarted is not None:
            await restarted.stop()
        await stop_network(nodes[:3])


async def _ready(heights: list[int], count: int) -> bool:
    return len(heights) >= count


def _set_config(home_path: Path, **values: object) -> None:
    config = NodeHome.load(home_path).config
    for name, value in values.items():
        setattr(config, name, value)
    (home_path / CONFIG_FILE).write_text(render_config(config))


async def test_nonce_gap_reason_then_final_and_rejections_typed(network4):
    client = network4[1].client
    later = transfer(1, 3)
    pending = await client.submit(later)
    assert pending["status"] == "pending"
    assert pending["waiting_for"] == ("waiting for nonce 0 of this sender; "
                                      "this transaction has 1")
    assert (await client.call("state_account", address=ALICE.address.hex()))["next_nonce"] == 0
    await client.submit(transfer(0, 2), wait="final")
    final = await wait_for(lambda: _final(network4[1], later.hash.hex()), 10, "gap filled")
    assert final["code"] == "ok"
    # Rejected at admission: a typed error with the node's code and reason.
    with pytest.raises(TxRejectedError) as info:
        await client.submit(transfer(1, 99))
    assert info.value.code == -32000 and info.value.reason == "nonce_too_low"
    assert info.value.data["where"] == "admission"
    # Rejected at execution: the nonce is used, and the reason is reported.
    failed = await client.submit(transfer(2, BALANCE * 10), wait="final")
    assert failed["status"] == "rejected" and failed["where"] == "execution"
    assert failed["code"] == "insufficient_balance"
    after = await client.submit(transfer(3, 1), wait="final")
    assert after["status"] == "final"  # a rejected tx never blocks later ones


async def test_invalid_rate_limited_requests_answer_their_error(tmp_path):
    running = await start_node(tmp_path, rpc_rate_limit_per_s=1.0, rpc_rate_burst=3)
    try:
        for _ in range(3):
            await running.client.call("node_status")
        with pytest.raises(RateLimitedError) as info:
            await running.client.call("node_status")
        assert info.value.reason == "rate_limited" and info.value.retry_after_s > 0
        async with aiohttp.ClientSession() as session, session.post(
                running.service.rpc_url + "/rpc",
                json={"jsonrpc": "2.0", "id": 1, "method": "tx_submit",
                      "params": {"tx": transfer(0).encoded.hex()}}) as response:
            assert response.status == 429
            doc = await response.json()
        assert doc["error"]["code"] == -32004
        assert len(running.node.mempool) == 0  # refused before it reached the node
    finally:
        await running.client.close()
        await running.service.stop()


async def _admin_call(url: str, method: str, *, local_addr: str, token: str | None = None,
                      params: dict | None = None) -> dict:
    connector = aiohttp.TCPConnector(local_addr=(local_addr, 0))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session, \
            session.post(url + "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                             "params": params or {}}) as response:
        return await response.json()


async def test_invalid_admin_refused_remotely_or_without_token(tmp_path):
    running = await start_node(tmp_path, rpc_listen="127.0.0.2:0")
    url = running.service.rpc_url
    token = (running.service.home.path / ADMIN_TOKEN_FILE).read_text().strip()
    try:
        pending = transfer(1)
        await running.client.submit(pending)  # waits for nonce 0
        before = await snapshot(running)
        remote = "127.0.0.3"  # not localhost: only 127.0.0.1 and ::1 are
        for method in ("admin_peers", "admin_mempool_flush", "admin_peer_remove"):
            doc = await _admin_call(url, method, local_addr=remote,
                                    params={"node_id": "00" * 32})
            assert doc["error"]["code"] == -32006, doc
            assert doc["error"]["data"]["reason"] == "unauthorized"
            doc = await _admin_call(url, method, local_addr=remote, token="wrong" * 8,
                                    params={"node_id": "00" * 32})
            assert doc["error"]["data"]["reason"] == "unauthorized"
        assert await snapshot(running) == before  # nothing flushed
        public = await _admin_call(url, "node_status", local_addr=remote)
        assert public["result"]["chain_id"] == CHAIN_ID
        # With the token from the node home, from anywhere; from localhost, without it.
        ok = await _admin_call(url, "admin_peers", local_addr=remote, token=token)
        assert ok["result"] == []
        flushed = await _admin_call(url, "admin_mempool_flush", local_addr="127.0.0.1")
        assert flushed["result"] == {"flushed": 1}
        status = await running.client.call("tx_get", hash=pending.hash.hex())
        assert (status["status"], status["code"], status["where"]) == \
            ("rejected", "flushed", "eviction")
        sdk = AsyncClient(url, admin_token=token)
        assert await sdk.call("admin_peers") == []
        await sdk.close()
    finally:
        await running.client.close()
        await running.service.stop()


async def test_invalid_admin_from_localhost_needs_token_when_configured(tmp_path):
    running = await start_node(tmp_path, rpc_admin_allow_local=False)
    try:
        with pytest.raises(UnauthorizedError):
            await running.client.call("admin_peers")
    finally:
        await running.client.close()
        await running.service.stop()


async def test_admin_peers_and_remove_on_network(network4):
    client = network4[0].client

    async def all_connected():
        found = await client.call("admin_peers")
        return found if len(found) == 3 else None

    peers = await wait_for(all_connected, 10, "three peers connected")
    victim = peers[0]["node_id"]
    assert (await client.call("admin_peer_remove", node_id=victim)) == {"disconnected": True}
    await wait_for(lambda: _peer_gone(network4[0], victim), 10, "peer disconnected")


async def _peer_gone(running: RunningNode, node_id: str) -> bool:
    return all(p.node_id != node_id for p in running.service.network.peer_list())


async def test_state_proof_verified_against_certified_block(single_node):
    await single_node.client.submit(transfer(0, 11), wait="final")
    genesis_set = make_genesis([KeyPair.from_seed(b"\x01" * 32)]).validator_set
    client = Client(single_node.service.rpc_url)
    record = await asyncio.to_thread(client.verified_account_record, BOB.address, genesis_set)
    assert record is not None and AccountRecord.from_value(codec.decode(record)).nonce == 0
    other_set = make_genesis(VALIDATOR_KEYS[2:3]).validator_set
    with pytest.raises(ProofError):
        await asyncio.to_thread(client.verified_account_record, BOB.address, other_set)


async def test_multisig_tx_file_offline_signing(tmp_path, single_node):
    signers = [generate_key() for _ in range(2)]
    paths = [save_key(tmp_path / f"signer{i}.json", k) for i, k in enumerate(signers)]
    assert load_key(paths[0]).public_key == signers[0].public_key
    tx = build_tx(CHAIN_ID, "transfer", {"to": "0x" + BOB.address.hex(), "asset": "GOV",
                                         "amount": 1}, sender=ALICE.address, nonce=0)
    file = save_tx_file(tmp_path / "tx.json", tx)
    for path in paths:  # each signer, offline, with only the file and a key
        add_signature_to_file(file, load_key(path))
    signed = load_tx_file(file)
    assert sorted(signed.signer_keys) == sorted(k.public_key for k in signers)
    assert signed.fields["to"] == BOB.address
    doc = json.loads(file.read_text())
    assert doc["hash"] == signed.hash.hex() and len(doc["signers"]) == 2
    # Alice's account is single-key today: the node says so, with a typed error.
    with pytest.raises(TxRejectedError) as info:
        await single_node.client.submit(signed)
    assert info.value.reason == "unauthorized"
    single = sign_tx(tx, ALICE)
    assert (await single_node.client.submit(single, wait="final"))["status"] == "final"


def test_errors_map_codes_to_types():
    error = error_from_json({"code": -32004, "message": "slow down",
                             "data": {"reason": "rate_limited", "retry_after_s": 0.5}})
    assert isinstance(error, RateLimitedError) and error.retry_after_s == 0.5
    assert error_from_json("nonsense").reason == "bad_response"


async def test_sdk_tutorial_runs_against_a_real_node(tmp_path, single_node):
    text = (ROOT / "docs" / "sdk.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) < 20
    key_file = tmp_path / "account0_key.json"
    save_key(key_file, ACCOUNT_KEYS[0])
    code = code.replace("http://127.0.0.1:8545", single_node.service.rpc_url)
    code = code.replace("devnet-data/genesis/account0_key.json", str(key_file))
    scope: dict = {}
    await asyncio.to_thread(exec, compile(code, "docs/sdk.md", "exec"), scope)
    assert scope["result"]["status"] == "final"


async def test_nonce_gap_never_blocks_forever_it_expires_with_a_reason(tmp_path):
    running = await start_node(tmp_path, mempool_tx_ttl_s=1)
    try:
        stuck = transfer(1)
        assert (await running.client.submit(stuck))["status"] == "pending"
        result = await running.client.submit(stuck, wait="final", timeout_s=10)
        assert (result["status"], result["code"], result["where"]) == \
            ("rejected", "expired", "expiry")
        account = await running.client.call("state_account", address=ALICE.address.hex())
        assert account["next_nonce"] == 0 and account["pending"] == 0
        assert (await running.client.submit(transfer(0), wait="final"))["status"] == "final"
    finally:
        await running.client.close()
        await running.service.stop()
