"""Throughput and latency of a govchain network on this machine.

Pre-signs N transfers from many senders, submits them over JSON-RPC in batches
(tx_submit_batch) with a bounded number of batches in flight, follows final blocks,
and prints submitted/s, final tx/s, submit-to-final latency p50/p99, blocks/s and
each node's peak RSS. Bounded in count and time; only 127.0.0.1.

    python bench/bench_node.py --nodes 1 --txs 30000
    python bench/bench_node.py --nodes 4 --txs 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    dir_size_bytes,
    get_free_port,
    init_node,
    make_genesis,
    make_keys,
    percentile,
    presign_transfers,
    wait_ready,
)
from chain.genesis import ChainParams
from sdk import AsyncClient, RpcClientError


async def run(args: argparse.Namespace) -> None:
    chain_id = "govchain-bench"
    validators = make_keys(args.nodes, salt=1)
    senders = make_keys(args.senders, salt=2)
    params = ChainParams(block_interval_ms=args.block_interval_ms, max_block_txs=args.max_block_txs)
    genesis = make_genesis(chain_id, validators, senders, params)
    print(f"pre-signing {args.txs} transfers from {args.senders} senders ...", flush=True)
    txs = presign_transfers(chain_id, senders, args.txs)
    workdir = Path(tempfile.mkdtemp(prefix="govchain-bench-"))
    p2p_ports = [get_free_port() for _ in range(args.nodes)]
    nodes = [init_node(workdir, f"node{i}", genesis, validators[i],
                       [f"127.0.0.1:{p}" for j, p in enumerate(p2p_ports) if j != i],
                       p2p_ports[i], args.log_level) for i in range(args.nodes)]
    for node in nodes:
        node.start()
    clients = [AsyncClient(node.rpc_url, timeout_s=60) for node in nodes]
    print(f"node homes and logs in {workdir}", flush=True)
    try:
        await wait_ready(clients, 30)
        submitted_at: dict[str, float] = {}
        final_at: dict[str, float] = {}
        start_height = (await clients[0].call("node_status"))["height"]
        done = asyncio.Event()
        block_times: list[float] = []
        decided_rounds: list[int] = []

        async def follow() -> None:
            height = start_height + 1
            deadline = time.monotonic() + args.max_seconds
            try:
                while len(final_at) < len(txs) and time.monotonic() < deadline:
                    try:
                        block = await clients[0].call("chain_block", height=height)
                    except RpcClientError:
                        await asyncio.sleep(0.02)
                        continue
                    now = time.monotonic()
                    block_times.append(now)
                    decided_rounds.append(block["certificate"]["round"])
                    for tx_hash in block["txs"]:
                        final_at.setdefault(tx_hash, now)
                    height += 1
            finally:
                done.set()  # also when following failed: `await follower` re-raises it

        async def submit() -> None:
            batches = [txs[i:i + args.batch] for i in range(0, len(txs), args.batch)]
            semaphore = asyncio.Semaphore(args.in_flight)

            async def send(index: int, batch: list) -> None:
                if args.rate:
                    # Open loop: batch i leaves at i * batch / rate seconds.
                    await asyncio.sleep(max(0.0, t0 + index * args.batch / args.rate
                                            - time.monotonic()))
                async with semaphore:
                    client = clients[index % len(clients)]
                    now = time.monotonic()
                    for tx in batch:
                        submitted_at[tx.hash.hex()] = now
                    answers = await client.submit_batch(batch)
                    errors = [a for a in answers if "error" in a]
                    if errors:
                        print(f"batch {index}: {len(errors)} refused, first: {errors[0]}",
                              flush=True)

            await asyncio.gather(*(send(i, b) for i, b in enumerate(batches)))

        disk_before = dir_size_bytes(nodes[0].home / "data")
        t0 = time.monotonic()
        follower = asyncio.create_task(follow())
        await submit()
        t_submitted = time.monotonic()
        await done.wait()
        await follower
        t_end = max(final_at.values()) if final_at else time.monotonic()
        latencies = [final_at[h] - submitted_at[h] for h in final_at if h in submitted_at]
        blocks = len(block_times)
        print(f"nodes={args.nodes} txs={len(txs)} batch={args.batch} in_flight={args.in_flight}"
              f" rate={args.rate or 'max'}")
        print(f"submitted/s        {len(txs) / (t_submitted - t0):,.0f}")
        print(f"final tx/s         {len(final_at) / (t_end - t0):,.0f}  "
              f"({len(final_at)} final in {t_end - t0:.2f} s)")
        print(f"latency p50        {percentile(latencies, 0.50):.3f} s")
        print(f"latency p99        {percentile(latencies, 0.99):.3f} s")
        print(f"blocks             {blocks} ({blocks / max(t_end - t0, 1e-9):.1f}/s, "
              f"{len(final_at) / max(blocks, 1):.0f} tx/block)")
        late = [r for r in decided_rounds if r > 0]
        print(f"past round 0       {len(late)} blocks (max round {max(decided_rounds, default=0)})")
        for node in nodes:
            print(f"peak RSS {node.name}     {node.peak_rss_mb():.0f} MiB")
        nodes[0].stop()  # closes its database: logs and tables are all on disk
        disk = dir_size_bytes(nodes[0].home / "data") - disk_before
        print(f"disk node0         {disk / 2**20:.1f} MiB more, "
              f"{disk / max(len(final_at), 1):.0f} bytes per final transfer")
    finally:
        for client in clients:
            await client.close()
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--txs", type=int, default=30000)
    parser.add_argument("--senders", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0,
                        help="offered load in tx/s (open loop); 0 = as fast as possible")
    parser.add_argument("--block-interval-ms", type=int, default=200)
    parser.add_argument("--max-block-txs", type=int, default=10000)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--log-level", default="WARNING", help="nodes' log level")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
