"""Soak: hold a govchain network at a steady offered load and watch it over time.

Starts N validators as separate processes on 127.0.0.1 (bench.common), signs transfers
as it goes (so a long run needs no pre-signed pile), submits them open-loop at
`--rate` tx/s in `tx_submit_batch` requests spread over the nodes, follows final
blocks on node 0, and every `--window-s` seconds prints one line: offered and final
tx/s, submit-to-final latency p50/p99/max, refused txs by reason, and each node's
resident memory (VmRSS from /proc). At the end: the whole-run figures, each node's
RSS over time, and whether memory stayed under `--rss-cap-mib` and stopped growing.
Bounded in time (`--minutes`) and in transactions in flight; loopback only.

    python bench/soak.py                          # 4 nodes, 1,500 tx/s, 10 minutes
    python bench/soak.py --minutes 0.5 --rate 500 # the short form CI runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ASSET,
    NodeProcess,
    get_free_port,
    init_node,
    make_genesis,
    make_keys,
    percentile,
    wait_ready,
)
from chain.crypto import KeyPair
from chain.genesis import ChainParams
from chain.tx import Transaction, make_transaction
from sdk import AsyncClient, RpcClientError

MIB = 1024 * 1024


@dataclass
class Window:
    """What happened in one window of the run."""

    start_s: float
    offered: int = 0
    final: int = 0
    latencies: list[float] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    rss_mib: list[float] = field(default_factory=list)


@dataclass
class SoakResult:
    windows: list[Window]
    offered: int
    final: int
    latencies: list[float]
    refused: dict[str, int]
    rss_series: dict[str, list[tuple[float, float]]]
    """node name -> (seconds since start, RSS MiB) samples."""
    unfinished: int
    """Transactions submitted and admitted but not final when the run ended."""
    exited: list[str]
    """Nodes whose process ended during the run."""
    rss_cap_mib: float

    def peak_rss(self, name: str) -> float:
        return max((v for _, v in self.rss_series[name]), default=0.0)

    def rss_growth_mib(self, name: str) -> float:
        """Peak RSS of the last third of the run minus the peak of its middle third
        (the first third is warm-up): > 0 means still growing at the end."""
        samples = self.rss_series[name]
        if len(samples) < 3:
            return 0.0
        third = len(samples) // 3
        middle = max(v for _, v in samples[third:2 * third])
        last = max(v for _, v in samples[2 * third:])
        return last - middle

    def is_memory_bounded(self, slack_mib: float = 32.0) -> bool:
        return all(self.peak_rss(n) <= self.rss_cap_mib and self.rss_growth_mib(n) <= slack_mib
                   for n in self.rss_series)

    def to_json(self) -> dict[str, Any]:
        return {"offered": self.offered, "final": self.final, "unfinished": self.unfinished,
                "p50_s": percentile(self.latencies, 0.5),
                "p99_s": percentile(self.latencies, 0.99),
                "max_s": max(self.latencies, default=0.0), "refused": self.refused,
                "exited": self.exited,
                "peak_rss_mib": {n: round(self.peak_rss(n), 1) for n in self.rss_series},
                "rss_growth_mib": {n: round(self.rss_growth_mib(n), 1)
                                   for n in self.rss_series},
                "rss_cap_mib": self.rss_cap_mib, "memory_bounded": self.is_memory_bounded()}


class TransferSource:
    """Signs transfers on demand, round-robin over the senders, nonces in order."""

    def __init__(self, chain_id: str, senders: list[KeyPair]) -> None:
        self.chain_id = chain_id
        self.senders = senders
        self.count = 0

    def take(self, count: int) -> list[Transaction]:
        txs = []
        n = len(self.senders)
        for i in range(self.count, self.count + count):
            txs.append(make_transaction(self.chain_id, self.senders[i % n], i // n, "transfer",
                                        {"to": self.senders[(i + 1) % n].address,
                                         "asset": ASSET, "amount": 1}))
        self.count += count
        return txs


def read_rss_mib(process: NodeProcess) -> float:
    return process.memory_mib()["VmRSS"]


def start_network(args: argparse.Namespace, workdir: Path) -> tuple[list[NodeProcess], Any]:
    validators = make_keys(args.nodes, salt=31)
    senders = make_keys(args.senders, salt=32)
    params = ChainParams(block_interval_ms=args.block_interval_ms,
                         max_block_txs=args.max_block_txs)
    genesis = make_genesis("govchain-soak", validators, senders, params)
    p2p_ports = [get_free_port() for _ in range(args.nodes)]
    nodes = []
    for i in range(args.nodes):
        node = init_node(workdir, f"node{i}", genesis, validators[i],
                         [f"127.0.0.1:{p}" for j, p in enumerate(p2p_ports) if j != i],
                         p2p_ports[i], args.log_level)
        with open(node.home / "config.toml", "a") as f:
            f.write(f"\nmempool_max_txs = {args.mempool_max_txs}\n"
                    f"mempool_max_bytes = {args.mempool_max_bytes}\n")
        nodes.append(node)
    for node in nodes:
        node.start()
    return nodes, (genesis, senders)


async def soak(args: argparse.Namespace, workdir: Path) -> SoakResult:
    nodes, (genesis, senders) = start_network(args, workdir)
    clients = [AsyncClient(node.rpc_url, timeout_s=30) for node in nodes]
    source = TransferSource(genesis.chain_id, senders)
    duration_s = args.minutes * 60
    submitted_at: dict[str, float] = {}
    windows: list[Window] = []
    all_latencies: list[float] = []
    refused: dict[str, int] = {}
    rss_series: dict[str, list[tuple[float, float]]] = {n.name: [] for n in nodes}
    exited: list[str] = []
    totals = {"offered": 0, "final": 0}
    try:
        await wait_ready(clients, 60)
        t0 = time.monotonic()
        end = t0 + duration_s

        def window() -> Window:
            index = int((time.monotonic() - t0) // args.window_s)
            while len(windows) <= index:
                windows.append(Window(len(windows) * args.window_s))
            return windows[index]

        async def follow() -> None:
            height = int((await clients[0].call("node_status"))["height"]) + 1
            while time.monotonic() < end + args.drain_s:
                try:
                    block = await clients[0].call("chain_block", height=height)
                except RpcClientError:
                    if time.monotonic() >= end and not submitted_at:
                        return
                    await asyncio.sleep(0.05)
                    continue
                now = time.monotonic()
                w = window()
                for tx_hash in block["txs"]:
                    sent = submitted_at.pop(tx_hash, None)
                    if sent is not None:
                        w.latencies.append(now - sent)
                        all_latencies.append(now - sent)
                        w.final += 1
                        totals["final"] += 1
                height += 1

        async def sample() -> None:
            while time.monotonic() < end:
                w = window()
                w.rss_mib = [read_rss_mib(n) for n in nodes]
                for node, rss in zip(nodes, w.rss_mib, strict=True):
                    rss_series[node.name].append((time.monotonic() - t0, rss))
                    if node.process is not None and node.process.poll() is not None \
                            and node.name not in exited:
                        exited.append(node.name)
                await asyncio.sleep(args.sample_s)

        semaphore = asyncio.Semaphore(args.in_flight)

        async def send(index: int, batch: list[Transaction]) -> None:
            async with semaphore:
                now = time.monotonic()
                for tx in batch:
                    submitted_at[tx.hash.hex()] = now
                try:
                    answers = await clients[index % len(clients)].submit_batch(batch)
                except RpcClientError as e:
                    answers = [{"error": {"data": {"reason": e.reason}}}] * len(batch)
                w = window()
                for tx, answer in zip(batch, answers, strict=True):
                    if "error" in answer:
                        reason = str((answer["error"].get("data") or {}).get("reason", "?"))
                        refused[reason] = refused.get(reason, 0) + 1
                        w.refused[reason] = w.refused.get(reason, 0) + 1
                        submitted_at.pop(tx.hash.hex(), None)

        async def submit() -> None:
            tasks: set[asyncio.Task[None]] = set()
            index = 0
            while True:
                due = t0 + index * args.batch / args.rate  # open loop
                if due >= end:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                batch = source.take(args.batch)
                window().offered += len(batch)
                totals["offered"] += len(batch)
                task = asyncio.create_task(send(index, batch))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
            await asyncio.gather(*tasks)

        async def report() -> None:
            printed = 0
            while True:
                await asyncio.sleep(1)
                done = time.monotonic() >= end + 1
                current = int((time.monotonic() - t0) // args.window_s)
                while printed < min(current, len(windows)) or (done and printed < len(windows)):
                    print_window(windows[printed], args.window_s, [n.name for n in nodes])
                    printed += 1
                if done:
                    return

        tasks = [asyncio.create_task(c()) for c in (follow, sample, submit)]
        reporter = asyncio.create_task(report())
        await asyncio.gather(*tasks)
        reporter.cancel()
        return SoakResult(windows, totals["offered"], totals["final"], all_latencies,
                          refused, rss_series, len(submitted_at), exited, args.rss_cap_mib)
    finally:
        for client in clients:
            await client.close()
        for node in nodes:
            node.stop()


def print_window(w: Window, window_s: float, names: list[str]) -> None:
    rss = " ".join(f"{n}={v:.0f}" for n, v in zip(names, w.rss_mib, strict=False))
    refused = ",".join(f"{k}:{v}" for k, v in sorted(w.refused.items())) or "0"
    print(f"t={w.start_s:5.0f}s offered/s={w.offered / window_s:6.0f} "
          f"final/s={w.final / window_s:6.0f} p50={percentile(w.latencies, 0.5):.2f}s "
          f"p99={percentile(w.latencies, 0.99):.2f}s "
          f"max={max(w.latencies, default=0.0):.2f}s refused={refused} rss_mib: {rss}",
          flush=True)


def print_summary(result: SoakResult, args: argparse.Namespace) -> None:
    doc = result.to_json()
    print(f"soak: nodes={args.nodes} rate={args.rate:.0f} tx/s minutes={args.minutes} "
          f"offered={doc['offered']} final={doc['final']} unfinished={doc['unfinished']} "
          f"p50={doc['p50_s']:.2f}s p99={doc['p99_s']:.2f}s max={doc['max_s']:.2f}s "
          f"refused={sum(result.refused.values())} {result.refused or ''} "
          f"exited={result.exited or 'none'}")
    for name in result.rss_series:
        series = result.rss_series[name]
        step = max(1, len(series) // 10)
        points = " ".join(f"{t:.0f}s:{v:.0f}" for t, v in series[::step])
        print(f"rss {name}: peak {result.peak_rss(name):.0f} MiB, growth over the last "
              f"third {result.rss_growth_mib(name):+.0f} MiB; {points}")
    print(f"memory bounded (peak <= {result.rss_cap_mib:.0f} MiB and no growth > 32 MiB "
          f"after warm-up): {'yes' if result.is_memory_bounded() else 'NO'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1500.0,
                        help="offered load, tx/s (default: the rated 1,500 tx/s of 4 nodes, "
                             "docs/performance.md)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--drain-s", type=float, default=30.0,
                        help="after the load stops, how long to wait for the last txs")
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=16,
                        help="most batches awaiting an answer (bounds the generator)")
    parser.add_argument("--block-interval-ms", type=int, default=200)
    parser.add_argument("--max-block-txs", type=int, default=10000)
    parser.add_argument("--mempool-max-txs", type=int, default=100_000)
    parser.add_argument("--mempool-max-bytes", type=int, default=128 * MIB)
    parser.add_argument("--rss-cap-mib", type=float, default=768.0,
                        help="the memory bound to check (docs/reliability.md derives it)")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--json", help="also write the summary to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="govchain-soak-"))
    print(f"soak: {args.nodes} nodes, {args.rate:.0f} tx/s for {args.minutes} min; "
          f"homes and logs in {workdir}", flush=True)
    result = asyncio.run(soak(args, workdir))
    print_summary(result, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    ok = not result.exited and result.is_memory_bounded() and not result.refused
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
