"""A validator node signing through a `govchain signer` process: the signer is killed
and started again while the node runs, and consensus goes on from where it was, with
no node restart; two nodes of one validator on one signer never double-sign."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from chain.crypto import KeyPair
from cli.service import NodeService
from node.keystore import write_encrypted_key_file
from tests.node.conftest import connect_to, make_genesis, make_home
from tests.signer.kit import CHAIN_ID, running_signer, signer_process, wait_until

KEY = KeyPair.from_seed(b"\x01" * 32)


def signer_home(tmp_path, name: str):
    (tmp_path / "pass").write_text("a long passphrase\n")
    write_encrypted_key_file(tmp_path / "validator.json", KEY, b"a long passphrase",
                             cost="test")
    return ["--chain-id", CHAIN_ID, "--state-file", str(tmp_path / "sign_state"),
            "--listen", f"unix:{tmp_path / name}", "--key-file",
            str(tmp_path / "validator.json"), "--passphrase-file", str(tmp_path / "pass")]


@pytest.mark.slow
async def test_signer_killed_and_restarted_consensus_resumes_without_node_restart(tmp_path):
    args = signer_home(tmp_path, "signer.sock")
    home = make_home(tmp_path / "node", make_genesis([KEY]), None,
                     signer_address=f"unix:{tmp_path / 'signer.sock'}",
                     signer_public_key=KEY.public_key.hex())
    with signer_process(args, tmp_path / "signer.log") as signer:
        assert signer.start() == KEY.public_key.hex()
        service = NodeService(home)
        await service.start()
        try:
            node, link = service.node, service.node.signer_client
            assert link is not None
            await wait_until(lambda: node.store.head_height >= 3)

            signer.kill()  # SIGKILL, mid-height
            await wait_until(lambda: not link.connected.is_set())
            dropped = link.dropped_count
            # The node asks for a signature meanwhile and does not get one: it signs
            # nothing by itself and, alone in its validator set, makes no block.
            await wait_until(lambda: link.dropped_count > dropped, timeout_s=30)
            stalled_at = node.store.head_height
            assert not service.failed.is_set()

            assert signer.start() == KEY.public_key.hex()  # same state file
            await wait_until(lambda: node.store.head_height >= stalled_at + 3, timeout_s=60)
            assert not service.failed.is_set() and link.connected.is_set()
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{service.rpc_url}/metrics") as response:
                metrics = await response.text()
            assert "govchain_signer_connected 1" in metrics
            assert f'govchain_signer_requests_total{{outcome="dropped"}} {link.dropped_count}' \
                in metrics
            for height in range(1, node.store.head_height + 1):
                certificate = node.store.get_certificate(height)
                assert certificate is not None and certificate.height == height
        finally:
            await service.stop()


@pytest.mark.slow
async def test_active_standby_nodes_on_one_signer_never_double_sign(tmp_path):
    genesis = make_genesis([KEY])
    async with running_signer(tmp_path, KEY) as signer:
        services = [NodeService(make_home(tmp_path / f"node{i}", genesis, None,
                                          peer_exchange=False,
                                          signer_address=f"unix:{signer.address.unix_path}",
                                          signer_public_key=KEY.public_key.hex()))
                    for i in range(2)]
        await asyncio.gather(*(s.start() for s in services))
        try:
            for service in services:
                connect_to(service, services)
            # Liveness is slower than with one node (the pair's requests collide, and a
            # refused one costs its node a vote), so the deadline is generous.
            await wait_until(lambda: min(s.node.store.head_height for s in services) >= 5,
                             timeout_s=180)
            stores = [s.node.store for s in services]
            for height in range(1, 6):
                assert stores[0].get_block(height).hash == stores[1].get_block(height).hash
            # Both nodes asked at every step; what conflicted was refused, and no node
            # saw two different votes of the validator (no evidence recorded).
            assert stores[0].list_evidence() == [] and stores[1].list_evidence() == []
            assert sum(s.node.signer_client.refused_count for s in services) > 0
        finally:
            for service in services:
                await service.stop()
