"""Benchmark: a private record write against a public record write, per transaction.

Both write one record of the same content (PAYLOAD_BYTES, default 1 KiB): the public
one puts it on the chain (record_put with a value); the private one puts only its
commitment on the chain (private_put) and hands the payload to a holder's store.
Per transaction it times, over pre-signed transactions by 64 writers (the most one role may have):
  sign+verify  building and checking the ed25519 signature (once per node),
  apply        Ledger.apply_block over an in-memory state (every validator pays it),
  chain store  the state root and the synced block commit of a real ChainStore in a temp
               dir, in blocks of B records (every validator pays it),
and, for the private record only, on a holder node:
  commit       drawing the salt and hashing the commitment (the writer),
  holder store sealing the payloads and writing them to a real PrivateStore in a temp dir
               in batches of B records (one synced LevelDB write and one fsynced key file
               per batch: what a holder's group write does with the payloads of a block).
Prints the figures; asserts nothing.
Run from the repository root: PYTHONPATH=. python bench/bench_private.py [--block-sizes 100,1000]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping

from chain.block import Block, BlockHeader, compute_tx_root
from chain.commitment import compute_record_commitment
from chain.crypto import KeyPair, PublicKey
from chain.genesis import Genesis, GenesisAccount
from chain.results import ResultLeaf, compute_results_root
from chain.tx import Transaction, make_transaction, validate_signatures
from chain.vote import CommitCertificate, Validator, ValidatorSet
from ledger.execution import BlockContext, Ledger, default_modules
from ledger.state import Overlay
from storage.chain_store import ChainStore
from storage.private_store import MAX_BATCH_RECORDS, PrivateStore

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


def time_chain_store(ledger: Ledger, genesis_state: Mapping[bytes, bytes | None],
                     validator: KeyPair, txs: list[Transaction], block_size: int) -> float:
    """Microseconds per transaction of prepare_state + commit_block, in blocks of
    `block_size` (the execution, timed apart, is not counted)."""
    vset = ValidatorSet((Validator(validator.public_key, "bench"),))
    genesis = Genesis(chain_id=CHAIN_ID, genesis_time_ms=0, validator_set=vset)
    current = dict(genesis_state)
    elapsed = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-private-chain-") as tmp:
        store = ChainStore.open(tmp, genesis)
        store.commit_genesis(genesis_state, vset)
        for height, start in enumerate(range(0, len(txs), block_size), start=1):
            chunk = tuple(txs[start:start + block_size])
            view = Overlay(current)
            ctx = BlockContext(CHAIN_ID, height=height, timestamp_ms=height,
                               proposer=validator.public_key)
            results = ledger.apply_block(view, ctx, list(chunk))
            assert all(r.is_ok for r in results), [r for r in results if not r.is_ok][:1]
            changes = dict(view.changes())
            t0 = time.perf_counter()
            prepared = store.prepare_state(changes)
            header = BlockHeader(CHAIN_ID, height, 0, store.head_timestamp_ms + 1,
                                 store.head_hash, validator.public_key, compute_tx_root(chunk),
                                 compute_results_root([ResultLeaf.of(tx.hash, "ok", ())
                                                       for tx in chunk]),
                                 prepared.root, vset.hash, vset.hash)
            block = Block(header, chunk)
            cert = CommitCertificate(height, 0, block.hash, ((validator.public_key, bytes(64)),))
            store.commit_block(block, cert, changes, [("ok", "", ())] * len(chunk), None,
                               prepared)
            elapsed += time.perf_counter() - t0
            for key, value in changes.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
        store.close()
    return elapsed / len(txs) * 1e6


def time_holder_store(payloads: list[tuple[bytes, bytes]], batch_size: int) -> float:
    """Microseconds per record of PrivateStore.put_payloads in batches of `batch_size`."""
    records = [("private", f"rec-{i}", salt, payload) for i, (salt, payload) in
               enumerate(payloads)]
    with tempfile.TemporaryDirectory(prefix="bench-private-") as tmp:
        store = PrivateStore(tmp)
        start = time.perf_counter()
        for first in range(0, len(records), batch_size):
            store.put_payloads(records[first:first + batch_size])
        elapsed = time.perf_counter() - start
        store.close()
    return elapsed / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--payload-bytes", type=int, default=1024)
    parser.add_argument("--block-sizes", default="100,1000",
                        help="records per block (and per holder write), comma-separated")
    parser.add_argument("--single-records", type=int, default=200,
                        help="records written one per holder write, for comparison")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store-repeat", type=int, default=3,
                        help="runs of each store measurement (the best is kept)")
    args = parser.parse_args()
    block_sizes = [int(b) for b in args.block_sizes.split(",")]
    assert all(0 < b <= MAX_BATCH_RECORDS for b in block_sizes), \
        f"block sizes of 1 to {MAX_BATCH_RECORDS}"
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
        for size in block_sizes:
            figures[kind][f"chain@{size}"] = min(
                time_chain_store(ledger, state, validator, txs, size)
                for _ in range(args.store_repeat))

    def commit() -> None:
        for _salt, payload in payloads:
            compute_record_commitment(os.urandom(32), payload)
    figures["private"]["commit"] = best_of(args.repeat, commit) / n * 1e6
    single = min(time_holder_store(payloads[:args.single_records], 1)
                 for _ in range(args.store_repeat))
    for size in block_sizes:
        figures["private"][f"holder@{size}"] = min(time_holder_store(payloads, size)
                                                   for _ in range(args.store_repeat))

    print(f"{n} records of {args.payload_bytes} bytes, {WRITERS} writers; sign+verify, apply "
          f"and commit best of {args.repeat}; the stores best of {args.store_repeat}")
    print(f"{'':9}{'tx bytes':>9}{'sign+verify':>13}{'apply':>9}{'commit':>9}")
    for kind in ("public", "private"):
        row = figures[kind]
        print(f"{kind:9}{row['tx bytes']:>9.0f}{row['sign+verify']:>11.1f}us"
              f"{row['apply']:>7.1f}us{row.get('commit', 0):>7.1f}us")
    print(f"holder store, one record per write ({args.single_records} records): "
          f"{single:.1f} us per record")
    for size in block_sizes:
        pub, priv = figures["public"], figures["private"]
        chain_public = pub["sign+verify"] + pub["apply"] + pub[f"chain@{size}"]
        chain_private = priv["sign+verify"] + priv["apply"] + priv[f"chain@{size}"]
        holder = chain_private + priv["commit"] + priv[f"holder@{size}"]
        print(f"blocks of {size}: chain store public {pub[f'chain@{size}']:.1f} us, private "
              f"{priv[f'chain@{size}']:.1f} us; holder store {priv[f'holder@{size}']:.1f} us "
              f"per record")
        print(f"  per transaction, what every validator pays: public {chain_public:.1f} us, "
              f"private {chain_private:.1f} us ({100 * (chain_private / chain_public - 1):+.1f} %)")
        print(f"  with the writer's commitment and one holder's store: private {holder:.1f} us "
              f"({100 * (holder / chain_public - 1):+.1f} % against public)")


if __name__ == "__main__":
    main()
