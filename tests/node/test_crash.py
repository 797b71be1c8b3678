"""SIGKILL a validator process under load, restart it on the same home, check what survived.

Final means final: every transaction the RPC reported final before the kill is still
final at the same height and index after the restart; the head is whole; balances are
conserved; and the chain goes on. The kill moment is drawn from a printed seed
(CRASH_SEED=... replays it).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair
from chain.genesis import ChainParams
from chain.tx import make_transaction
from node.config import write_key_file
from sdk import AsyncClient, RpcClientError
from tests.node.conftest import ACCOUNT_KEYS, BALANCE, CHAIN_ID, make_genesis
from tests.node.procs import NodeProcess, ProcessSet, init_node

JsonDoc = dict[str, Any]

pytestmark = pytest.mark.slow

CRASH_PARAMS = ChainParams(block_interval_ms=50, empty_block_interval_ms=500,
                           timeout_propose_ms=400, timeout_vote_ms=200, timeout_delta_ms=100)
KILLS = 3
TXS_PER_SENDER_PER_BATCH = 5
MAX_PENDING = 400
"""Stay well inside the mempool's per-sender nonce window."""


@dataclass
class Load:
    """What the load generator submitted and what the node reported final."""

    nonces: dict[bytes, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    """Submitted, not yet seen final: hash -> batch number."""
    finals: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Reported final: hash -> (height, index)."""
    rejected: dict[str, JsonDoc] = field(default_factory=dict)
    batches: int = 0


async def wait_up(client: AsyncClient, timeout_s: float = 20.0) -> JsonDoc:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status: JsonDoc = await client.call("node_status")
            return status
        except RpcClientError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def sync_nonces(client: AsyncClient, load: Load) -> None:
    for key in ACCOUNT_KEYS:
        account = await client.call("state_account", address=key.address.hex())
        load.nonces[key.address] = account["next_nonce"]
    load.pending.clear()  # the mempool did not survive the kill


async def run_load(client: AsyncClient, load: Load, *, max_batches: int) -> None:
    """Submit transfers round-robin between the senders and poll their fate, until killed."""
    for _ in range(max_batches):
        if len(load.pending) < MAX_PENDING:
            txs = []
            for i, key in enumerate(ACCOUNT_KEYS):
                receiver = ACCOUNT_KEYS[(i + 1) % len(ACCOUNT_KEYS)]
                for _ in range(TXS_PER_SENDER_PER_BATCH):
                    txs.append(make_transaction(
                        CHAIN_ID, key, load.nonces[key.address], "transfer",
                        {"to": receiver.address, "asset": "GOV", "amount": 1 + load.batches}))
                    load.nonces[key.address] += 1
            answers = await client.submit_batch(txs)
            for tx, answer in zip(txs, answers, strict=True):
                assert "error" not in answer, answer
                load.pending[tx.hash.hex()] = load.batches
            load.batches += 1
        hashes = list(load.pending)
        statuses = await client.batch([("tx_get", {"hash": h}) for h in hashes])
        for tx_hash, status in zip(hashes, statuses, strict=True):
            assert not isinstance(status, RpcClientError), status
            if status["status"] == "final":
                load.finals[tx_hash] = (status["height"], status["index"])
                del load.pending[tx_hash]
            elif status["status"] == "rejected":
                load.rejected[tx_hash] = status
                del load.pending[tx_hash]
        await asyncio.sleep(0.01)


async def load_until_killed(client: AsyncClient, load: Load, node: NodeProcess,
                            kill_after_s: float) -> None:
    task = asyncio.create_task(run_load(client, load, max_batches=10_000))
    done, _ = await asyncio.wait({task}, timeout=kill_after_s)
    assert not done, f"the load stopped before the kill: {task.exception()!r}"
    assert node.is_running()
    node.kill()
    try:
        await asyncio.wait_for(task, timeout=10)
    except RpcClientError as e:
        assert e.reason == "unreachable", e  # the node died mid-request
    else:
        raise AssertionError("the load went on after the node was killed")


async def check_head(client: AsyncClient) -> int:
    """Every block up to the head is served with its certificate and links to its parent."""
    status = await client.call("node_status")
    head = status["height"]
    assert head >= 1
    blocks = await client.batch([("chain_block", {"height": h}) for h in range(1, head + 1)])
    prev_hash = None
    for height, block in enumerate(blocks, start=1):
        assert not isinstance(block, RpcClientError), (height, block)
        assert block["height"] == height
        assert block["certificate"] is not None
        assert block["certificate"]["height"] == height
        assert block["certificate"]["block_hash"] == block["hash"]
        if prev_hash is not None:
            assert block["prev_hash"] == prev_hash, f"block {height} does not follow its parent"
        prev_hash = block["hash"]
    assert prev_hash == status["head_hash"]
    return int(head)


async def check_finals_survived(client: AsyncClient, load: Load) -> None:
    hashes = list(load.finals)
    for start in range(0, len(hashes), 1000):
        chunk = hashes[start:start + 1000]
        statuses = await client.batch([("tx_get", {"hash": h}) for h in chunk])
        for tx_hash, status in zip(chunk, statuses, strict=True):
            assert not isinstance(status, RpcClientError), status
            assert status["status"] == "final", (tx_hash, status)
            assert (status["height"], status["index"]) == load.finals[tx_hash], tx_hash


async def check_balances(client: AsyncClient) -> None:
    total = 0
    for key in ACCOUNT_KEYS:
        account = await client.call("state_account", address=key.address.hex())
        total += account["balances"]["GOV"]
    assert total == BALANCE * len(ACCOUNT_KEYS), "GOV was created or destroyed"


async def check_progress(client: AsyncClient, after_height: int, timeout_s: float = 15.0
                         ) -> None:
    """New blocks become final, and so does a new transaction."""
    key, receiver = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]
    account = await client.call("state_account", address=key.address.hex())
    tx = make_transaction(CHAIN_ID, key, account["next_nonce"], "transfer",
                          {"to": receiver.address, "asset": "GOV", "amount": 1})
    result = await client.submit(tx, wait="final")
    assert result["status"] == "final", result
    deadline = time.monotonic() + timeout_s
    while (await client.call("node_status"))["height"] < after_height + 2:
        assert time.monotonic() < deadline, "the chain stopped after the restart"
        await asyncio.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    procs = ProcessSet()
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture
def validator_node(tmp_path: Path, processes: ProcessSet) -> NodeProcess:
    validator = KeyPair.from_seed(b"\x07" * 32)
    genesis_path = tmp_path / "genesis.json"
    genesis_path.write_text(make_genesis([validator], CRASH_PARAMS).to_json())
    key_path = tmp_path / "validator_key.json"
    write_key_file(key_path, validator)
    return processes.add(init_node(tmp_path / "home", genesis_path, key_path))


async def test_sigkill_under_load_keeps_final_txs(validator_node: NodeProcess) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    print(f"CRASH_SEED={seed}")
    rng = random.Random(seed)
    load = Load()
    node = validator_node
    async with AsyncClient(node.rpc_url, timeout_s=15) as client:
        node.start()
        await wait_up(client)
        for kill in range(KILLS):
            await sync_nonces(client, load)
            finals_before = len(load.finals)
            await load_until_killed(client, load, node, kill_after_s=rng.uniform(0.3, 1.5))
            assert len(load.finals) > finals_before, f"kill {kill}: nothing became final"

            node.start()
            await wait_up(client)
            head = await check_head(client)
            assert head >= max(height for height, _ in load.finals.values())
            await check_finals_survived(client, load)
            await check_balances(client)
            await check_progress(client, head)
        assert not load.rejected, load.rejected
    assert "Traceback" not in node.log_text()
    print(f"{KILLS} kills, {len(load.finals)} transactions final, {load.batches} batches")
