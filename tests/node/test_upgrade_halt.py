"""Upgrades at a height on a real node (LevelDB, sockets on 127.0.0.1, in this process):
the old version commits H-1 and halts saying why; the new version, restarted on the same
data, resumes at H with the new rule; the old version then refuses to start."""

from __future__ import annotations

import aiohttp
import pytest

from chain.crypto import KeyPair
from cli.service import NodeService
from ledger.upgrades import REHEARSAL_CHANGES
from node.config import NodeHome
from node.upgrades import REHEARSAL_ENV
from sdk import AsyncClient
from sdk.errors import BusyError
from tests.node.conftest import ACCOUNT_KEYS, make_genesis, make_home, wait_for

NAME = "v2-rehearsal"


async def _health(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url + "/health") as response:
        return response.status, await response.json()


async def test_old_version_halts_at_h_minus_1_and_new_version_resumes(tmp_path, monkeypatch):
    monkeypatch.delenv(REHEARSAL_ENV, raising=False)
    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path / "node0", make_genesis([validator]), validator)
    service = NodeService(home)
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        head = (await client.status())["height"]
        height = head + 6
        result = await client.send(validator, "propose", {
            "action": "schedule_upgrade", "expiry_height": head + 100,
            "args": {"name": NAME, "height": height, "info": "release 2.0"}})
        assert result["status"] == "final", result
        status = await client.status()
        assert status["upgrade"]["name"] == NAME and status["upgrade"]["height"] == height
        assert status["halted"] is None

        async def halted() -> bool:
            return service.halted.is_set()

        await wait_for(halted, 30, "the node halting for the upgrade")
        # It committed H-1 and nothing more, and says why everywhere.
        assert service.node.store.head_height == height - 1
        status = await client.status()
        assert status["height"] == height - 1
        assert status["halted"].startswith(f"halted for upgrade {NAME} at {height}")
        code, body = await _health(service.rpc_url)
        assert code == 503 and body["status"] == "halted" and NAME in str(body["message"])
        tx = await client.build(ACCOUNT_KEYS[0], "transfer", {
            "to": ACCOUNT_KEYS[1].address, "asset": "GOV", "amount": 1})
        with pytest.raises(BusyError, match="halted_for_upgrade"):
            await client.submit(tx)
    finally:
        await client.close()
        await service.stop()

    # The new version on the same data: it resumes at H, with the new rule from there.
    monkeypatch.setenv(REHEARSAL_ENV, NAME)
    service = NodeService(NodeHome.load(home.path))
    assert service.node.upgrade_halt is None
    before = service.node.params.max_block_txs
    await service.start()
    try:
        async def past_h() -> bool:
            return service.node.store.head_height >= height + 1

        await wait_for(past_h, 30, "the new version finalizing past the upgrade height")
        assert before != REHEARSAL_CHANGES["max_block_txs"]
        assert service.node.params.max_block_txs == REHEARSAL_CHANGES["max_block_txs"]
        header = service.node.store.get_block_header(height)
        assert header is not None and header.height == height
    finally:
        await service.stop()

    # The old version again: the chain applied an upgrade it lacks, it refuses to run.
    monkeypatch.delenv(REHEARSAL_ENV)
    service = NodeService(NodeHome.load(home.path))
    halt = service.node.upgrade_halt
    assert halt is not None and halt.applied and (halt.name, halt.height) == (NAME, height)
    head = service.node.store.head_height
    await service.start()
    try:
        assert service.halted.is_set()
        assert not service._tasks  # neither the driver nor p2p run
        code, body = await _health(service.rpc_url)
        assert code == 503 and f"halted for upgrade {NAME} at {height}" in str(body["message"])
        assert service.node.store.head_height == head
    finally:
        await service.stop()
