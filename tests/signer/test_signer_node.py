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
from node.signer.protocol import SignStep
from node.signer.server import SignerServer
from node.signer.state import SignGuard
from tests.node.conftest import connect_to, make_genesis, make_home
from tests.signer.kit import (
    CHAIN_ID,
    KeyPairBackend,
    running_signer,
    signer_process,
    wait_until,
)

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
            # Every precommit that left the signer is covered by its record on disk.
            head = node.store.head_height
            certificate = node.store.get_certificate(head)
            guard = SignGuard(tmp_path / "sign_state", CHAIN_ID)
            assert guard.last is not None
            assert guard.last.request.position >= (head, certificate.round,
                                                   SignStep.PRECOMMIT)
            guard.close()
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


@pytest.mark.slow
async def test_network_goes_on_while_one_validators_signer_is_away(tmp_path):
    keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    genesis = make_genesis(keys)
    remote_key = keys[3]
    state = tmp_path / "remote.state"

    async with running_signer(tmp_path, remote_key, "remote") as signer:
        address = signer.address
        services = [NodeService(make_home(tmp_path / f"node{i}", genesis, key,
                                          peer_exchange=False)) for i, key in
                    enumerate(keys[:3])]
        services.append(NodeService(make_home(
            tmp_path / "node3", genesis, None, peer_exchange=False,
            signer_address=f"unix:{address.unix_path}",
            signer_public_key=remote_key.public_key.hex())))
        await asyncio.gather(*(s.start() for s in services))
        remote, link = services[3].node, services[3].node.signer_client
        assert link is not None
        try:
            for service in services:
                connect_to(service, services)
            await wait_until(lambda: link.signed_count > 0 and remote.store.head_height >= 2,
                             timeout_s=60)
            await signer.stop()
            await wait_until(lambda: not link.connected.is_set())
            away_from = remote.store.head_height
            # The other three finalize without it, and the remote validator follows.
            await wait_until(lambda: remote.store.head_height >= away_from + 3, timeout_s=60)
            signed_before = link.signed_count
            back = SignerServer(KeyPairBackend(remote_key), SignGuard(state, CHAIN_ID),
                                address)
            await back.start()
            try:
                await wait_until(link.connected.is_set)
                returned_at = remote.store.head_height
                # It votes again at the heights it has reached (its precommits may come
                # after the quorum's, so certificates need not name it).
                await wait_until(lambda: back.signed_count >= 4
                                 and remote.store.head_height >= returned_at + 2,
                                 timeout_s=60)
                assert back.guard.last is not None
                assert back.guard.last.request.height > away_from
                assert link.signed_count > signed_before and link.refused_count == 0
            finally:
                await back.stop()
            assert not any(s.failed.is_set() for s in services)
        finally:
            for service in services:
                await service.stop()
