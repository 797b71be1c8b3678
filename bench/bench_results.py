"""Results-root micro-benchmark: what committing results costs per block, and a tx_proof.

For blocks of N transfers, each with the `transferred` event a transfer emits, prints
the milliseconds to compute the block's results root from its executed results (what
the proposer adds when it builds a block and every validator when it executes one),
beside the tx root of the same block for scale,
and, from a block stored in LevelDB, the milliseconds to read its result leaves and
build one result proof (what the RPC's tx_proof adds), first read and cached. Run
from the repository root:
`PYTHONPATH=. python bench/bench_results.py [--txs N] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.results import compute_result_proof
from chain.tx import Transaction
from chain.vote import CommitCertificate, Validator, ValidatorSet
from ledger.interface import Event, TxResult
from node.execution import compute_block_results_root
from storage.chain_store import ChainStore

CHAIN_ID = "bench"


def make_block_inputs(count: int) -> tuple[list[Transaction], list[TxResult]]:
    txs, results = [], []
    for i in range(count):
        sender, receiver = i.to_bytes(20, "big"), (i + 1).to_bytes(20, "big")
        tx = Transaction(CHAIN_ID, sender, i, "transfer",  # type: ignore[arg-type]
                         {"amount": 1 + i, "asset": "GOV", "to": receiver})
        _ = tx.hash  # encode outside the timed section
        txs.append(tx)
        results.append(TxResult.ok([Event("transferred", {
            "amount": 1 + i, "asset": "GOV", "from": sender, "to": receiver})]))
    return txs, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    txs, results = make_block_inputs(args.txs)

    root_ms, tx_root_ms = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        root = compute_block_results_root(txs, results)
        t1 = time.perf_counter()
        compute_tx_root(txs)
        root_ms.append((t1 - t0) * 1000)
        tx_root_ms.append((time.perf_counter() - t1) * 1000)

    key = KeyPair.from_seed(b"\x01" * 32)
    vset = ValidatorSet((Validator(key.public_key, "bench"),))
    genesis = Genesis(chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000, validator_set=vset)
    read_ms, proof_ms = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore.open(tmp + "/db", genesis)
        store.commit_genesis({}, vset)
        prepared = store.prepare_state({})
        header = BlockHeader(CHAIN_ID, 1, 0, store.head_timestamp_ms + 1, store.head_hash,
                             key.public_key, compute_tx_root(txs), root, prepared.root,
                             vset.hash, vset.hash)
        block = Block(header, tuple(txs))
        cert = CommitCertificate(1, 0, block.hash, ((key.public_key, bytes(64)),))
        values = [(r.code, r.message, [e.to_value() for e in r.events]) for r in results]
        store.commit_block(block, cert, {}, values, None, prepared)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            leaves = store.get_result_leaves(1)
            t1 = time.perf_counter()
            compute_result_proof(leaves, args.txs // 2)
            t2 = time.perf_counter()
            read_ms.append((t1 - t0) * 1000)
            proof_ms.append((t2 - t1) * 1000)
        store.close()

    print(f"block of {args.txs} transfers, median of {args.repeat}:")
    print(f"  results root from executed results: {statistics.median(root_ms):8.1f} ms "
          f"({statistics.median(root_ms) * 1000 / args.txs:.1f} us per tx)")
    print(f"  tx root of the same block (compare): {statistics.median(tx_root_ms):8.1f} ms")
    print(f"  read the block's result leaves:     {statistics.median(read_ms):8.1f} ms")
    print(f"  build one result proof:             {statistics.median(proof_ms):8.1f} ms")


if __name__ == "__main__":
    main()
