"""Fixtures for node tests: a real node (LevelDB, sockets on 127.0.0.1) in the test loop."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.vote import Validator, ValidatorSet
from node.client import AsyncClient
from node.config import NodeConfig, NodeHome, init_home
from node.runner import NodeService

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


@pytest.fixture
async def single_node(tmp_path):
    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path / "node0", make_genesis([validator]), validator)
    service = NodeService(home)
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        yield RunningNode(service, client)
    finally:
        await client.close()
        await service.stop()
