"""Builders of genesis, blocks and certificates for storage tests (and the crash writer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.results import ResultLeaf, compute_results_root
from chain.tx import Transaction, make_transaction
from chain.vote import CommitCertificate, Validator, ValidatorSet, Vote, VoteKind
from storage.chain_store import ChainStore
from storage.state_tree import PreparedState

CHAIN_ID = "storage-test"
KEYS = tuple(KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4))


def make_validator_set(keys: Sequence[KeyPair] = KEYS) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(k.public_key, f"ministry-{i}")
                              for i, k in enumerate(keys)))


def make_genesis(chain_id: str = CHAIN_ID, genesis_time_ms: int = 1_700_000_000_000) -> Genesis:
    return Genesis(chain_id=chain_id, genesis_time_ms=genesis_time_ms,
                   validator_set=make_validator_set())


def make_txs(count: int, nonce_base: int = 0) -> tuple[Transaction, ...]:
    return tuple(make_transaction(CHAIN_ID, KEYS[0], nonce_base + i, "transfer",
                                  {"to": bytes(20), "amount": i + 1}) for i in range(count))


def make_block(store: ChainStore, changes: Mapping[bytes, bytes | None],
               txs: tuple[Transaction, ...] = (),
               next_validator_set: ValidatorSet | None = None,
               ) -> tuple[Block, CommitCertificate, PreparedState]:
    """A block on the store's head with a valid 4-of-4 certificate."""
    prepared = store.prepare_state(changes)
    height = store.head_height + 1
    current = store.get_validator_set(height)
    following = next_validator_set or current
    header = BlockHeader(
        chain_id=CHAIN_ID, height=height, round=0,
        timestamp_ms=store.head_timestamp_ms + 1000, prev_hash=store.head_hash,
        proposer=current.get_proposer(height, 0), tx_root=compute_tx_root(txs),
        results_root=compute_results_root([ResultLeaf.of(tx.hash, "ok", []) for tx in txs]),
        state_root=prepared.root, validator_set_hash=current.hash,
        next_validator_set_hash=following.hash)
    block = Block(header, txs)
    votes = [Vote.create(CHAIN_ID, k, VoteKind.PRECOMMIT, height, 0, block.hash) for k in KEYS]
    return block, CommitCertificate.from_votes(votes), prepared


def commit(store: ChainStore, changes: Mapping[bytes, bytes | None],
           txs: tuple[Transaction, ...] = ()) -> Block:
    block, cert, prepared = make_block(store, changes, txs)
    store.commit_block(block, cert, changes, [("ok", "", [])] * len(txs), None, prepared)
    return block
