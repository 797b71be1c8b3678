"""Builders of state-sync objects for tests: a header chain with certificates and
validator-set changes, and manifests and chunks cut from a state held in a dict."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from chain.block import BlockHeader
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.genesis import Genesis
from chain.snapshot import LightBlock, SnapshotChunk, SnapshotManifest
from chain.state_proof import BUCKET_COUNT, EMPTY_BUCKET_HASH, compute_bucket_hash
from chain.vote import CommitCertificate, Validator, ValidatorSet, Vote, VoteKind

CHAIN_ID = "snapshot-test"
KEYS = tuple(KeyPair.from_seed(bytes([0x30 + i]) * 32) for i in range(7))


def make_set(keys: Sequence[KeyPair]) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(k.public_key, f"ministry-{KEYS.index(k)}")
                              for k in keys))


SET_A = make_set(KEYS[:4])
SET_B = make_set(KEYS[1:5])
SET_C = make_set(KEYS[3:7])
GENESIS = Genesis(chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000, validator_set=SET_A)


def key_of(public_key: bytes) -> KeyPair:
    return next(k for k in KEYS if k.public_key == public_key)


def certify(header: BlockHeader, validator_set: ValidatorSet,
            signers: Sequence[KeyPair] | None = None) -> CommitCertificate:
    keys = signers if signers is not None else [key_of(v.public_key)
                                                for v in validator_set.validators]
    votes = [Vote.create(CHAIN_ID, k, VoteKind.PRECOMMIT, header.height, 0, header.hash)
             for k in keys]
    return CommitCertificate.from_votes(votes)


def build_chain(height: int, changes: Mapping[int, ValidatorSet],
                state_root: bytes = b"") -> dict[int, LightBlock]:
    """Light blocks 1..height; `changes[c]` is the set that certifies from height c on.
    The header at `height` commits to `state_root` (others to a made-up root)."""
    blocks: dict[int, LightBlock] = {}
    current = GENESIS.validator_set
    prev_hash = GENESIS.hash
    for h in range(1, height + 1):
        following = changes.get(h + 1, current)
        root = state_root if h == height and state_root else compute_hash(b"state %d" % h)
        header = BlockHeader(CHAIN_ID, h, 0, GENESIS.genesis_time_ms + h * 1000, prev_hash,
                             current.get_proposer(h, 0), compute_hash(b""), compute_hash(b""),
                             Hash32(root),
                             current.hash, following.hash)
        blocks[h] = LightBlock(header, certify(header, current), current,
                               None if following.hash == current.hash else following)
        prev_hash, current = header.hash, following
    return blocks


def make_state(count: int, salt: bytes = b"") -> dict[bytes, bytes]:
    return {b"acct/" + salt + i.to_bytes(4, "big"): b"balance=" + str(i).encode() * 3
            for i in range(count)}


def sort_state(state: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes, bytes]]:
    """(key hash, key, value), ascending key hash."""
    return sorted((hashlib.sha256(k).digest(), k, v) for k, v in state.items())


def make_manifest(height: int, state: Mapping[bytes, bytes], starts: Sequence[int] = (0,)
                  ) -> SnapshotManifest:
    buckets: dict[int, list[bytes]] = {}
    for key_hash, _, value in sort_state(state):
        bucket = (key_hash[0] << 8) | key_hash[1]
        buckets.setdefault(bucket, []).append(key_hash + hashlib.sha256(value).digest())
    hashes = [EMPTY_BUCKET_HASH] * BUCKET_COUNT
    for bucket, entries in buckets.items():
        hashes[bucket] = compute_bucket_hash(b"".join(entries))
    manifest = SnapshotManifest(height, Hash32(b"\0" * 32), b"".join(hashes), tuple(starts))
    return SnapshotManifest(height, manifest.compute_root(), manifest.bucket_hashes,
                            tuple(starts))


def make_chunk(manifest: SnapshotManifest, index: int, state: Mapping[bytes, bytes]
               ) -> SnapshotChunk:
    first, end = manifest.get_chunk_range(index)
    entries = tuple((k, v) for kh, k, v in sort_state(state)
                    if first <= ((kh[0] << 8) | kh[1]) < end)
    return SnapshotChunk(manifest.height, index, first, end, entries)
