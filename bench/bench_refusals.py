"""Memory of a node that refuses a flood of validly signed transfers from unknown senders.

Each transfer is from its own account that does not exist (refused `unknown_account`:
it costs the sender nothing). One validator runs as a separate process; the flood goes
over RPC (`tx_submit_batch` requests) or over p2p (TXS frames from an outside peer that
completes the handshake, tests/node/peer_kit.py), each to a fresh node. Prints the
node's RSS (VmRSS of /proc/PID/status) before, along the way and after. A flooding
peer is banned in time (docs/p2p.md); the benchmark then connects again with a new key.

    python bench/bench_refusals.py                       # 200,000 over RPC, then over p2p
    python bench/bench_refusals.py --txs 60000 --max-rejections 5000   # memory full early
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import NodeProcess, get_free_port, init_node, make_genesis, make_keys, wait_ready
from chain.crypto import KeyPair
from chain.genesis import ChainParams
from chain.tx import Transaction, make_transaction
from p2p.frames import MessageType
from sdk import AsyncClient
from tests.node.peer_kit import RawPeer

CHAIN_ID = "govchain-bench"
SAMPLES = 10
"""RSS readings along the flood."""


def stranger_transfers(count: int, to: bytes) -> list[Transaction]:
    """`count` signed transfers, each from an account that does not exist."""
    txs = [make_transaction(CHAIN_ID, key, 0, "transfer", {"to": to, "asset": "GOV", "amount": 1})
           for key in make_keys(count, salt=9)]
    for tx in txs:
        _ = tx.encoded
    return txs


async def rejected(client: AsyncClient, tx: Transaction) -> bool:
    status = await client.call("tx_get", hash=tx.hash.hex())
    return bool(status["status"] == "rejected")


async def count_refusals(rpc_url: str) -> dict[str, int]:
    """govchain_tx_rejected_total by code, from /metrics."""
    async with aiohttp.ClientSession() as session, session.get(rpc_url + "/metrics") as r:
        text = await r.text()
    counts = {}
    for line in text.splitlines():
        if line.startswith("govchain_tx_rejected_total{"):
            code = line.split('code="', 1)[1].split('"', 1)[0]
            counts[code] = int(float(line.rsplit(" ", 1)[1]))
    return counts


async def flood_rpc(node: NodeProcess, client: AsyncClient, txs: list[Transaction],
                    batch: int, on_progress) -> None:
    for i in range(0, len(txs), batch):
        answers = await client.submit_batch(txs[i:i + batch])
        assert all("error" in a for a in answers), "a stranger's transfer was admitted"
        await on_progress(i + batch)


class Flooder:
    """An outside peer sending TXS frames; a new key whenever the node banned the last."""

    def __init__(self, node: NodeProcess, genesis_hash: bytes) -> None:
        self.node = node
        self.genesis_hash = genesis_hash
        self.peer: RawPeer | None = None
        self.keys_used = 0

    async def send(self, payloads: list[bytes]) -> None:
        for _ in range(20):
            if self.peer is None or self.peer.closed:
                await self.close()
                self.peer = await RawPeer.connect(self.node.p2p_port, self.genesis_hash,
                                                  KeyPair.generate(), chain_id=CHAIN_ID)
                self.keys_used += 1
            try:
                await self.peer.send_frame(MessageType.TXS, payloads)
                return
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                await self.close()
        raise RuntimeError("could not deliver a frame in 20 connections")

    async def close(self) -> None:
        if self.peer is not None:
            with contextlib.suppress(Exception):
                await self.peer.close()
            self.peer = None


async def flood_p2p(flooder: Flooder, client: AsyncClient, txs: list[Transaction],
                    frame: int, on_progress) -> None:
    for i in range(0, len(txs), frame):
        part = txs[i:i + frame]
        await flooder.send([tx.encoded for tx in part])
        # The peer's frames wait in its lane: follow the node, not the socket.
        if (i // frame) % 8 == 7 or i + frame >= len(txs):
            await wait_processed(flooder, client, part)
            await on_progress(i + frame)


async def wait_processed(flooder: Flooder, client: AsyncClient, part: list[Transaction]
                         ) -> None:
    """Until the node has refused the last transaction of `part` (sent again, by a new
    peer, if the one that carried it was banned before the node read it)."""
    deadline = time.monotonic() + 120
    while not await rejected(client, part[-1]):
        if time.monotonic() > deadline:
            raise RuntimeError("the node did not process the flood within 120 s")
        if flooder.peer is None or flooder.peer.closed:
            await flooder.send([part[-1].encoded])
        await asyncio.sleep(0.1)


async def run_one(via: str, args: argparse.Namespace, txs: list[Transaction]) -> None:
    validators = make_keys(2 if args.stalled else 1, salt=1)
    funded = make_keys(1, salt=2)
    genesis = make_genesis(CHAIN_ID, validators, funded, ChainParams())
    workdir = Path(tempfile.mkdtemp(prefix="govchain-bench-refusals-"))
    settings: dict[str, object] = {"rpc_rate_limit_per_s": 0.0}
    if args.max_rejections is not None:
        settings["mempool_max_rejections"] = args.max_rejections
    node = init_node(workdir, "node0", genesis, validators[0], [], get_free_port(),
                     settings=settings)
    node.start()
    client = AsyncClient(node.rpc_url, timeout_s=120)
    flooder = Flooder(node, genesis.hash)
    try:
        await wait_ready([client], 30)
        await asyncio.sleep(2)  # the verifier's workers start, the first blocks commit
        start = node.memory_mib()["VmRSS"]
        print(f"\n== {len(txs):,} unknown-sender transfers over {via}"
              f"{' (no quorum: nothing commits)' if args.stalled else ''}")
        print(f"RSS at start       {start:.0f} MiB")
        step = max(1, len(txs) // SAMPLES)
        marks = iter(range(step, len(txs) + step, step))
        mark = next(marks)
        began = time.monotonic()

        async def on_progress(sent: int) -> None:
            nonlocal mark
            while sent >= mark:
                print(f"  {min(mark, len(txs)):>9,} refused   RSS "
                      f"{node.memory_mib()['VmRSS']:.0f} MiB", flush=True)
                mark = next(marks, 10**12)

        if via == "rpc":
            await flood_rpc(node, client, txs, args.batch, on_progress)
        else:
            await flood_p2p(flooder, client, txs, args.frame, on_progress)
        seconds = time.monotonic() - began
        rss = node.memory_mib()
        refusals = await count_refusals(node.rpc_url)
        status = await client.call("node_status")
        print(f"RSS after          {rss['VmRSS']:.0f} MiB (peak {rss['VmHWM']:.0f} MiB), "
              f"+{rss['VmRSS'] - start:.0f} MiB")
        print(f"refusals counted   {refusals}  in {seconds:.1f} s "
              f"({len(txs) / seconds:,.0f}/s); height {status['height']}, "
              f"mempool {status['mempool_size']}")
        if via == "p2p":
            print(f"peer keys used     {flooder.keys_used} (each banned one replaced)")
    finally:
        await flooder.close()
        await client.close()
        node.stop()


async def run(args: argparse.Namespace) -> None:
    to = make_keys(1, salt=2)[0].address
    print(f"signing {args.txs:,} transfers from as many unknown accounts ...", flush=True)
    txs = stranger_transfers(args.txs, to)
    for via in (["rpc", "p2p"] if args.via == "both" else [args.via]):
        await run_one(via, args, txs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, default=200_000, help="transfers to send")
    parser.add_argument("--via", choices=("rpc", "p2p", "both"), default="both")
    parser.add_argument("--batch", type=int, default=1000, help="transactions per RPC call")
    parser.add_argument("--frame", type=int, default=1024, help="transactions per TXS frame")
    parser.add_argument("--max-rejections", type=int, default=None,
                        help="set the node's mempool_max_rejections (default 100,000)")
    parser.add_argument("--stalled", action="store_true",
                        help="a chain of two validators, one never started: no block commits")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
