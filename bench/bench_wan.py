"""Finality and throughput of a devnet whose validators talk over a shaped WAN.

Starts a devnet (`govchain devnet up`, validators behind the link proxy), shapes every
link with `devnet link wan` (by default: each direction 20-80 ms with 10 ms of jitter,
1 % of TCP segments lost, node0 <-> node3 at 300 ms each way), offers pre-signed
transfers at a set rate for a bounded time over JSON-RPC (round-robin over the nodes'
RPC, which is not shaped: each ministry's systems talk to their own node), follows final
blocks on one node, and prints final tx/s, submit-to-final latency p50/p99, the
interval between final blocks p50/p99, rounds past 0, and the segments the proxy lost.
With `--full-nodes K` the devnet has K public full nodes in front of the validators
(each 1 ms from its own validator, as far from the others as its validator is): the
load goes to the full nodes' RPC only and finality is measured at a full node.

    python bench/bench_wan.py                                   # the profile above, 500 tx/s, 60 s
    python bench/bench_wan.py --min-delay 25ms --max-delay 25ms --jitter 0ms --no-slow
                                                                # a 50 ms round trip, 1 % loss
    python bench/bench_wan.py --clear                           # the same load, links clear
    python bench/bench_wan.py --far-nodes 2                     # every quorum crosses 300 ms
    python bench/bench_wan.py --full-nodes 2                    # load and finality at full nodes
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, presign_transfers
from chain.crypto import KeyPair
from chain.tx import Transaction
from devnet import network
from devnet.manifest import Manifest, has_manifest
from devnet.shaping import make_wan_profile, parse_duration_ms, parse_loss
from sdk import AsyncClient, RpcClientError


def report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def start_devnet(args: argparse.Namespace, root: Path) -> Manifest:
    params = {"block_interval_ms": args.block_interval_ms, "empty_block_interval_ms": 1000,
              **json.loads(args.params)}
    manifest = network.up(network.UpOptions(devnet_dir=root, nodes=args.nodes, base_port=0,
                                            accounts=args.senders, params=params,
                                            full_nodes=args.full_nodes), report)
    if args.clear:
        return manifest
    names = [node.name for node in manifest.nodes]
    validators = [node.name for node in manifest.nodes if node.validator]
    sites = network.get_sites(manifest)
    slow = None if args.no_slow else (validators[0], validators[-1])
    profile = make_wan_profile(names, seed=args.seed, min_delay_ms=args.min_delay,
                               max_delay_ms=args.max_delay, jitter_ms=args.jitter,
                               loss=args.loss, slow_pair=slow, slow_delay_ms=args.slow_delay,
                               sites=sites, near_delay_ms=args.near_delay)
    linked = set(network.get_shape_keys(manifest, "all", "all", both=False))
    far = set(validators[len(validators) - args.far_nodes:]) if args.far_nodes else set()

    def is_far(src: str, dst: str) -> bool:
        return sites[src] != sites[dst] and bool(far & {sites[src], sites[dst]})

    profile = [(key, replace(shape, delay_ms=args.slow_delay) if is_far(*key) else shape)
               for key, shape in profile if key in linked]
    network.set_link_shapes(root, lambda _m, _c: profile, seed=args.seed)
    for (src, dst), shape in profile:
        report(f"  {src}->{dst}: {shape.describe()}")
    return manifest


async def offer_load(args: argparse.Namespace, clients: list[AsyncClient],
                     txs: list[Transaction], submitted_at: dict[str, float]) -> None:
    """Open loop: batch i leaves at i * batch / rate seconds, at most `in_flight` at once."""
    semaphore = asyncio.Semaphore(args.in_flight)
    batches = [txs[i:i + args.batch] for i in range(0, len(txs), args.batch)]
    t0 = time.monotonic()

    async def send(index: int, batch: list[Transaction]) -> None:
        await asyncio.sleep(max(0.0, t0 + index * args.batch / args.rate - time.monotonic()))
        async with semaphore:
            now = time.monotonic()
            for tx in batch:
                submitted_at[tx.hash.hex()] = now
            answers = await clients[index % len(clients)].submit_batch(batch)
            refused = [a for a in answers if "error" in a]
            if refused:
                report(f"batch {index}: {len(refused)} refused, first: {refused[0]}")

    await asyncio.gather(*(send(i, b) for i, b in enumerate(batches)))


async def follow_blocks(client: AsyncClient, start_height: int, wanted: int, deadline: float,
                        final_at: dict[str, float], block_times: list[float],
                        rounds: list[int]) -> None:
    height = start_height + 1
    while len(final_at) < wanted and time.monotonic() < deadline:
        try:
            block = await client.call("chain_block", height=height)
        except RpcClientError:
            await asyncio.sleep(0.02)
            continue
        now = time.monotonic()
        block_times.append(now)
        rounds.append(block["certificate"]["round"])
        for tx_hash in block["txs"]:
            final_at.setdefault(tx_hash, now)
        height += 1


async def measure(args: argparse.Namespace, manifest: Manifest) -> None:
    senders = [KeyPair.from_seed(bytes.fromhex(a.secret_key)) for a in manifest.accounts]
    count = int(args.rate * args.seconds)
    report(f"pre-signing {count} transfers from {len(senders)} senders ...")
    txs = presign_transfers(manifest.chain_id, senders, count)
    # Each ministry's systems talk to their own node; behind full nodes, to those only.
    entries = [node for node in manifest.nodes if node.fronts] or manifest.nodes
    clients = [AsyncClient(node.rpc_url, timeout_s=60) for node in entries]
    follower = clients[1 % len(clients)]
    report(f"load to {', '.join(n.name for n in entries)}; finality measured at "
           f"{entries[1 % len(entries)].name}")
    try:
        start_height = (await follower.call("node_status"))["finalized_height"]
        submitted_at: dict[str, float] = {}
        final_at: dict[str, float] = {}
        block_times: list[float] = []
        rounds: list[int] = []
        t0 = time.monotonic()
        following = asyncio.create_task(follow_blocks(
            follower, start_height, count, t0 + args.seconds + args.drain_seconds, final_at,
            block_times, rounds))
        await offer_load(args, clients, txs, submitted_at)
        await following
    finally:
        for client in clients:
            await client.close()
    print_figures(args, manifest, t0, submitted_at, final_at, block_times, rounds)


def print_figures(args: argparse.Namespace, manifest: Manifest, t0: float,
                  submitted_at: dict[str, float], final_at: dict[str, float],
                  block_times: list[float], rounds: list[int]) -> None:
    latencies = [final_at[h] - submitted_at[h] for h in final_at if h in submitted_at]
    t_end = max(final_at.values()) if final_at else time.monotonic()
    intervals = [b - a for a, b in itertools.pairwise(block_times)]
    stats = network.read_direction_stats(Path(manifest.dir))
    lost = sum(s["lost_segments"] for s in stats.values())
    delivered = sum(s["delivered_bytes"] for s in stats.values())
    profile = "clear links" if args.clear else (
        f"{args.min_delay:g}-{args.max_delay:g} ms each way, jitter {args.jitter:g} ms, "
        f"loss {args.loss:.1%}" + ("" if args.no_slow else
                                   f", node0<->node{args.nodes - 1} "
                                   f"{args.slow_delay:g} ms")
        + (f", full nodes {args.near_delay:g} ms from their validator" if args.full_nodes
           else "")
        + (f", the last {args.far_nodes} nodes {args.slow_delay:g} ms from all"
           if args.far_nodes else ""))
    entries = [node.name for node in manifest.nodes if node.fronts] or [
        node.name for node in manifest.nodes]
    print(f"nodes={args.nodes} full_nodes={args.full_nodes} (load to {','.join(entries)}, "
          f"finality at {entries[1 % len(entries)]}) rate={args.rate:g} tx/s "
          f"seconds={args.seconds:g} "
          f"batch={args.batch} block_interval_ms={args.block_interval_ms} "
          f"params={args.params}; {profile}")
    print(f"final tx/s         {len(final_at) / max(t_end - t0, 1e-9):,.0f}  "
          f"({len(final_at)} of {len(submitted_at)} final in {t_end - t0:.1f} s)")
    print(f"latency p50        {percentile(latencies, 0.50):.3f} s  (submit to final)")
    print(f"latency p99        {percentile(latencies, 0.99):.3f} s")
    print(f"block interval p50 {percentile(intervals, 0.50):.3f} s  "
          f"p99 {percentile(intervals, 0.99):.3f} s  ({len(block_times)} blocks)")
    late = [r for r in rounds if r > 0]
    print(f"past round 0       {len(late)} blocks (max round {max(rounds, default=0)})")
    print(f"proxy              {delivered / 2**20:.1f} MiB delivered, {lost} segments lost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4, help="validators (default 4)")
    parser.add_argument("--rate", type=float, default=500, help="offered tx/s (default 500)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--drain-seconds", type=float, default=30,
                        help="longest wait for the last transfers after the load (default 30)")
    parser.add_argument("--senders", type=int, default=100, help="funded senders (default 100)")
    parser.add_argument("--batch", type=int, default=50, help="transfers per request")
    parser.add_argument("--in-flight", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--block-interval-ms", type=int, default=200)
    parser.add_argument("--params", default="{}",
                        help='more chain parameters, JSON: {"timeout_propose_ms": 3000}')
    parser.add_argument("--min-delay", type=parse_duration_ms, default=20.0)
    parser.add_argument("--max-delay", type=parse_duration_ms, default=80.0)
    parser.add_argument("--jitter", type=parse_duration_ms, default=10.0)
    parser.add_argument("--loss", type=parse_loss, default=0.01)
    parser.add_argument("--slow-delay", type=parse_duration_ms, default=300.0)
    parser.add_argument("--no-slow", action="store_true", help="no slow pair")
    parser.add_argument("--far-nodes", type=int, default=0,
                        help="the last K nodes are --slow-delay away from every other node "
                             "(with 4 validators and K=2, every quorum crosses a slow link)")
    parser.add_argument("--full-nodes", type=int, default=0,
                        help="public full nodes in front of the validators; the load goes "
                             "to them and finality is measured at one (default 0)")
    parser.add_argument("--near-delay", type=parse_duration_ms, default=1.0,
                        help="one-way delay between a full node and its validator")
    parser.add_argument("--clear", action="store_true", help="leave every link clear")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the devnet directory")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="govchain-bench-wan-")) / "devnet"
    report(f"devnet in {root}")
    try:
        manifest = start_devnet(args, root)
        asyncio.run(measure(args, manifest))
        report(json.dumps(network.read_direction_stats(root)))
    finally:
        if has_manifest(root):
            network.down(root, clean=not args.keep, report=report)
        if not args.keep:
            shutil.rmtree(root.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
