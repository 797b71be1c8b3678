"""govchain side by side with a peer chain a developer would otherwise run locally.

In one run, with the same workload shape for every chain: N value transfers from S
pre-funded senders, pre-signed before timing, submitted over JSON-RPC with one
request in flight per sender, blocks followed until every transfer is final (govchain)
or mined (the peer). Prints final or mined tx/s, submit-to-final latency p50/p99 and
peak RSS for each, then govchain's figures as ratios of each peer's. govchain runs
twice: `tx_submit` one transaction per request (like for like with the peers'
`eth_sendRawTransaction`), and `tx_submit_batch` (its batched figure).

Peers (npm, installed into ~/.cache/govchain-bench on first use): hardhat@2 with
one-second blocks, hardhat@2 automine, ganache@7 with its defaults. Only 127.0.0.1;
bounded in count and time; every process it starts is stopped at the end.

    python bench/bench_peers.py                          # 20,000 transfers, 32 senders
    python bench/bench_peers.py --txs 2000 --runs 1      # a quick look
    python bench/bench_peers.py --peers hardhat --govchain-nodes 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import get_free_port, make_keys, presign_transfers
from bench.peers import eth
from bench.peers.govchain import (
    CHAIN_ID,
    GovchainFollower,
    GovchainNetwork,
    batch_units,
    single_units,
)
from bench.peers.load import Measurement, measure, median_summary, split_lanes

Step = Callable[[], Awaitable[Measurement]]


def govchain_steps(args: argparse.Namespace, workdir: Path) -> list[tuple[str, Step]]:
    senders = make_keys(args.senders, salt=2)
    print(f"pre-signing {args.txs} govchain transfers from {args.senders} senders ...",
          flush=True)
    txs = presign_transfers(CHAIN_ID, senders, args.txs)
    nodes = f"{args.govchain_nodes} node{'s' if args.govchain_nodes > 1 else ''}"

    async def run(label: str, method: str, lanes: list[list[Any]]) -> Measurement:
        network = GovchainNetwork(args.govchain_nodes, senders, args.log_level, workdir)
        try:
            await network.start()
            follower = await GovchainFollower.create(network.clients[0])
            result = await measure(label, lanes, network.make_send(method), follower,
                                   max_seconds=args.max_seconds)
            result.peak_rss_mb = network.peak_rss_mb()
            return result
        finally:
            await network.stop()

    single = f"govchain {nodes}, tx_submit x{args.senders}"
    batched = f"govchain {nodes}, tx_submit_batch {args.batch} x{args.in_flight}"
    return [
        (single, lambda: run(single, "tx_submit",
                             split_lanes(single_units(txs), args.senders))),
        (batched, lambda: run(batched, "tx_submit_batch",
                              split_lanes(batch_units(txs, args.batch), args.in_flight))),
    ]


def peer_steps(args: argparse.Namespace, workdir: Path) -> list[tuple[str, Step]]:
    names = [n for n in args.peers.split(",") if n]
    unknown = [n for n in names if n not in eth.PEERS]
    if unknown:
        raise SystemExit(f"unknown peer {unknown[0]!r}; known: {', '.join(eth.PEERS)}")
    if not names:
        return []
    eth.ensure_npm_packages()
    eth_python = eth.ensure_eth_python(args.eth_python)
    steps = []
    for name in names:
        spec = eth.PEERS[name]
        load = eth.presign(eth_python, spec.chain_id, args.txs, args.senders, workdir)
        label = f"{spec.package} {eth.package_version(spec.package)}, {spec.mode}"

        async def run(spec: eth.PeerSpec = spec, load: eth.EthLoad = load,
                      label: str = label) -> Measurement:
            peer = eth.PeerProcess(spec, load.sender_keys, get_free_port(), workdir)
            rpc = eth.EthRpc(peer.rpc_url)
            try:
                peer.start()
                await eth.wait_ready(rpc, spec.chain_id, 120)
                follower = await eth.EthFollower.create(rpc)
                result = await measure(label, split_lanes(load.units, args.senders),
                                       eth.make_send(rpc), follower,
                                       max_seconds=args.max_seconds)
                result.peak_rss_mb = peer.peak_rss_mb()
                return result
            finally:
                await rpc.close()
                peer.stop()

        steps.append((label, run))
    return steps


def print_measurement(m: Measurement) -> None:
    note = " TIMED OUT" if m.timed_out else ""
    refused = f", {m.refused} refused (first: {m.first_refusal})" if m.refused else ""
    print(f"  {m.label}: {m.tx_per_s:,.0f} tx/s ({m.final}/{m.offered} in {m.seconds:.2f} s),"
          f" p50 {m.p50_s:.3f} s, p99 {m.p99_s:.3f} s, {m.blocks} blocks,"
          f" peak RSS {m.peak_rss_mb:.0f} MiB, load generator {m.client_cpu:.0%} of a core"
          f"{refused}{note}", flush=True)


def print_table(summaries: list[dict[str, Any]], govchain_count: int) -> None:
    runs = summaries[0]["runs"]
    print(f"\n{'medians of ' + str(runs) + ' runs' if runs > 1 else 'one run'}:")
    print(f"{'chain, mode':<48} {'tx/s':>8} {'p50 s':>7} {'p99 s':>7} {'RSS MiB':>8}"
          f" {'gen CPU':>8}")
    for s in summaries:
        flag = " (incomplete)" if s["timed_out"] or s["refused"] else ""
        print(f"{s['label']:<48} {s['tx_per_s']:>8,.0f} {s['p50_s']:>7.3f} {s['p99_s']:>7.3f}"
              f" {s['peak_rss_mb']:>8.0f} {s['client_cpu']:>8.0%}{flag}")
    ours, peers = summaries[:govchain_count], summaries[govchain_count:]
    if peers:
        print("\nratio of tx/s (govchain / peer):")
        for g in ours:
            for p in peers:
                print(f"  {g['label']} / {p['label']}: "
                      f"{g['tx_per_s'] / max(p['tx_per_s'], 1e-9):.1f}x")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="govchain-peerbench-"))
    print(f"presigned loads, node homes, peer configs and logs in {workdir}", flush=True)
    steps = [] if args.no_govchain else govchain_steps(args, workdir)
    govchain_count = len(steps)
    steps += peer_steps(args, workdir)
    results: dict[str, list[Measurement]] = {label: [] for label, _ in steps}
    for index in range(args.runs):
        print(f"run {index + 1} of {args.runs}", flush=True)
        for label, step in steps:
            result = await step()
            print_measurement(result)
            results[label].append(result)
    summaries = [median_summary(results[label]) for label, _ in steps]
    print_table(summaries, govchain_count)
    return {"txs": args.txs, "senders": args.senders, "runs": args.runs,
            "medians": summaries,
            "runs_detail": {k: [m.summary() for m in v] for k, v in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=32,
                        help="funded senders; one request in flight per sender")
    parser.add_argument("--runs", type=int, default=3, help="runs per chain; medians shown")
    parser.add_argument("--peers", default="hardhat,ganache",
                        help=f"comma-separated, from {', '.join(eth.PEERS)}; empty for none")
    parser.add_argument("--govchain-nodes", type=int, default=1)
    parser.add_argument("--no-govchain", action="store_true")
    parser.add_argument("--batch", type=int, default=500,
                        help="transactions per tx_submit_batch request")
    parser.add_argument("--in-flight", type=int, default=4,
                        help="tx_submit_batch requests in flight")
    parser.add_argument("--max-seconds", type=float, default=600,
                        help="bound on each chain's run, from its first request")
    parser.add_argument("--eth-python", help="a Python with eth-account (default: this one"
                        " if it has it, else a virtualenv made in the cache folder)")
    parser.add_argument("--log-level", default="WARNING", help="govchain nodes' log level")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    if args.txs < 1 or args.senders < 1 or args.runs < 1:
        parser.error("--txs, --senders and --runs must be positive")
    report = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
