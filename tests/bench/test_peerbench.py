"""The side-by-side benchmark's parts: lanes, the load driver against a scripted chain,
the peer configuration, govchain's side against real nodes, and a peer chain when its
npm packages are already installed. Nothing here asserts on time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import make_keys, presign_transfers
from bench.peers import eth
from bench.peers.govchain import (
    CHAIN_ID,
    GovchainFollower,
    GovchainNetwork,
    batch_units,
    single_units,
)
from bench.peers.load import Measurement, Unit, measure, median_summary, split_lanes
from devnet.ports import get_free_port


def make_units(count: int) -> list[Unit]:
    return [Unit((f"{i:064x}",), i) for i in range(count)]


class ScriptedChain:
    """Accepts every payload except those in `refuse`; each poll puts what was accepted
    since the last poll into one block."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.refuse = refuse
        self.pending: list[str] = []
        self.in_flight: dict[int, int] = {}
        self.most_in_flight = 0

    async def send(self, lane: int, unit: Unit) -> list[str]:
        self.in_flight[lane] = self.in_flight.get(lane, 0) + 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight[lane])
        await asyncio.sleep(0)
        self.in_flight[lane] -= 1
        if unit.payload in self.refuse:
            return [f"refused {unit.payload}"]
        self.pending += unit.hashes
        return []

    async def poll(self) -> list[list[str]]:
        block, self.pending = self.pending, []
        return [block] if block else []


def test_split_lanes_keeps_each_senders_nonce_order() -> None:
    senders = make_keys(4, salt=9)
    txs = presign_transfers("lanes", senders, 10)
    lanes = split_lanes(single_units(txs), 4)
    by_hash = {tx.hash.hex(): tx for tx in txs}
    for lane in lanes:
        lane_txs = [by_hash[u.hashes[0]] for u in lane]
        assert len({tx.sender for tx in lane_txs}) == 1
        assert [tx.nonce for tx in lane_txs] == list(range(len(lane_txs)))
    assert sum(len(lane) for lane in lanes) == 10


def test_batch_units_cover_every_transaction_once_in_order() -> None:
    txs = presign_transfers("batches", make_keys(3, salt=9), 11)
    units = batch_units(txs, 4)
    assert [len(u.hashes) for u in units] == [4, 4, 3]
    assert [h for u in units for h in u.hashes] == [tx.hash.hex() for tx in txs]
    assert units[0].payload == [tx.encoded.hex() for tx in txs[:4]]


async def test_measure_sees_every_accepted_transaction_final() -> None:
    chain = ScriptedChain()
    result = await measure("scripted", split_lanes(make_units(50), 5), chain.send, chain,
                           max_seconds=10, poll_s=0.001)
    assert (result.offered, result.final, result.refused) == (50, 50, 0)
    assert not result.timed_out
    assert chain.most_in_flight == 1
    assert len(result.latencies) == 50 and min(result.latencies) >= 0
    assert result.blocks >= 1 and result.tx_per_s > 0


async def test_measure_counts_refusals_and_does_not_wait_for_them() -> None:
    chain = ScriptedChain(refuse=frozenset({3, 7}))
    result = await measure("scripted", split_lanes(make_units(20), 4), chain.send, chain,
                           max_seconds=10, poll_s=0.001)
    assert (result.final, result.refused) == (18, 2)
    assert result.first_refusal is not None and result.first_refusal.startswith("refused")
    assert not result.timed_out


async def test_measure_stops_at_its_deadline_when_blocks_never_come() -> None:
    class Silent:
        async def poll(self) -> list[list[str]]:
            return []

    chain = ScriptedChain()
    result = await measure("silent", split_lanes(make_units(10), 2), chain.send, Silent(),
                           max_seconds=0.3, poll_s=0.01)
    assert result.timed_out and result.final == 0


def test_median_summary_takes_each_figure_on_its_own() -> None:
    runs = []
    for final, seconds, latency in ((100, 1.0, 0.5), (100, 2.0, 0.1), (100, 4.0, 0.3)):
        m = Measurement("x", offered=100, final=final, seconds=seconds)
        m.latencies = [latency] * 10
        runs.append(m)
    summary = median_summary(runs)
    assert summary["tx_per_s"] == 50.0
    assert summary["p50_s"] == 0.3
    assert summary["runs"] == 3 and not summary["timed_out"]


def test_hardhat_config_funds_the_senders_and_sets_one_second_blocks() -> None:
    keys = ("0x" + "11" * 32, "0x" + "22" * 32)
    config = eth.hardhat_config(eth.PEERS["hardhat"], keys)
    assert "chainId: 31337" in config and "blockGasLimit: 1000000000" in config
    assert "mining: { auto: false, interval: 1000 }" in config
    assert all(f'privateKey: "{k}"' in config for k in keys)
    assert "auto: true" in eth.hardhat_config(eth.PEERS["hardhat-automine"], keys)


def test_ganache_command_listens_on_loopback_with_funded_senders(tmp_path: Path) -> None:
    command = eth.peer_command(eth.PEERS["ganache"], ("0xaa", "0xbb"), 8999, tmp_path)
    assert command[command.index("--server.host") + 1] == "127.0.0.1"
    assert command[command.index("--chain.chainId") + 1] == "1337"
    assert f"--wallet.accounts=0xbb,{eth.SENDER_BALANCE_WEI}" in command


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tx_submit", "tx_submit_batch"])
async def test_govchain_side_makes_every_transfer_final(tmp_path: Path, method: str) -> None:
    senders = make_keys(8, salt=2)
    txs = presign_transfers(CHAIN_ID, senders, 200)
    units = single_units(txs) if method == "tx_submit" else batch_units(txs, 50)
    network = GovchainNetwork(1, senders, "WARNING", tmp_path)
    try:
        await network.start()
        follower = await GovchainFollower.create(network.clients[0])
        result = await measure(method, split_lanes(units, 8 if method == "tx_submit" else 2),
                               network.make_send(method), follower, max_seconds=60)
    finally:
        await network.stop()
    assert (result.final, result.refused, result.timed_out) == (200, 0, False)
    assert all(node.process and node.process.poll() is not None for node in network.nodes)


def eth_python_or_skip() -> str:
    venv_python = eth.CACHE / "venv" / "bin" / "python"
    for python in (sys.executable, str(venv_python)):
        if Path(python).exists() and subprocess.run(
                [python, "-c", "import eth_account"], capture_output=True).returncode == 0:
            return python
    pytest.skip("eth-account is not installed (bench_peers.py installs it on first use)")


@pytest.mark.slow
async def test_ganache_mines_every_presigned_transfer(tmp_path: Path) -> None:
    if not eth.package_version("ganache"):
        pytest.skip("ganache is not installed (bench_peers.py installs it on first use)")
    spec = eth.PEERS["ganache"]
    load = eth.presign(eth_python_or_skip(), spec.chain_id, 64, 4, tmp_path)
    peer = eth.PeerProcess(spec, load.sender_keys, get_free_port(), tmp_path)
    rpc = eth.EthRpc(peer.rpc_url)
    try:
        peer.start()
        await eth.wait_ready(rpc, spec.chain_id, 120)
        follower = await eth.EthFollower.create(rpc)
        result = await measure("ganache", split_lanes(load.units, 4), eth.make_send(rpc),
                               follower, max_seconds=60)
        rss = peer.peak_rss_mb()
    finally:
        await rpc.close()
        peer.stop()
    assert (result.final, result.refused, result.timed_out) == (64, 0, False)
    assert rss > 0
    assert peer.process is not None and peer.process.poll() is not None


async def test_eth_follower_waits_for_blocks_the_peer_cannot_serve_yet() -> None:
    # A peer can report head 3 while block 3 still reads as null: the follower takes
    # block 2, and block 3 on a later poll (seen with ganache under load).
    class FakeRpc:
        def __init__(self) -> None:
            self.blocks: dict[int, dict | None] = {2: {"transactions": ["0x" + "aa" * 32]},
                                                   3: None}

        async def call(self, method: str, params: list | None = None) -> str:
            assert method == "eth_blockNumber"
            return hex(3)

        async def batch(self, calls: list) -> list:
            return [self.blocks[int(params[0], 16)] for _, params in calls]

    rpc = FakeRpc()
    follower = eth.EthFollower(rpc, height=1)  # type: ignore[arg-type]
    assert await follower.poll() == [["aa" * 32]]
    assert follower.height == 2
    rpc.blocks[3] = {"transactions": []}
    assert await follower.poll() == [[]]
    assert follower.height == 3
    assert await follower.poll() == []
