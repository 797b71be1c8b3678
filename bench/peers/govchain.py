"""govchain's side of the side-by-side benchmark: nodes started with bench.common, the
same transfers as units for the shared load driver, and a follower of final blocks.

Two ways to submit: `tx_submit`, one transaction per request and one request in
flight per sender (the peers' shape), and `tx_submit_batch`, batches with a few in
flight (how an integrator with volume submits).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    NodeProcess,
    init_node,
    make_genesis,
    make_keys,
    wait_ready,
)
from bench.peers.load import Unit
from chain.crypto import KeyPair
from chain.genesis import ChainParams
from chain.tx import Transaction
from devnet.ports import get_free_port
from sdk import AsyncClient, RpcClientError

CHAIN_ID = "govchain-bench"
RATE_LIMIT_OFF = {"rpc_rate_limit_per_s": 0.0}
"""The load generator is one client address standing for many integrators; the
per-address RPC rate limit (500 requests/s by default) would refuse most of the
one-transaction-per-request line, whose point is the node's own cost per request."""


def single_units(txs: list[Transaction]) -> list[Unit]:
    return [Unit((tx.hash.hex(),), tx.encoded.hex()) for tx in txs]


def batch_units(txs: list[Transaction], batch: int) -> list[Unit]:
    return [Unit(tuple(tx.hash.hex() for tx in part), [tx.encoded.hex() for tx in part])
            for part in (txs[i:i + batch] for i in range(0, len(txs), batch))]


class GovchainNetwork:
    """`count` validator nodes on 127.0.0.1 with homes in a new folder under `parent`."""

    def __init__(self, count: int, senders: list[KeyPair], log_level: str,
                 parent: Path) -> None:
        validators = make_keys(count, salt=1)
        genesis = make_genesis(CHAIN_ID, validators, senders, ChainParams())
        self.workdir = Path(tempfile.mkdtemp(prefix="govchain-", dir=parent))
        p2p_ports = [get_free_port() for _ in range(count)]
        self.nodes: list[NodeProcess] = [
            init_node(self.workdir, f"node{i}", genesis, validators[i],
                      [f"127.0.0.1:{p}" for j, p in enumerate(p2p_ports) if j != i],
                      p2p_ports[i], log_level, RATE_LIMIT_OFF) for i in range(count)]
        self.clients = [AsyncClient(node.rpc_url, timeout_s=60) for node in self.nodes]

    async def start(self, deadline_s: float = 60) -> None:
        for node in self.nodes:
            node.start()
        await wait_ready(self.clients, deadline_s)

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        for node in self.nodes:
            node.stop()

    def peak_rss_mb(self) -> float:
        """The largest peak RSS among the nodes."""
        return max(node.peak_rss_mb() for node in self.nodes)

    def make_send(self, method: str) -> Any:
        """Lane i submits to node i mod n."""
        async def send(lane: int, unit: Unit) -> list[str]:
            client = self.clients[lane % len(self.clients)]
            try:
                if method == "tx_submit":
                    await client.call("tx_submit", tx=unit.payload)
                    return []
                answers = await client.call("tx_submit_batch", txs=unit.payload)
            except RpcClientError as e:
                return [str(e)] * len(unit.hashes)
            return [str(a["error"]) for a in answers if "error" in a]
        return send


class GovchainFollower:
    """Reads final blocks one height at a time from the first node (chain_block)."""

    def __init__(self, client: AsyncClient, height: int, max_blocks: int = 100) -> None:
        self.client = client
        self.height = height
        self.max_blocks = max_blocks

    @classmethod
    async def create(cls, client: AsyncClient) -> GovchainFollower:
        return cls(client, int((await client.call("node_status"))["height"]))

    async def poll(self) -> list[list[str]]:
        blocks: list[list[str]] = []
        while len(blocks) < self.max_blocks:
            try:
                block = await self.client.call("chain_block", height=self.height + 1)
            except RpcClientError:
                break
            blocks.append(list(block["txs"]))
            self.height += 1
        return blocks
