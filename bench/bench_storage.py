"""Storage micro-benchmark: blocks of 5,000 transfers (3 state keys each) on LevelDB.

Prints commits/s and microseconds per changed key for the speculative state root
(`prepare_state`) and for the synced block commit. Run from the repository root:
`PYTHONPATH=. python bench/bench_storage.py [--blocks N] [--accounts N]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.results import ResultLeaf, compute_results_root
from chain.tx import Transaction
from chain.vote import CommitCertificate, Validator, ValidatorSet
from storage.chain_store import ChainStore

CHAIN_ID = "bench"
TRANSFERS_PER_BLOCK = 5000


def balance_key(account: int) -> bytes:
    return b"bal/" + account.to_bytes(20, "big") + b"/GOV"


def nonce_key(account: int) -> bytes:
    return b"nonce/" + account.to_bytes(20, "big")


def make_block_inputs(rng: random.Random, height: int, accounts: int,
                      ) -> tuple[tuple[Transaction, ...], dict[bytes, bytes | None]]:
    txs = []
    changes: dict[bytes, bytes | None] = {}
    for i in range(TRANSFERS_PER_BLOCK):
        sender, receiver = rng.randrange(accounts), rng.randrange(accounts)
        tx = Transaction(CHAIN_ID, sender.to_bytes(20, "big"), height * 10_000 + i,  # type: ignore[arg-type]
                         "transfer", {"to": receiver.to_bytes(20, "big"), "amount": 1})
        _ = tx.hash  # encode outside the timed section
        txs.append(tx)
        changes[balance_key(sender)] = rng.randbytes(12)
        changes[balance_key(receiver)] = rng.randbytes(12)
        changes[nonce_key(sender)] = (height * 10_000 + i).to_bytes(8, "big")
    return tuple(txs), changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()

    key = KeyPair.from_seed(b"\x01" * 32)
    vset = ValidatorSet((Validator(key.public_key, "bench"),))
    genesis = Genesis(chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000, validator_set=vset)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as data_dir:
        store = ChainStore.open(data_dir, genesis)
        genesis_state: dict[bytes, bytes | None] = {}
        for account in range(args.accounts):
            genesis_state[balance_key(account)] = (10**9).to_bytes(8, "big")
            genesis_state[nonce_key(account)] = bytes(8)
        started = time.perf_counter()
        store.commit_genesis(genesis_state, vset)
        print(f"genesis: {len(genesis_state):,} keys in {time.perf_counter() - started:.2f} s")

        prepare_us: list[float] = []
        commit_us: list[float] = []
        block_s: list[float] = []
        changed = 0
        for height in range(1, args.blocks + 1):
            txs, changes = make_block_inputs(rng, height, args.accounts)
            changed += len(changes)
            t0 = time.perf_counter()
            prepared = store.prepare_state(changes)
            t1 = time.perf_counter()
            header = BlockHeader(CHAIN_ID, height, 0, store.head_timestamp_ms + 1,
                                 store.head_hash, key.public_key, compute_tx_root(txs),
                                 compute_results_root([ResultLeaf.of(tx.hash, "ok", ())
                                                       for tx in txs]),
                                 prepared.root, vset.hash, vset.hash)
            block = Block(header, txs)
            cert = CommitCertificate(height, 0, block.hash, ((key.public_key, bytes(64)),))
            results = [("ok", "", ())] * len(txs)
            t2 = time.perf_counter()
            store.commit_block(block, cert, changes, results, None, prepared)
            t3 = time.perf_counter()
            prepare_us.append((t1 - t0) * 1e6 / len(changes))
            commit_us.append((t3 - t2) * 1e6 / len(changes))
            block_s.append((t1 - t0) + (t3 - t2))
        store.close()

        started = time.perf_counter()
        store = ChainStore.open(data_dir, genesis)
        reopen_s = time.perf_counter() - started
        started = time.perf_counter()
        for account in range(1000):
            store.get_state_proof(balance_key(account))
        proof_us = (time.perf_counter() - started) * 1e3
        store.close()

    print(f"{args.blocks} blocks x {TRANSFERS_PER_BLOCK} transfers, {args.accounts:,} accounts, "
          f"{changed / args.blocks:,.0f} changed keys per block")
    print(f"state root (prepare_state): {statistics.median(prepare_us):.1f} us per changed key")
    print(f"block commit (synced batch): {statistics.median(commit_us):.1f} us per changed key")
    print(f"prepare + commit: {statistics.median(block_s) * 1e3:.0f} ms per block, "
          f"{1 / statistics.median(block_s):.1f} commits/s, "
          f"{TRANSFERS_PER_BLOCK / statistics.median(block_s):,.0f} transfers/s")
    print(f"reopen (tree rebuild): {reopen_s * 1e3:.0f} ms; state proof: {proof_us:.0f} us each")


if __name__ == "__main__":
    main()
