"""How fast a new node syncs history from a peer: certificates verified, signatures
verified, every block re-executed and committed (node/network.py and node/node.py).

Builds a chain of BLOCKS blocks of TXS transfers in a validator's home (as
bench_replay.py does), starts that validator as a process, then starts a fresh full
node whose only peer is the validator, and times it from its first answer on the RPC
until its head reaches the chain's last built block. Both processes on 127.0.0.1;
bounded by `--max-seconds`.

    python bench/bench_sync.py --blocks 10 --txs 5000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_replay import build_chain
from bench.common import NodeProcess, get_free_port, init_node, wait_ready
from chain.genesis import Genesis
from sdk import AsyncClient


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="govchain-sync-"))
    source_home = workdir / "source"
    started = time.monotonic()
    total = build_chain(source_home, args.blocks, args.txs, args.senders)
    print(f"built {args.blocks} blocks, {total} transfers in {time.monotonic() - started:.1f} s"
          f" ({workdir})", flush=True)
    genesis = Genesis.from_json((source_home / "genesis.json").read_text())
    source_p2p, source_rpc = get_free_port(), get_free_port()
    source = NodeProcess("source", source_home, f"http://127.0.0.1:{source_rpc}", source_p2p,
                         run_args=("--rpc-listen", f"127.0.0.1:{source_rpc}", "--p2p-listen",
                                   f"127.0.0.1:{source_p2p}", "--log-level", "WARNING"))
    follower = init_node(workdir, "follower", genesis, None, [f"127.0.0.1:{source_p2p}"],
                         get_free_port())
    source.start()
    clients = [AsyncClient(source.rpc_url, timeout_s=30)]
    try:
        await wait_ready(clients, 30)
        follower.start()
        clients.append(AsyncClient(follower.rpc_url, timeout_s=30))
        await wait_ready(clients[1:], 30)
        t0 = time.monotonic()
        height = 0
        while height < args.blocks and time.monotonic() - t0 < args.max_seconds:
            height = (await clients[1].call("node_status"))["height"]
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - t0
        synced = min(height, args.blocks) * args.txs
        print(f"sync: {min(height, args.blocks)} of {args.blocks} blocks, {synced} txs in "
              f"{seconds:.2f} s = {synced / seconds:,.0f} tx/s"
              + ("" if height >= args.blocks else "  (stopped at --max-seconds)"))
        print(f"peak RSS follower  {follower.peak_rss_mb():.0f} MiB")
    finally:
        for client in clients:
            await client.close()
        follower.stop()
        source.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--txs", type=int, default=5000, help="transfers per block")
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
