"""The light blocks a node serves for a walk (node.snapshots.read_light_blocks) on a real
store whose validator set changes twice, and the walk that proves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.snapshot import LightBlock, get_genesis_trust, verify_light_block
from chain.vote import CommitCertificate, Validator, ValidatorSet, Vote, VoteKind
from node.ops.statesync_audit import audit_state_synced
from node.snapshots import Unavailable, read_light_blocks
from storage import history
from storage.chain_store import ChainStore

CHAIN_ID = "serving-test"
KEYS = [KeyPair.from_seed(bytes([0x70 + i]) * 32) for i in range(5)]
SET_A = ValidatorSet(tuple(Validator(k.public_key, f"m{i}") for i, k in enumerate(KEYS[:4])))
SET_B = ValidatorSet(tuple(Validator(k.public_key, f"m{i}") for i, k in enumerate(KEYS[1:])))
GENESIS = Genesis(chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000, validator_set=SET_A)
CHANGES = {5: SET_B, 9: SET_A}
"""Block h names the set of height h + 1: B certifies 6..9, A again from 10."""


def build(path: Path, height: int) -> ChainStore:
    store = ChainStore.open(str(path), GENESIS)
    store.commit_genesis({b"k": b"v"}, SET_A)
    for h in range(1, height + 1):
        current = store.get_validator_set(h)
        following = CHANGES.get(h)
        changes = {b"k": b"%d" % h}
        prepared = store.prepare_state(changes)
        header = BlockHeader(CHAIN_ID, h, 0, store.head_timestamp_ms + 1, store.head_hash,
                             current.get_proposer(h, 0), compute_tx_root(()),
                             compute_tx_root(()), prepared.root,
                             current.hash, (following or current).hash)
        block = Block(header, ())
        signers = [k for k in KEYS if current.is_member(k.public_key)]
        certificate = CommitCertificate.from_votes(
            [Vote.create(CHAIN_ID, k, VoteKind.PRECOMMIT, h, 0, block.hash) for k in signers])
        store.commit_block(block, certificate, changes, [], following, prepared)
    return store


def heights(items: list[bytes]) -> list[int]:
    return [LightBlock.decode(data).header.height for data in items]


def test_a_walk_gets_the_headers_where_the_set_changes_then_its_target(tmp_path):
    store = build(tmp_path / "db", 12)
    try:
        items = read_light_blocks(store, 1, 12)
        assert heights(items) == [5, 9, 12]
        trust = get_genesis_trust(GENESIS)
        for data in items:
            trust = verify_light_block(trust, LightBlock.decode(data), CHAIN_ID)
        assert trust.header == store.get_block_header(12)
        assert trust.next_validator_set == SET_A
        # Continued from the middle, and a target right after a change.
        assert heights(read_light_blocks(store, 6, 12)) == [9, 12]
        assert heights(read_light_blocks(store, 1, 5)) == [5]
        assert LightBlock.decode(read_light_blocks(store, 5, 5)[0]).next_validator_set == SET_B
    finally:
        store.close()


def test_a_target_above_the_head_is_unavailable(tmp_path):
    store = build(tmp_path / "db", 3)
    try:
        with pytest.raises(Unavailable, match="above this node's head"):
            read_light_blocks(store, 1, 4)
    finally:
        store.close()


def test_a_pruned_store_serves_the_walk_and_audits_from_its_proven_headers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)
    store = build(tmp_path / "db", 14)
    try:
        assert store.prune(12) == 9  # heights 1-8 pruned: both set changes among them
        items = read_light_blocks(store, 1, 14)
        assert heights(items) == [5, 9, 14]
        trust = get_genesis_trust(GENESIS)
        for data in items:
            trust = verify_light_block(trust, LightBlock.decode(data), CHAIN_ID)
        assert trust.header == store.get_block_header(14)
        with pytest.raises(Unavailable, match="pruned below height 9"):
            read_light_blocks(store, 1, 7)  # an old target is gone with its block
        report = audit_state_synced(store, GENESIS)
        assert (report.base_height, report.trusted_from, report.headers_proven,
                report.blocks) == (9, 0, 2, 6)  # headers 5 and 8; blocks 9-14
    finally:
        store.close()
