"""How long a fresh node takes to join by state sync, and that it does not depend on the
length of history.

For each history size: builds a validator's home holding TXS transfers among a fixed
set of accounts (SENDERS funded at genesis paying RECEIVERS new accounts), written
straight through the real storage code (`ChainStore.commit_block`, every block
executed by the ledger and certified by the genesis validator); starts it as a node
process that takes a state snapshot every few heights; then starts a fresh full node
with `state_sync = true` whose only peer is the validator, and times it from its
process start to following the head (its height at the validator's). Both on
127.0.0.1. The state is the same size for every history size (the same accounts).

    python bench/bench_statesync.py --txs 1000000 5000000 --workdir /var/tmp/statesync

With --workdir, each history is built once (WORKDIR/TXS/source) and reused by later
runs; its node then simply continues from its head.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import NodeProcess, init_node, make_genesis, make_keys
from chain.crypto import KeyPair, PublicKey, compute_hash
from chain.genesis import ChainParams, Genesis
from chain.tx import Transaction
from chain.vote import CommitCertificate, Vote, VoteKind
from devnet.ports import get_free_port
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.config import DATA_DIR, NodeConfig, init_home, load_config, render_config
from node.execution import BlockExecutor
from sdk import AsyncClient, RpcClientError
from storage.chain_store import ChainStore

ASSET = "GOV"
SNAPSHOTS_AFTER = 10
"""The validator takes its snapshot this many blocks after its built head (its
snapshot_interval is set to head + this, so that it takes one snapshot during a run:
a 40 MB export every few blocks would compete with the joiner for the 2 cores)."""
PARAMS = ChainParams(max_block_txs=10_000, block_interval_ms=200, empty_block_interval_ms=500)


class FastKey:
    """A KeyPair whose signing key is derived once (KeyPair.sign derives it per call)."""

    def __init__(self, key: KeyPair) -> None:
        self.public_key: PublicKey = key.public_key
        self.address = key.address
        self._signing = nacl.signing.SigningKey(key.seed)

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature


def make_block_txs(chain_id: str, senders: list[FastKey], receivers: list[bytes],
                   first: int, count: int) -> list[Transaction]:
    """Transfers `first` ... `first + count - 1`: round-robin senders, nonces in order."""
    txs = []
    for i in range(first, first + count):
        sender = senders[i % len(senders)]
        unsigned = Transaction(chain_id, sender.address, i // len(senders), "transfer",
                               {"amount": 1, "asset": ASSET,
                                "to": receivers[(i * 7919) % len(receivers)]})
        txs.append(unsigned.with_signature(sender))  # type: ignore[arg-type]
    return txs


def build_history(home: Path, total_txs: int, senders: int, receivers: int) -> Genesis:
    """A validator home whose store holds `total_txs` transfers, certified block by block."""
    validator = make_keys(1, salt=1)[0]
    sender_keys = make_keys(senders, salt=2)
    genesis = make_genesis("govchain-statesync", [validator], sender_keys, PARAMS)
    init_home(home, genesis.to_json(), NodeConfig(), validator)
    # Receivers need no keys (deriving 500,000 would take a minute): made-up addresses.
    receiver_addresses = [compute_hash(b"receiver %d" % i)[:20] for i in range(receivers)]
    fast = [FastKey(k) for k in sender_keys]
    store = ChainStore.open(str(home / DATA_DIR), genesis)
    ledger = Ledger(default_modules())
    view = Overlay({})  # genesis applies over an empty state
    ledger.apply_genesis(view, genesis)
    store.commit_genesis(view.changes(), genesis.validator_set)
    executor = BlockExecutor(store, ledger, genesis.chain_id, PARAMS)
    started = last_report = time.monotonic()
    timestamp = genesis.genesis_time_ms
    done = 0
    while done < total_txs:
        count = min(PARAMS.max_block_txs, total_txs - done)
        txs = make_block_txs(genesis.chain_id, fast, receiver_addresses, done, count)
        timestamp += 1
        executed, dropped = executor.build(height=store.head_height + 1, round_=0, txs=txs,
                                           proposer=validator.public_key,
                                           timestamp_ms=timestamp)
        assert not dropped, dropped[:1]
        block = executed.block
        vote = Vote.create(genesis.chain_id, validator, VoteKind.PRECOMMIT, block.height, 0,
                           block.hash)
        store.commit_block(block, CommitCertificate.from_votes([vote]), executed.changes,
                           executed.result_values(), executed.next_validator_set,
                           executed.prepared)
        executor.clear()
        done += count
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            print(f"  built {done:,} of {total_txs:,} transfers "
                  f"({done / (last_report - started):,.0f}/s)", flush=True)
    state_keys = sum(1 for _ in store.iterate_state(b""))
    print(f"  built {done:,} transfers in {store.head_height} blocks, {state_keys:,} state "
          f"keys, in {time.monotonic() - started:.0f} s", flush=True)
    store.close()
    (home / "built.json").write_text(json.dumps({"txs": done, "state_keys": state_keys}))
    return genesis


async def height_of(client: AsyncClient) -> int | None:
    try:
        return int((await client.call("node_status"))["height"])
    except (RpcClientError, OSError, TimeoutError):
        return None


def read_snapshot_meta(home: Path) -> dict[str, Any] | None:
    for meta in sorted(home.glob("state-snapshots/*/snapshot.json")):
        return json.loads(meta.read_text())  # type: ignore[no-any-return]
    return None


async def wait_snapshot(home: Path, deadline_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        meta = await asyncio.to_thread(read_snapshot_meta, home)
        if meta is not None:
            return meta
        await asyncio.sleep(0.2)
    raise TimeoutError("the validator took no state snapshot")


def set_snapshot_interval(home: Path, genesis: Genesis) -> None:
    store = ChainStore.open(str(home / DATA_DIR), genesis)
    head = store.head_height
    store.close()
    config = load_config(home)
    config.snapshot_interval = head + SNAPSHOTS_AFTER
    (home / "config.toml").write_text(render_config(config))


async def join(workdir: Path, source_home: Path, genesis: Genesis,
               max_seconds: float) -> dict[str, float]:
    source_p2p, source_rpc = get_free_port(), get_free_port()
    shutil.rmtree(source_home / "state-snapshots", ignore_errors=True)  # one taken near the head
    set_snapshot_interval(source_home, genesis)
    shutil.rmtree(workdir / "joiner", ignore_errors=True)
    source = NodeProcess("source", source_home, f"http://127.0.0.1:{source_rpc}", source_p2p,
                         run_args=("--rpc-listen", f"127.0.0.1:{source_rpc}", "--p2p-listen",
                                   f"127.0.0.1:{source_p2p}", "--log-level", "INFO"))
    joiner = init_node(workdir, "joiner", genesis, None, [f"127.0.0.1:{source_p2p}"],
                       get_free_port(), log_level="INFO", settings={"state_sync": True})
    source.start()
    clients = [AsyncClient(source.rpc_url, timeout_s=10),
               AsyncClient(joiner.rpc_url, timeout_s=10)]
    try:
        meta = await wait_snapshot(source_home, 120)
        print(f"  validator snapshot at height {meta['height']}: {meta['chunks']} chunks, "
              f"{meta['state_bytes']:,} bytes of state, exported in {meta['seconds']} s",
              flush=True)
        t0 = time.monotonic()
        joiner.start()
        joined = None
        while time.monotonic() - t0 < max_seconds:
            mine, theirs = await height_of(clients[1]), await height_of(clients[0])
            if mine is not None and theirs is not None and mine >= theirs:
                joined = time.monotonic() - t0
                break
            await asyncio.sleep(0.05)
        if joined is None:
            raise TimeoutError(f"the joiner did not follow the head in {max_seconds} s")
        head = await height_of(clients[1])
        blocks = [await c.call("chain_block", height=head) for c in clients]
        same_root = blocks[0]["state_root"] == blocks[1]["state_root"]
        return {"join_s": joined, "height": float(head or 0), "same_root": float(same_root),
                "peak_rss_mib": joiner.peak_rss_mb(), "state_bytes": float(meta["state_bytes"])}
    finally:
        for client in clients:
            await client.close()
        joiner.stop()
        source.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, nargs="+", default=[200_000, 1_000_000],
                        help="history sizes (transfers) to measure, one chain each")
    parser.add_argument("--senders", type=int, default=2000)
    parser.add_argument("--receivers", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--workdir", help="build each history once here and reuse it")
    parser.add_argument("--build-only", action="store_true", help="build, do not join")
    args = parser.parse_args()
    rows = []
    for total in args.txs:
        workdir = Path(args.workdir) / str(total) if args.workdir else \
            Path(tempfile.mkdtemp(prefix="govchain-statesync-"))
        print(f"history of {total:,} transfers ({workdir})", flush=True)
        source = workdir / "source"
        if (source / "built.json").exists():
            genesis = Genesis.from_json((source / "genesis.json").read_text())
            print(f"  reusing {source}: {(source / 'built.json').read_text()}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            genesis = build_history(source, total, args.senders, args.receivers)
        if args.build_only:
            continue
        figures = asyncio.run(join(workdir, source, genesis, args.max_seconds))
        rows.append((total, figures))
        print(f"  joined in {figures['join_s']:.1f} s at height {figures['height']:.0f}; "
              f"same state root: {bool(figures['same_root'])}; joiner peak RSS "
              f"{figures['peak_rss_mib']:.0f} MiB", flush=True)
    print()
    print("| history (transfers) | state (bytes) | join by state sync | same root | peak RSS |")
    print("|---|---|---|---|---|")
    for total, f in rows:
        print(f"| {total:,} | {f['state_bytes']:,.0f} | {f['join_s']:.1f} s | "
              f"{bool(f['same_root'])} | {f['peak_rss_mib']:.0f} MiB |")


if __name__ == "__main__":
    main()
