"""History benchmark: does the cost of a block and of a tx lookup grow with the chain?

Builds a store through the real storage code (ChainStore.commit_block, a real 4-of-4
commit certificate, transfers carrying a signature's bytes) and prints, after each
checkpoint, per million transfers committed: the commit time of a 2,000-transfer block
(median of the last blocks), tx lookup latency by hash (p50/p99 over hashes from the
whole chain), LevelDB compaction bytes (from `leveldb.stats`) and disk bytes.

    PYTHONPATH=. python bench/bench_history.py --transfers 2000000 --index short
    PYTHONPATH=. python bench/bench_history.py --transfers 20000000 --index short  # full size

The same command with PYTHONPATH at a schema 1 checkout (blocks inside LevelDB)
measures the layout before the history segments.

--index full: the whole 32-byte hash in the key; short: a 10-byte prefix (the default
of the node); --retain-blocks N: a validator's window (blocks and index kept for the
last N blocks only, older segments deleted and compacted away).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.results import compute_results_root_of_encoded, encode_result_leaf
from chain.tx import Signature, Transaction
from chain.vote import CommitCertificate, Validator, ValidatorSet, Vote, VoteKind
from storage import schema
from storage.chain_store import ChainStore

try:
    from storage import history
except ImportError:  # schema 1 code (run with PYTHONPATH at an older checkout): baseline
    history = None  # type: ignore[assignment]

CHAIN_ID = "bench-history"
KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
SAMPLE = 100_000
"""Tx hashes kept (a uniform reservoir over the whole chain) to look up."""


def balance_key(account: int) -> bytes:
    return b"bal/" + account.to_bytes(20, "big") + b"/GOV"


def make_transfers(rng: random.Random, height: int, count: int, accounts: int
                   ) -> tuple[tuple[Transaction, ...], dict[bytes, bytes | None]]:
    txs = []
    changes: dict[bytes, bytes | None] = {}
    signer = KEYS[0].public_key
    for i in range(count):
        sender, receiver = rng.randrange(accounts), rng.randrange(accounts)
        tx = Transaction(CHAIN_ID, sender.to_bytes(20, "big"), height * 100_000 + i,  # type: ignore[arg-type]
                         "transfer", {"to": receiver.to_bytes(20, "big"), "asset": "GOV",
                                      "amount": 1 + i},
                         (Signature(signer, rng.randbytes(64)),))
        txs.append(tx)
        changes[balance_key(sender)] = rng.randbytes(12)
        changes[balance_key(receiver)] = rng.randbytes(12)
    return tuple(txs), changes


def make_certificate(block: Block) -> CommitCertificate:
    votes = [Vote.create(CHAIN_ID, key, VoteKind.PRECOMMIT, block.height, 0, block.hash)
             for key in KEYS]
    return CommitCertificate.from_votes(votes)


def compaction_mb(store: ChainStore) -> float:
    """Read + written MB of all compactions so far, from LevelDB's own stats table."""
    stats = store._kv._db.get_property(b"leveldb.stats") or b""  # type: ignore[attr-defined]
    total = 0.0
    for line in stats.decode().splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit():
            total += float(fields[4]) + float(fields[5])
    return total


def disk_bytes(path: Path) -> tuple[int, int]:
    """(LevelDB bytes, history segment bytes) under `path`."""
    leveldb = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    segments = sum(p.stat().st_size for p in (path / "history").glob("*.seg"))
    return leveldb, segments


def lookup_latency_us(store: ChainStore, sample: list[bytes], rng: random.Random,
                      count: int) -> tuple[float, float, int]:
    """p50, p99 of get_tx over `count` hashes from `sample`; and how many were found."""
    times = []
    found = 0
    for tx_hash in rng.sample(sample, min(count, len(sample))):
        started = time.perf_counter()
        found += store.get_tx(tx_hash) is not None
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)], found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--block-txs", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--index", choices=("full", "short"), default="short")
    parser.add_argument("--retain-blocks", type=int, default=0)
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--segment-heights", type=int,
                        default=history.SEGMENT_HEIGHTS if history else 0)
    parser.add_argument("--no-state", action="store_true",
                        help="each block changes one state key only, so that LevelDB's "
                             "compaction is the history's and the tx index's alone")
    parser.add_argument("--prune-at-end", type=int, default=0, metavar="N",
                        help="then prune to the last N blocks, printing the disk bytes "
                             "before, after the deletes, and after the compaction")
    parser.add_argument("--dir", help="where to build (default: a temporary directory)")
    args = parser.parse_args()

    key_bytes = 32 if args.index == "full" else getattr(schema, "TX_KEY_BYTES", 32)
    vset = ValidatorSet(tuple(Validator(k.public_key, f"v{i}") for i, k in enumerate(KEYS)))
    genesis = Genesis(chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000, validator_set=vset)
    rng = random.Random(11)
    blocks = args.transfers // args.block_txs
    every = max(1, blocks // args.checkpoints)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "data"
        store = _open(str(path), genesis, args, key_bytes)
        store.commit_genesis({balance_key(a): bytes(12) for a in range(args.accounts)}, vset)
        base = sum(disk_bytes(path))
        print(f"{'no state changes, ' if args.no_state else ''}"
              f"index={args.index} ({key_bytes}-byte hash in the key), retain_blocks="
              f"{args.retain_blocks or 'all (archive)'}, {args.block_txs} transfers a block, "
              f"{blocks} blocks")
        print("transfers  commit_ms  lookup_p50_us  lookup_p99_us  found  compaction_MB  "
              "leveldb_MB  history_MB  bytes/transfer (beyond the genesis state)")
        sample: list[bytes] = []
        seen = 0
        commit_ms: list[float] = []
        started = time.monotonic()
        for height in range(1, blocks + 1):
            txs, changes = make_transfers(rng, height, args.block_txs, args.accounts)
            if args.no_state:
                changes = {balance_key(0): height.to_bytes(12, "big")}
            prepared = store.prepare_state(changes)
            results = [("ok", "", [["transfer", {"amount": 1}]])] * len(txs)
            results_root = compute_results_root_of_encoded([
                encode_result_leaf(tx.hash, code, events)
                for tx, (code, _, events) in zip(txs, results, strict=True)])
            header = BlockHeader(CHAIN_ID, height, 0, store.head_timestamp_ms + 1000,
                                 store.head_hash, vset.get_proposer(height, 0),
                                 compute_tx_root(txs), results_root, prepared.root,
                                 vset.hash, vset.hash)
            block = Block(header, txs)
            certificate = make_certificate(block)
            t0 = time.perf_counter()
            store.commit_block(block, certificate, changes, results, None, prepared)
            commit_ms.append((time.perf_counter() - t0) * 1e3)
            for tx in txs:  # reservoir sample over every transfer so far
                seen += 1
                if len(sample) < SAMPLE:
                    sample.append(tx.hash)
                elif rng.randrange(seen) < SAMPLE:
                    sample[rng.randrange(SAMPLE)] = tx.hash
            if height % every == 0 or height == 1 or height == blocks:
                _report(store, path, height * args.block_txs, commit_ms, sample, rng,
                        args.lookups, base)
                commit_ms = []
        print(f"built in {time.monotonic() - started:.0f} s")
        if args.prune_at_end:
            _measure_pruning(store, path, args.prune_at_end)
        store.close()


def _measure_pruning(store: ChainStore, path: Path, keep: int) -> None:
    """Disk bytes before pruning, after the deletes (tombstones in LevelDB, segment files
    gone) and after the compaction of the removed ranges: what compacting frees."""
    def mb() -> str:
        leveldb, segments = disk_bytes(path)
        return f"LevelDB {leveldb / 2**20:,.1f} MB + segments {segments / 2**20:,.1f} MB"

    print(f"before pruning: {mb()}, base height {store.base_height}")
    keep_from = store.head_height - keep + 1
    segment = history.get_segment(store.base_height)
    while history.get_segment_last_height(segment) < keep_from:
        store._prune_segment(segment)  # the deletes alone, as pruning without compaction
        segment += 1
    print(f"after the deletes: {mb()}, base height {store.base_height}")
    started = time.perf_counter()
    store.prune(keep_from)  # nothing left to delete: compacts the ranges
    for prefix in (schema.TX_INDEX, schema.BLOCK_LOCATION, schema.BLOCK_HASH):
        store._kv.compact_prefix(prefix)  # type: ignore[attr-defined]
    print(f"after compacting the removed ranges ({time.perf_counter() - started:.1f} s): "
          f"{mb()}")


def _open(path: str, genesis: Genesis, args: argparse.Namespace,
          key_bytes: int) -> ChainStore:
    if history is None:
        print("schema 1 code: blocks, tx records and the 32-byte tx hash index in LevelDB")
        return ChainStore.open(path, genesis)
    history.SEGMENT_HEIGHTS = args.segment_heights
    return ChainStore.open(path, genesis, retain_blocks=args.retain_blocks,
                           tx_key_bytes=key_bytes)


def _report(store: ChainStore, path: Path, transfers: int, commit_ms: list[float],
            sample: list[bytes], rng: random.Random, lookups: int, base: int) -> None:
    pruner = getattr(store, "_pruner", None)
    if pruner is not None:
        pruner.join()  # measure the store as the pruner leaves it
    p50, p99, found = lookup_latency_us(store, sample, rng, lookups)
    leveldb, segments = disk_bytes(path)
    print(f"{transfers:>9,}  {statistics.median(commit_ms[-20:]):9.1f}  {p50:13.1f}  "
          f"{p99:13.1f}  {found * 100 // max(1, min(lookups, len(sample))):4d}%  "
          f"{compaction_mb(store):13.1f}  {leveldb / 2**20:10.1f}  {segments / 2**20:10.1f}  "
          f"{(leveldb + segments - base) / transfers:14.1f}", flush=True)


if __name__ == "__main__":
    main()
