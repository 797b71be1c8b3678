"""Benchmark: a private record write against a public record write, per transaction.

Both write one record of the same content (PAYLOAD_BYTES, default 1 KiB): the public
one puts it on the chain (record_put with a value); the private one puts only its
commitment on the chain (private_put) and hands the payload to a holder's store.
Per transaction it times, over pre-signed transactions by 64 writers (the most one role may have):
  sign+verify  building and checking the ed25519 signature (once per node),
  apply        Ledger.apply_block over an in-memory state (every validator pays it),
and, for the private record only, on a holder node:
  commit       drawing the salt and hashing the commitment (the writer),
  store        sealing the payload and writing it to a real PrivateStore in a temp dir
               (LevelDB synced write + fsynced key file).
Prints the figures; asserts nothing.
Run from the repository root: PYTHONPATH=. python bench/bench_private.py
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable

from chain.commitment import compute_record_commitment
from chain.crypto import KeyPair, PublicKey
from chain.genesis import Genesis, GenesisAccount
from chain.tx import Transaction, make_transaction, validate_signatures
from chain.vote import Validator, ValidatorSet
from ledger.execution import BlockContext, Ledger, default_modules
from ledger.state import Overlay
from storage.private_store import PrivateStore

CHAIN_ID = "bench-chain"
WRITERS = 64


def build_genesis(keys: list[KeyPair], validator: KeyPair) -> Genesis:
    grants = []
    for key in keys:
        grants.append({"role": "writer", "scope": "public", "address": key.address.hex()})
        grants.append({"role": "writer", "scope": "private", "address": key.address.hex()})
    return Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=0,
        validator_set=ValidatorSet((Validator(validator.public_key, "bench"),)),
        accounts=tuple(GenesisAccount(k.address, {"GOV": 1}) for k in keys),
        app_state={
            "registry": {"namespaces": [{"name": "public", "max_value_bytes": 8192}]},
            "private": {"namespaces": [{"name": "private",
                                        "holders": [validator.public_key.hex()]}]},
            "roles": {"grants": grants}})


def build_txs(keys: list[KeyPair], count: int, payload_bytes: int, rng: random.Random
              ) -> tuple[list[Transaction], list[Transaction], list[tuple[bytes, bytes]]]:
    public, private, payloads = [], [], []
    for i in range(count):
        key, nonce = keys[i % len(keys)], i // len(keys)
        payload = rng.randbytes(payload_bytes)
        salt = os.urandom(32)
        public.append(make_transaction(CHAIN_ID, key, nonce, "record_put", {
            "namespace": "public", "key": f"rec-{i}", "value": payload}))
        private.append(make_transaction(CHAIN_ID, key, nonce, "private_put", {
            "namespace": "private", "key": f"rec-{i}",
            "commitment": compute_record_commitment(salt, payload)}))
        payloads.append((salt, payload))
    return public, private, payloads


def best_of(repeat: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--payload-bytes", type=int, default=1024)
    parser.add_argument("--store-records", type=int, default=500,
                        help="records written to the holder store (synced writes are slow)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    keys = [KeyPair.from_seed(rng.randbytes(32)) for _ in range(WRITERS)]
    validator = KeyPair.from_seed(rng.randbytes(32))
    view = Overlay({})
    ledger = Ledger(default_modules())
    ledger.apply_genesis(view, build_genesis(keys, validator))
    state = view.changes()
    public, private, payloads = build_txs(keys, args.records, args.payload_bytes, rng)
    ctx = BlockContext(CHAIN_ID, height=1, timestamp_ms=1, proposer=PublicKey(bytes(32)))
    n = args.records

    def sign_verify(txs: list[Transaction]) -> Callable[[], None]:
        def run() -> None:
            for tx in txs:
                signed = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.tx_type,
                                     tx.fields).with_signature(keys[0])
                validate_signatures(signed)
        return run

    def apply(txs: list[Transaction]) -> Callable[[], None]:
        def run() -> None:
            results = ledger.apply_block(Overlay(state), ctx, txs)
            assert all(r.is_ok for r in results), [r for r in results if not r.is_ok][:1]
        return run

    figures: dict[str, dict[str, float]] = {"public": {}, "private": {}}
    for kind, txs in (("public", public), ("private", private)):
        figures[kind]["sign+verify"] = best_of(args.repeat, sign_verify(txs)) / n * 1e6
        figures[kind]["apply"] = best_of(args.repeat, apply(txs)) / n * 1e6
        figures[kind]["tx bytes"] = sum(len(tx.encoded) for tx in txs) / n

    def commit() -> None:
        for _salt, payload in payloads:
            compute_record_commitment(os.urandom(32), payload)
    figures["private"]["commit"] = best_of(args.repeat, commit) / n * 1e6

    with tempfile.TemporaryDirectory(prefix="bench-private-") as tmp:
        store = PrivateStore(tmp)
        count = min(args.store_records, n)
        start = time.perf_counter()
        for i, (salt, payload) in enumerate(payloads[:count]):
            store.put_payload("private", f"rec-{i}", salt, payload)
        figures["private"]["store"] = (time.perf_counter() - start) / count * 1e6
        store.close()

    chain_public = figures["public"]["sign+verify"] + figures["public"]["apply"]
    chain_private = figures["private"]["sign+verify"] + figures["private"]["apply"]
    print(f"{n} records of {args.payload_bytes} bytes, {WRITERS} writers, best of "
          f"{args.repeat} (store: {min(args.store_records, n)} records, once)")
    print(f"{'':10}{'tx bytes':>10}{'sign+verify':>13}{'apply':>9}{'commit':>9}{'store':>11}"
          f"{'chain total':>13}")
    for kind, chain_total in (("public", chain_public), ("private", chain_private)):
        row = figures[kind]
        print(f"{kind:10}{row['tx bytes']:>10.0f}{row['sign+verify']:>11.1f}us"
              f"{row['apply']:>7.1f}us{row.get('commit', 0):>7.1f}us"
              f"{row.get('store', 0):>9.1f}us{chain_total:>11.1f}us")
    print(f"chain cost per transaction (sign+verify+apply, what every validator pays): "
          f"private {100 * (chain_private / chain_public - 1):+.1f} % against public")
    holder = chain_private + figures["private"]["commit"] + figures["private"]["store"]
    print(f"with the writer's commitment and one holder's synced store: "
          f"{holder:.1f} us, {100 * (holder / chain_public - 1):+.1f} % against public")


if __name__ == "__main__":
    main()
