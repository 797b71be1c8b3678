"""How fast a node replays history: `govchain audit` (and so import, and sync, which run
the same checks: certificate, signatures, re-execution, state root, commit).

Builds a chain of BLOCKS blocks of TXS transfers each in a fresh node home (one
validator; real signatures and certificates), then audits it and prints tx/s.

    python bench/bench_replay.py --blocks 20 --txs 5000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import make_genesis, make_keys, presign_transfers
from chain.genesis import ChainParams
from chain.vote import CommitCertificate, Vote, VoteKind
from cli.service import tune_garbage_collector
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.config import DATA_DIR, NodeConfig, init_home
from node.execution import BlockExecutor
from node.ops.replay import audit
from storage.chain_store import ChainStore


def build_chain(home: Path, blocks: int, txs_per_block: int, senders: int) -> int:
    validator = make_keys(1, salt=1)[0]
    keys = make_keys(senders, salt=2)
    params = ChainParams(max_block_txs=max(txs_per_block, 1))
    genesis = make_genesis("govchain-replay", [validator], keys, params)
    init_home(home, genesis.to_json(), NodeConfig(), validator)
    store = ChainStore.open(str(home / DATA_DIR), genesis)
    ledger = Ledger(default_modules())
    view = Overlay({})  # genesis applies over an empty state
    ledger.apply_genesis(view, genesis)
    store.commit_genesis(view.changes(), genesis.validator_set)
    executor = BlockExecutor(store, ledger, genesis.chain_id, params)
    txs = presign_transfers(genesis.chain_id, keys, blocks * txs_per_block)
    timestamp = genesis.genesis_time_ms
    for b in range(blocks):
        timestamp += 1000
        executed, dropped = executor.build(
            height=b + 1, round_=0, txs=txs[b * txs_per_block:(b + 1) * txs_per_block],
            proposer=validator.public_key, timestamp_ms=timestamp)
        assert not dropped, dropped[:1]
        block = executed.block
        vote = Vote.create(genesis.chain_id, validator, VoteKind.PRECOMMIT, block.height, 0,
                           block.hash)
        store.commit_block(block, CommitCertificate.from_votes([vote]), executed.changes,
                           executed.result_values(), executed.next_validator_set,
                           executed.prepared)
        executor.clear()
    store.close()
    return blocks * txs_per_block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--txs", type=int, default=5000, help="transfers per block")
    parser.add_argument("--senders", type=int, default=1000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="govchain-replay-")) / "home"
    started = time.monotonic()
    total = build_chain(home, args.blocks, args.txs, args.senders)
    print(f"built {args.blocks} blocks, {total} transfers in {time.monotonic() - started:.1f} s"
          f" ({home})")
    tune_garbage_collector()  # as `govchain audit` does
    started = time.monotonic()
    report = audit(home)
    whole = time.monotonic() - started
    print(f"audit: {report.blocks} blocks, {report.txs} txs; replay {report.seconds:.2f} s = "
          f"{report.txs / report.seconds:,.0f} tx/s; whole audit (opening both databases, "
          f"the replay, the tx index and state compared) {whole:.2f} s = "
          f"{report.txs / whole:,.0f} tx/s")


if __name__ == "__main__":
    main()
