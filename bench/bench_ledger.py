"""Micro-benchmark: transfers per second through Ledger.apply_block on one core.

Builds a genesis of 1,000 funded accounts and 10,000 signed transfers between them
(signed and verified before timing starts, as the node does), then times
apply_block over an in-memory state. Prints the figure; asserts nothing.
Run from the repository root: PYTHONPATH=. python bench/bench_ledger.py
"""

from __future__ import annotations

import argparse
import random
import time

from chain.crypto import KeyPair, PublicKey
from chain.genesis import Genesis, GenesisAccount
from chain.tx import Transaction, make_transaction, validate_signatures
from chain.vote import Validator, ValidatorSet
from ledger.execution import BlockContext, Ledger, default_modules
from ledger.state import Overlay

CHAIN_ID = "bench-chain"


def build(accounts: int, transfers: int, seed: int) -> tuple[dict[bytes, bytes | None],
                                                             list[Transaction]]:
    rng = random.Random(seed)
    keys = [KeyPair.from_seed(rng.randbytes(32)) for _ in range(accounts)]
    validator = Validator(keys[0].public_key, "bench")
    genesis = Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=0, validator_set=ValidatorSet((validator,)),
        accounts=tuple(GenesisAccount(k.address, {"GOV": 10**12}) for k in keys))
    view = Overlay({})
    Ledger(default_modules()).apply_genesis(view, genesis)
    nonces = [0] * accounts
    txs = []
    for _ in range(transfers):
        i = rng.randrange(accounts)
        to = keys[rng.randrange(accounts)].address
        txs.append(make_transaction(CHAIN_ID, keys[i], nonces[i], "transfer",
                                    {"to": to, "asset": "GOV", "amount": rng.randint(1, 1000)}))
        nonces[i] += 1
    for tx in txs:
        validate_signatures(tx)
    return view.changes(), txs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--transfers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    state, txs = build(args.accounts, args.transfers, seed=1)
    ledger = Ledger(default_modules())
    ctx = BlockContext(CHAIN_ID, height=1, timestamp_ms=1, proposer=PublicKey(bytes(32)))
    best = float("inf")
    for _ in range(args.repeat):
        view = Overlay(state)
        start = time.perf_counter()
        results = ledger.apply_block(view, ctx, txs)
        best = min(best, time.perf_counter() - start)
        assert all(r.is_ok for r in results), "every benchmark transfer must succeed"
    per_tx_us = best / len(txs) * 1e6
    print(f"{len(txs)} transfers through apply_block: {len(txs) / best:,.0f} transfers/s "
          f"({per_tx_us:.1f} us per transfer, best of {args.repeat})")


if __name__ == "__main__":
    main()
