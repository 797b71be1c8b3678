"""Building, executing and applying blocks against the committed state.

One place turns transactions into a block (proposer), re-executes a received block
and checks every header field it implies, and keeps the result so that a block
executed once is committed without executing it again. `apply_certified_block` is the
one way a block enters the chain, for every caller: the consensus commit, sync, the
audit's replay and import. Nothing here talks to peers or reads a clock but for the
build budget.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import Hash32, PublicKey
from chain.errors import ChainError
from chain.genesis import ChainParams
from chain.results import compute_results_root_of_encoded, encode_result_leaf
from chain.tx import Transaction
from chain.vote import CommitCertificate, ValidatorSet, validate_certificate
from ledger.errors import CorruptStateError, LedgerError, TxNotApplicable
from ledger.execution import BlockContext, Ledger, TxResult
from ledger.state import Overlay
from storage.chain_store import ChainStore
from storage.state_tree import PreparedState


class InvalidBlockError(Exception):
    """Raised when a block does not follow from its parent by the ledger's rules."""

    code = "invalid_block"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ExecutedBlock:
    """A block with everything needed to commit it."""

    block: Block
    """The executed block."""
    changes: dict[bytes, bytes | None]
    """State writes of the whole block."""
    results: tuple[TxResult, ...]
    """One result per transaction."""
    prepared: PreparedState
    """The state tree update, ready to write."""
    next_validator_set: ValidatorSet
    """The validator set that certifies the next height."""

    def result_values(self) -> list[tuple[str, str, Any]]:
        return [(r.code, r.message, [e.to_value() for e in r.events]) for r in self.results]


def compute_block_results_root(txs: Sequence[Transaction],
                               results: Sequence[TxResult]) -> Hash32:
    """The results root of `txs` executed with `results` (chain.results)."""
    return compute_results_root_of_encoded([
        encode_result_leaf(tx.hash, result.code, [event.to_value() for event in result.events])
        for tx, result in zip(txs, results, strict=True)])


BUILD_CHECK_EVERY = 64
"""Transactions executed between two looks at the clock while building a block."""


class BlockExecutor:
    """Executes blocks on top of the store's head; caches results by block hash."""

    def __init__(self, store: ChainStore, ledger: Ledger, chain_id: str,
                 params: ChainParams) -> None:
        self.store = store
        self.params = params
        self.state = _CommittedState(store)
        self.ledger = ledger
        self.chain_id = chain_id
        self._cache: OrderedDict[Hash32, ExecutedBlock] = OrderedDict()
        self.on_executed: Callable[[float], None] = lambda seconds: None
        """Told the seconds each block build or execution took (metrics)."""

    def get_cached(self, block_hash: Hash32) -> ExecutedBlock | None:
        return self._cache.get(block_hash)

    def _remember(self, executed: ExecutedBlock) -> None:
        self._cache[executed.block.hash] = executed
        while len(self._cache) > 16:
            self._cache.popitem(last=False)

    def clear(self) -> None:
        self._cache.clear()

    def on_committed(self) -> None:
        """The head moved: cached executions are stale, and governance may have changed
        the chain parameters."""
        self.clear()
        self.params = self.ledger.get_chain_params(self.state)

    def build(self, *, height: int, round_: int, txs: list[Transaction], proposer: PublicKey,
              timestamp_ms: int, max_seconds: float | None = None,
              ) -> tuple[ExecutedBlock, list[tuple[Transaction, LedgerError]]]:
        """Execute `txs` in order, dropping those that cannot apply, and make the block.

        With `max_seconds`, stops taking transactions once executing them has taken that
        long (checked every BUILD_CHECK_EVERY): the rest are neither included nor
        dropped, they wait for the next block. Returns the executed block and the
        dropped transactions with their reasons.
        """
        started = time.perf_counter()
        deadline = None if max_seconds is None else started + max_seconds
        validator_set = self.store.get_validator_set(height)
        view = Overlay(self.state)
        ctx = BlockContext(self.chain_id, height, timestamp_ms, proposer)
        # The node halts before an upgrade it does not implement (node/upgrades.py), so
        # a refusal here is a bug of ours, not a bad block: it propagates.
        self.ledger.begin_block(view, ctx)
        included: list[Transaction] = []
        results: list[TxResult] = []
        dropped: list[tuple[Transaction, LedgerError]] = []
        for index, tx in enumerate(txs):
            if (deadline is not None and index % BUILD_CHECK_EVERY == 0 and index
                    and time.perf_counter() > deadline):
                break
            try:
                results.append(self.ledger.apply_tx(view, ctx, tx))
            except TxNotApplicable as e:
                dropped.append((tx, e))
                continue
            included.append(tx)
        changes = view.changes()
        prepared = self.store.prepare_state(changes)
        next_set = self.ledger.get_validator_set(view)
        header = BlockHeader(
            chain_id=self.chain_id, height=height, round=round_, timestamp_ms=timestamp_ms,
            prev_hash=self.store.head_hash, proposer=proposer,
            tx_root=compute_tx_root(included),
            results_root=compute_block_results_root(included, results),
            state_root=prepared.root,
            validator_set_hash=validator_set.hash, next_validator_set_hash=next_set.hash)
        executed = ExecutedBlock(Block(header, tuple(included)), changes, tuple(results),
                                 prepared, next_set)
        self._remember(executed)
        self.on_executed(time.perf_counter() - started)
        return executed, dropped

    def execute(self, block: Block) -> ExecutedBlock:
        """Re-execute `block` on the head; raise InvalidBlockError if anything differs.

        The caller has checked the header's links to the head (`validate_header_links`:
        the consensus core does for a proposal, `apply_certified_block` for a certified
        block) and the transaction signatures.
        """
        cached = self._cache.get(block.hash)
        if cached is not None:
            return cached
        started = time.perf_counter()
        header = block.header
        self._validate_limits(block)
        if compute_tx_root(block.txs) != header.tx_root:
            raise InvalidBlockError("tx_root does not match the block's transactions")
        view = Overlay(self.state)
        ctx = BlockContext(self.chain_id, header.height, header.timestamp_ms, header.proposer)
        try:
            self.ledger.begin_block(view, ctx)
        except CorruptStateError:
            raise
        except LedgerError as e:
            raise InvalidBlockError(f"block {header.height}: {e.message}") from e
        results = []
        for index, tx in enumerate(block.txs):
            if tx.chain_id != self.chain_id:
                raise InvalidBlockError(f"transaction {index} is for chain {tx.chain_id!r}")
            try:
                results.append(self.ledger.apply_tx(view, ctx, tx))
            except TxNotApplicable as e:
                raise InvalidBlockError(f"transaction {index} cannot apply: {e}") from e
        results_root = compute_block_results_root(block.txs, results)
        if results_root != header.results_root:
            raise InvalidBlockError(
                f"results root {header.results_root.hex()} differs from the executed "
                f"{results_root.hex()}: a transaction's result code or events differ")
        changes = view.changes()
        prepared = self.store.prepare_state(changes)
        if prepared.root != header.state_root:
            raise InvalidBlockError(
                f"state root {header.state_root.hex()} differs from the executed "
                f"{prepared.root.hex()}")
        next_set = self.ledger.get_validator_set(view)
        if next_set.hash != header.next_validator_set_hash:
            raise InvalidBlockError("next_validator_set_hash differs from the executed state")
        executed = ExecutedBlock(block, changes, tuple(results), prepared, next_set)
        self._remember(executed)
        self.on_executed(time.perf_counter() - started)
        return executed

    def _validate_limits(self, block: Block) -> None:
        params = self.params
        if len(block.txs) > params.max_block_txs:
            raise InvalidBlockError(f"block has {len(block.txs)} transactions; the limit is "
                                    f"{params.max_block_txs}")
        if len(block.encoded) > params.max_block_bytes:
            raise InvalidBlockError(f"block of {len(block.encoded)} bytes exceeds the limit of "
                                    f"{params.max_block_bytes}")
        for index, tx in enumerate(block.txs):
            if len(tx.encoded) > params.max_tx_bytes:
                raise InvalidBlockError(f"transaction {index} of {len(tx.encoded)} bytes exceeds "
                                        f"the limit of {params.max_tx_bytes}")

    def validate_header_links(self, header: BlockHeader) -> None:
        """Raise InvalidBlockError unless `header` follows the head: chain, height,
        parent, time, validator set and the proposer of its round."""
        if header.chain_id != self.chain_id:
            raise InvalidBlockError(f"block is for chain {header.chain_id!r}")
        if header.height != self.store.head_height + 1:
            raise InvalidBlockError(f"block height {header.height} does not follow head "
                                    f"{self.store.head_height}")
        if header.prev_hash != self.store.head_hash:
            raise InvalidBlockError("prev_hash is not the head block's hash")
        if header.timestamp_ms <= self.store.head_timestamp_ms:
            raise InvalidBlockError("timestamp is not after the parent block's")
        validator_set = self.store.get_validator_set(header.height)
        if header.validator_set_hash != validator_set.hash:
            raise InvalidBlockError("validator_set_hash is not the set of this height")
        if header.proposer != validator_set.get_proposer(header.height, header.round):
            raise InvalidBlockError(
                f"proposer is not the validator whose turn it is at height {header.height} "
                f"round {header.round}")


def apply_certified_block(store: ChainStore, executor: BlockExecutor, block: Block,
                          certificate: CommitCertificate, verdicts: Sequence[bool]
                          ) -> ExecutedBlock:
    """Make `block` the store's new head, trusting nothing; raise InvalidBlockError.

    `verdicts` are the signature verdicts of `block.txs`, in order. The certificate must
    prove a quorum of the validator set of the next height for this very block, every
    signature must verify, the header must follow the head, and executing the block
    must reproduce its tx root, results root, state root and next validator set; then everything it
    brings is written in one batch (storage.chain_store.commit_block).
    """
    validate_block_certificate(store, executor.chain_id, block, certificate)
    validate_signature_verdicts(block, verdicts)
    executor.validate_header_links(block.header)
    executed = executor.execute(block)
    store.commit_block(block, certificate, executed.changes, executed.result_values(),
                       executed.next_validator_set, executed.prepared)
    executor.on_committed()
    return executed


def validate_block_certificate(store: ChainStore, chain_id: str, block: Block,
                               certificate: CommitCertificate) -> None:
    """Raise InvalidBlockError unless `certificate` proves a quorum of the validator set
    of the next height for `block` at that height."""
    height = store.head_height + 1
    try:
        validate_certificate(certificate, store.get_validator_set(height), chain_id,
                             height=height, block_hash=block.hash)
    except ChainError as e:
        raise InvalidBlockError(f"commit certificate: {e.message}") from e


def validate_signature_verdicts(block: Block, verdicts: Sequence[bool]) -> None:
    """Raise InvalidBlockError naming the first transaction whose signature failed."""
    assert len(verdicts) == len(block.txs), "one verdict per transaction"
    bad = next((index for index, ok in enumerate(verdicts) if not ok), None)
    if bad is not None:
        raise InvalidBlockError(f"transaction {bad} ({block.txs[bad].hash.hex()}) has a "
                                "bad signature")


class _CommittedState:
    """The store's committed state as a ledger StateReader."""

    def __init__(self, store: ChainStore) -> None:
        self.get = store.get_state
