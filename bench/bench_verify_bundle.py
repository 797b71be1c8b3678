"""How long `govchain verify` takes on a bundle that follows a year of validator-set changes.

Builds, with real ed25519 keys and signatures, a chain whose four validators change once
a day (CHANGES set changes, each certified by a quorum of the set before), and a record
proven in the block after the last change; writes the bundle and prints its size and the
time sdk.bundle.verify_bundle takes on it, cold (the signature memory emptied each run).

    python bench/bench_verify_bundle.py --changes 365 --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chain import codec, crypto, merkle
from chain.block import BlockHeader
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.genesis import Genesis
from chain.state_proof import (
    BUCKET_BITS,
    EMPTY_BUCKET_HASH,
    StateProof,
    compute_bucket_hash,
    compute_key_hash,
    compute_node_hash,
    compute_value_hash,
    get_bucket,
)
from chain.vote import CommitCertificate, Validator, ValidatorSet, Vote, VoteKind
from ledger.keys import get_record_key
from sdk.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, verify_bundle

CHAIN_ID = "govchain-bench-bundle"
BLOCKS_PER_DAY = 17_280  # one block each 5 s
DAY_MS = 86_400_000
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01


def prove_single_key(key: bytes, value: bytes, height: int) -> tuple[Hash32, StateProof]:
    """(state root, proof) of a state holding `key` = `value` and nothing else."""
    key_hash = compute_key_hash(key)
    entries = ((key_hash, compute_value_hash(value)),)
    node = compute_bucket_hash(key_hash + entries[0][1])
    empty, siblings, index = EMPTY_BUCKET_HASH, [], get_bucket(key_hash)
    for _ in range(BUCKET_BITS):
        siblings.append(empty)
        node = compute_node_hash(empty, node) if index & 1 else compute_node_hash(node, empty)
        empty, index = compute_node_hash(empty, empty), index >> 1
    return node, StateProof(height, node, entries, tuple(siblings))


def set_json(vset: ValidatorSet) -> list[dict[str, str]]:
    return [{"public_key": v.public_key.hex(), "name": v.name} for v in vset.validators]


def certify(header: BlockHeader, signers: list[KeyPair]) -> CommitCertificate:
    votes = [Vote.create(header.chain_id, k, VoteKind.PRECOMMIT, header.height, 0, header.hash)
             for k in signers]
    return CommitCertificate.from_votes(votes)


def make_header(height: int, vset: ValidatorSet, next_set: ValidatorSet,
                state_root: bytes = b"\x00" * 32, chain_id: str = CHAIN_ID,
                prev_hash: bytes | None = None) -> BlockHeader:
    # Headers that commit results (a results root) get the root of no transaction.
    results = ({"results_root": merkle.EMPTY_ROOT}
               if "results_root" in BlockHeader.__dataclass_fields__ else {})
    return BlockHeader(**results, chain_id=chain_id, height=height, round=0,
                       timestamp_ms=GENESIS_TIME_MS + height * 5000,
                       prev_hash=Hash32(prev_hash or compute_hash(b"parent %d" % height)),
                       proposer=vset.validators[height % vset.size].public_key,
                       tx_root=merkle.EMPTY_ROOT, state_root=Hash32(state_root),
                       validator_set_hash=vset.hash, next_validator_set_hash=next_set.hash)


def build_chain_bundle(changes: int, validators: int = 4, chain_id: str = CHAIN_ID,
                       seed: int = 0, full_certificates: bool = False
                       ) -> tuple[Genesis, dict[str, Any]]:
    """(genesis, record bundle) of a chain whose set changes `changes` times, one
    validator replaced each day, with a record proven in the block after the last change.
    Each change is certified by a quorum of the set before (as `govchain proof` trims
    them) or, with `full_certificates`, by all of it (as the explorer's downloads)."""
    keys = [KeyPair.from_seed(compute_hash(b"bundle %d %d" % (seed, i)))
            for i in range(validators)]
    names = {k.public_key: f"ministry-{i}" for i, k in enumerate(keys)}

    def vset_of(members: list[KeyPair]) -> ValidatorSet:
        return ValidatorSet(tuple(Validator(k.public_key, names[k.public_key])
                                  for k in members))
    members = list(keys)
    genesis = Genesis(chain_id, GENESIS_TIME_MS, vset_of(members))
    current = genesis.validator_set
    sets: list[dict[str, Any]] = [{"from_height": 1, "hash": current.hash.hex(),
                                   "validators": set_json(current), "certified_by": None}]
    for day in range(1, changes + 1):
        newcomer = KeyPair.from_seed(compute_hash(b"bundle %d new %d" % (seed, day)))
        names[newcomer.public_key] = f"ministry-{validators + day - 1}"
        signers = members if full_certificates else members[:current.quorum]
        members = [*members[1:], newcomer]
        following = vset_of(members)
        height = day * BLOCKS_PER_DAY
        header = make_header(height, current, following, chain_id=chain_id)
        sets.append({"from_height": height + 1, "hash": following.hash.hex(),
                     "validators": set_json(following),
                     "certified_by": {"height": height, "header": header.encoded.hex(),
                                      "certificate": certify(header, signers).encoded.hex()}})
        current = following
    height = changes * BLOCKS_PER_DAY + 1
    record = {"doc_hash": compute_hash(b"the licence"), "height": height - 1,
              "key": "vasp-0001", "metadata": {"class": "A"}, "namespace": "licenses",
              "reason": "", "signer": b"\x07" * 20, "status": "active",
              "timestamp_ms": GENESIS_TIME_MS, "value": b"Crypto Exchange LLC", "version": 1}
    value = codec.encode(record)
    root, proof = prove_single_key(get_record_key("licenses", "vasp-0001"), value, height)
    header = make_header(height, current, current, root, chain_id=chain_id,
                         prev_hash=genesis.hash if height == 1 else None)
    bundle = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "kind": "record",
              "chain_id": chain_id, "genesis_hash": genesis.hash.hex(), "checkpoint": None,
              "validator_sets": sets,
              "block": {"height": height, "header": header.encoded.hex(),
                        "certificate": certify(header, members).encoded.hex()},
              "proof": {"namespace": "licenses", "key": "vasp-0001", "value": value.hex(),
                        "state_proof": proof.to_json()},
              "reported": None}
    return genesis, bundle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=365, help="validator-set changes")
    parser.add_argument("--validators", type=int, default=4, help="validators per set")
    parser.add_argument("--runs", type=int, default=5, help="timed verifications")
    parser.add_argument("--full-certificates", action="store_true",
                        help="every validator signs each set change (the explorer's bundles)")
    parser.add_argument("--out", help="also write the bundle and genesis here (a directory)")
    args = parser.parse_args()
    genesis, bundle = build_chain_bundle(args.changes, args.validators,
                                         full_certificates=args.full_certificates)
    data = (json.dumps(bundle, indent=2) + "\n").encode()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bundle.json").write_bytes(data)
        (out / "genesis.json").write_text(genesis.to_json())
    times, cpu = [], []
    for _ in range(args.runs):
        crypto._verified.clear()  # cold: no signature remembered from the previous run
        started, started_cpu = time.perf_counter(), time.process_time()
        fact = verify_bundle(data, genesis)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    warm = []
    for _ in range(3):  # warm: every signature remembered, the rest of the work
        started_cpu = time.process_time()
        verify_bundle(data, genesis)
        warm.append((time.process_time() - started_cpu) * 1000)
    warm_cpu = min(warm)
    key = KeyPair.from_seed(b"\x05" * 32)
    probes = [(b"probe %d" % i, key.sign(b"probe %d" % i)) for i in range(500)]
    started_cpu = time.process_time()
    for message, signature in probes:
        crypto.is_valid_signature(key.public_key, message, signature)
    per_signature_us = (time.process_time() - started_cpu) / len(probes) * 1e6
    carried = sum(len(CommitCertificate.decode(bytes.fromhex(
        s["certified_by"]["certificate"])).signatures) for s in bundle["validator_sets"][1:])
    signatures = (len(bundle["validator_sets"]) - 1) * (2 * args.validators // 3 + 1)
    print(f"bundle: {args.changes} validator-set changes, {args.validators} validators, "
          f"{len(data):,} bytes, {carried + len(fact.signers)} signatures carried, "
          f"{signatures + len(fact.signers)} checked (a quorum per set change)")
    print(f"verify_bundle: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms,"
          f" max {max(times):.1f} ms over {args.runs} runs (parse + checks, cold)")
    print(f"CPU time per verification (all threads): median {statistics.median(cpu):.1f} ms;"
          f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"of which not signature checks (best of 3 warm runs, signatures remembered): "
          f"{warm_cpu:.1f} ms")
    print(f"one ed25519 verification on this machine now: {per_signature_us:.0f} us of CPU "
          f"(the speed the figures above depend on): {signatures + len(fact.signers)} "
          f"of them are {(signatures + len(fact.signers)) * per_signature_us / 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
