"""Micro-benchmark: transfers per second through Ledger.apply_block on one core.

Builds a genesis of 1,000 funded accounts and 10,000 signed transfers between them
(signed and verified before timing starts, as the node does), then times
apply_block over an in-memory state. Prints the figure; asserts nothing.
`--asset KGS` moves a reserve-backed asset with identity tiers instead of the plain
GOV: every transfer then passes the tier checks (per-payment, rolling-day and balance
limits) and the travel-rule threshold. `--both` runs GOV and KGS alternately.
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


MAX = 2**64 - 1
TIERED_APP_STATE = {
    "assets": {"assets": [{"symbol": "KGS", "name": "Som stablecoin", "reserve_backed": True,
                           "attestation": {"reserve": 10**16, "report_hash": "00" * 32,
                                           "timestamp_ms": 0}}]},
    "tiers": {"assets": {"KGS": {"default": 1, "tiers": [
        {"tier": 1, "balance_limit": MAX, "payment_limit": MAX, "daily_limit": MAX}]}}},
}


def build(accounts: int, transfers: int, seed: int, asset: str = "GOV"
          ) -> tuple[dict[bytes, bytes | None], list[Transaction]]:
    rng = random.Random(seed)
    keys = [KeyPair.from_seed(rng.randbytes(32)) for _ in range(accounts)]
    validator = Validator(keys[0].public_key, "bench")
    genesis = Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=0, validator_set=ValidatorSet((validator,)),
        accounts=tuple(GenesisAccount(k.address, {asset: 10**12}) for k in keys),
        app_state=TIERED_APP_STATE if asset == "KGS" else {})
    view = Overlay({})
    Ledger(default_modules()).apply_genesis(view, genesis)
    nonces = [0] * accounts
    txs = []
    for _ in range(transfers):
        i = rng.randrange(accounts)
        to = keys[rng.randrange(accounts)].address
        txs.append(make_transaction(CHAIN_ID, keys[i], nonces[i], "transfer",
                                    {"to": to, "asset": asset, "amount": rng.randint(1, 1000)}))
        nonces[i] += 1
    for tx in txs:
        validate_signatures(tx)
    return view.changes(), txs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--transfers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--asset", choices=["GOV", "KGS"], default="GOV",
                        help="GOV: a plain asset; KGS: reserve-backed with identity tiers")
    parser.add_argument("--both", action="store_true", help="GOV and KGS, alternately")
    args = parser.parse_args()
    assets = ["GOV", "KGS"] if args.both else [args.asset]
    built = {asset: build(args.accounts, args.transfers, seed=1, asset=asset)
             for asset in assets}
    ledger = Ledger(default_modules())
    ctx = BlockContext(CHAIN_ID, height=1, timestamp_ms=1, proposer=PublicKey(bytes(32)))
    best = dict.fromkeys(assets, float("inf"))
    best_cpu = dict.fromkeys(assets, float("inf"))
    for _ in range(args.repeat):
        for asset in assets:  # alternately, so that machine load hits both alike
            state, txs = built[asset]
            view = Overlay(state)
            start, start_cpu = time.perf_counter(), time.process_time()
            results = ledger.apply_block(view, ctx, txs)
            best[asset] = min(best[asset], time.perf_counter() - start)
            best_cpu[asset] = min(best_cpu[asset], time.process_time() - start_cpu)
            assert all(r.is_ok for r in results), "every benchmark transfer must succeed"
    for asset in assets:
        count = len(built[asset][1])
        print(f"{count} {asset} transfers through apply_block: {count / best[asset]:,.0f} "
              f"transfers/s ({best[asset] / count * 1e6:.1f} us per transfer wall, "
              f"{best_cpu[asset] / count * 1e6:.1f} us CPU, best of {args.repeat})")
    if args.both:
        print(f"tier checks cost {(best_cpu['KGS'] / best_cpu['GOV'] - 1) * 100:+.1f} % of "
              f"a transfer's CPU time ({(best['KGS'] / best['GOV'] - 1) * 100:+.1f} % wall)")


if __name__ == "__main__":
    main()
