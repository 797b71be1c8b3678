"""Fixtures for node tests: a real node (LevelDB, sockets on 127.0.0.1) in the test loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.block import Block, BlockHeader
from chain.crypto import KeyPair
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.tx import Transaction
from chain.vote import NIL, CommitCertificate, Validator, ValidatorSet
from cli.service import NodeService
from node.config import NodeConfig, NodeHome, init_home
from node.node import Node, SyncedBlock
from sdk import AsyncClient

CHAIN_ID = "govchain-test"
FAST_PARAMS = ChainParams(block_interval_ms=50, empty_block_interval_ms=400,
                          timeout_propose_ms=400, timeout_vote_ms=200, timeout_delta_ms=100)
ACCOUNT_KEYS = [KeyPair.from_seed(bytes([100 + i]) * 32) for i in range(4)]
BALANCE = 10**12


def make_genesis(validator_keys: list[KeyPair], params: ChainParams = FAST_PARAMS) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=int(time.time() * 1000) - 1000,
        validator_set=ValidatorSet(tuple(Validator(k.public_key, f"ministry-{i}")
                                         for i, k in enumerate(validator_keys))),
        accounts=tuple(GenesisAccount(k.address, {"GOV": BALANCE}) for k in ACCOUNT_KEYS),
        params=params)


def make_home(path: Path, genesis: Genesis, key: KeyPair | None, *,
              peers: list[str] | None = None, **config: object) -> NodeHome:
    node_config = NodeConfig(moniker=path.name, rpc_listen="127.0.0.1:0",
                             p2p_listen="127.0.0.1:0", peers=peers or [],
                             log_level="DEBUG")
    for name, value in config.items():
        setattr(node_config, name, value)
    init_home(path, genesis.to_json(), node_config, key)
    return NodeHome.load(path)


@dataclass
class RunningNode:
    service: NodeService
    client: AsyncClient

    @property
    def node(self):
        return self.service.node


@contextlib.asynccontextmanager
async def running_node(home: NodeHome) -> AsyncIterator[RunningNode]:
    """A node service started on `home` and a client of its RPC, both closed on the way out."""
    service = NodeService(home)
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        yield RunningNode(service, client)
    finally:
        await client.close()
        await service.stop()


async def send_final(node: RunningNode, key: KeyPair, tx_type: str, fields: dict) -> dict:
    """Sign a tx with the node's next nonce for the key, submit it and return its final
    (or rejected) result."""
    account = await node.client.call("state_account", address=key.address.hex())
    tx = Transaction(CHAIN_ID, key.address, account["next_nonce"], tx_type,
                     fields).with_signature(key)
    result: dict = await node.client.submit(tx, wait="final")
    assert result["status"] in ("final", "rejected"), result
    return result


VALIDATOR_KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(7)]


async def start_network(tmp_path: Path, count: int, genesis: Genesis | None = None,
                        **config: object) -> list[RunningNode]:
    """`count` nodes on 127.0.0.1, each dialling all the others.

    The nodes hold the first `count` VALIDATOR_KEYS; `genesis` defaults to a chain
    whose validators are exactly those.

    Nodes listen on ports the OS picks, and learn each other's ports once all listen,
    so no port is chosen ahead of time (another socket could take it meanwhile).
    """
    keys = VALIDATOR_KEYS[:count]
    genesis = genesis or make_genesis(keys)
    services = []
    for i, key in enumerate(keys):
        home = make_home(tmp_path / f"node{i}", genesis, key, peer_exchange=False, **config)
        services.append(NodeService(home))
    await asyncio.gather(*(service.start() for service in services))
    for service in services:
        connect_to(service, services)
    return [RunningNode(service, AsyncClient(service.rpc_url)) for service in services]


def connect_to(service: NodeService, others: list[NodeService]) -> None:
    """Make `service` dial every other running node (e.g. after a restart)."""
    for other in others:
        if other is not service and other.network.p2p.bound_port:
            service.network.p2p.add_static_peer(f"127.0.0.1:{other.network.p2p.bound_port}")


async def stop_network(nodes: list[RunningNode]) -> None:
    for running in nodes:
        await running.client.close()
        await running.service.stop()


async def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    """Poll an async predicate until it returns a truthy value, or fail after timeout_s."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


async def driver_caught_up(node: Node, timeout_s: float = 10) -> None:
    """Return once `node`'s driver has taken every event queued before this call.

    The marker is a synced block of height 0, below any head: the driver drops it as
    soon as it reaches it, and says so.
    """
    header = BlockHeader(node.chain_id, 0, 0, 0, NIL, NIL, NIL, NIL, NIL, NIL, NIL)
    marker = Block(header, ())
    taken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    node.enqueue(SyncedBlock(marker, CommitCertificate(0, 0, marker.hash, ()), taken))
    await asyncio.wait_for(taken, timeout_s)


@pytest.fixture
async def network4(tmp_path):
    nodes = await start_network(tmp_path, 4)
    try:
        yield nodes
    finally:
        await stop_network(nodes)


@pytest.fixture
async def single_node(tmp_path):
    validator = KeyPair.from_seed(b"\x01" * 32)
    async with running_node(make_home(tmp_path / "node0", make_genesis([validator]),
                                      validator)) as running:
        yield running
