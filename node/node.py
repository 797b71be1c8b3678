"""The node: one driver task that owns the chain state and runs the consensus core.

Everything that changes chain state happens in `_drive`, one event at a time: the
consensus core's effects are applied in their documented order (persist the sign
state, fsync, then broadcast). RPC and p2p handlers only decode, check, and enqueue.
Block execution runs in a worker thread so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain import codec
from chain.block import Block
from chain.crypto import Address, Hash32
from chain.errors import ChainError
from chain.tx import Transaction, validate_chain_id
from chain.vote import NIL, CommitCertificate, Proposal, ValidatorSet, Vote, validate_certificate
from consensus.core import ConsensusState, compute_timeout_ms
from consensus.events import (
    BlockBuilt,
    BlockValidated,
    Broadcast,
    CommitBlock,
    Effect,
    Event,
    PersistSignState,
    ProposalReceived,
    RecordEvidence,
    RequestBlock,
    ScheduleTimeout,
    StartHeight,
    Step,
    TimeoutFired,
    TimeoutKind,
    TxsAvailable,
    ValidateBlock,
    VoteReceived,
)
from ledger.errors import LedgerError
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.clock import now_ms
from node.config import NodeHome
from node.errors import MempoolError
from node.execution import BlockExecutor, ExecutedBlock, InvalidBlockError
from node.mempool import Mempool, Rejection
from node.verifier import SignatureVerifier
from storage.chain_store import ChainStore

log = logging.getLogger("govchain.node")


@dataclass(frozen=True, slots=True)
class SyncedBlock:
    """A block and certificate fetched from a peer, to be checked and applied."""

    block: Block
    certificate: CommitCertificate
    done: asyncio.Future[bool]
    verdicts: asyncio.Future[list[bool]] | None = None
    """The block's signature verdicts, when their verification was started earlier."""


DriverEvent = Event | SyncedBlock


def encode_sign_state(state: PersistSignState) -> bytes:
    return codec.encode([state.height, state.round, state.step.value, state.block_hash,
                         state.locked_round, state.locked_hash])


def encode_sign_lock(state: PersistSignState) -> bytes:
    block = state.locked_block.to_value() if state.locked_block is not None else None
    return codec.encode([state.height, state.locked_round, state.locked_hash, block,
                         [vote.to_value() for vote in state.lock_votes]])


def decode_sign_state(data: bytes | None, lock: bytes | None) -> PersistSignState | None:
    """The persisted sign state with its lock (the lock only if it is of the same height)."""
    if data is None:
        return None
    height, round_, step, block_hash, locked_round, locked_hash = codec.decode(data)
    locked_block = None
    lock_votes: tuple[Vote, ...] = ()
    if lock is not None:
        lock_height, lock_round, lock_hash, block_value, vote_values = codec.decode(lock)
        if (lock_height, lock_round, lock_hash) == (height, locked_round, locked_hash) \
                and block_value is not None:
            locked_block = Block.from_value(block_value)
            lock_votes = tuple(Vote.from_value(v) for v in vote_values)
    return PersistSignState(height, round_, Step(step), Hash32(block_hash), locked_round,
                            Hash32(locked_hash), locked_block, lock_votes)


BUILD_SHARE_OF_PROPOSE_TIMEOUT = 0.4
"""A proposer stops adding transactions to its block when executing them has taken this
share of the round's propose timeout (400 ms of round 0's 1 s by default), leaving the
rest of the timeout for sending the proposal and for the validators to receive it."""


# Refusals that no later state can undo: the same bytes will be refused again.
PERMANENT_REJECTIONS = frozenset({"bad_signature", "malformed", "wrong_chain", "too_large",
                                  "nonce_too_low", "nonce_used"})


class Node:
    """A govchain node: state, mempool, consensus driver; p2p and RPC plug in."""

    def __init__(self, home: NodeHome) -> None:
        self.home = home
        self.genesis = home.genesis
        self.chain_id = home.genesis.chain_id
        self.params = home.genesis.params
        self.store = ChainStore.open(str(home.data_dir), home.genesis,
                                     retain_blocks=home.config.retain_blocks)
        self.ledger = Ledger(default_modules())
        if not self.store.is_initialized:
            view = Overlay({})  # genesis applies over an empty state
            self.ledger.apply_genesis(view, home.genesis)
            self.store.commit_genesis(view.changes(), home.genesis.validator_set)
        self.executor = BlockExecutor(self.store, self.ledger, self.chain_id, self.params)
        self.state = self.executor.state
        # Governance may have changed them since genesis.
        self.params = self.executor.params = self.ledger.get_chain_params(self.state)
        self.verifier = SignatureVerifier(home.config.verify_workers)
        # Account nonces of the committed state, read once per height (cleared on commit).
        self._nonces: dict[Address, int] = {}
        self.mempool = Mempool(
            get_nonce=self._get_committed_nonce,
            max_txs=home.config.mempool_max_txs, max_bytes=home.config.mempool_max_bytes,
            max_per_sender=home.config.mempool_max_per_sender,
            ttl_s=home.config.mempool_tx_ttl_s)
        self._guard_until_height = 0
        self._sign_state = decode_sign_state(self.store.load_sign_state(),
                                             self.store.load_sign_lock())
        self._persisted_lock = ((self._sign_state.height, self._sign_state.locked_round,
                                 self._sign_state.locked_hash) if self._sign_state else None)
        self.core = ConsensusState(self.chain_id, home.validator_key, self.params,
                                   self._sign_state)
        self.started_at = time.monotonic()
        self._events: asyncio.Queue[DriverEvent] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._decided: tuple[int, float] = (-1, 0.0)
        """(height, loop time) of the last block this node began to commit."""
        self._final_waiters: dict[Hash32, list[asyncio.Future[None]]] = {}
        self._commit_listeners: list[Callable[[ExecutedBlock, CommitCertificate], None]] = []
        self._txs_signalled_height = -1
        self._next_expiry_at = 0.0
        self.broadcast_message: Callable[[Proposal | Vote], None] = lambda message: None
        self.broadcast_txs: Callable[[list[Transaction]], None] = lambda txs: None
        self.on_evidence: Callable[[Vote, Vote], None] = lambda a, b: None
        self.on_admission: Callable[[list[MempoolError | None]], None] = lambda errors: None
        """Told each admission batch's verdicts (metrics)."""

    # ------------------------------------------------------------------ lifecycle

    def needs_double_sign_guard(self) -> bool:
        """True when this validator has no record of what it signed."""
        return self.home.validator_key is not None and self._sign_state is None

    def arm_double_sign_guard(self, network_height: int) -> None:
        """Restart the core in guarded mode: it signs only once it has watched the network.

        Called before `run` when the validator has no sign state but the network is
        already past genesis (its data directory was lost, or it is a new validator).
        Any signature it could have made before is at a height the network had not yet
        finalized, so at most `network_height + 1`: once that height is final here, the
        guard is lifted (docs/consensus.md).
        """
        log.warning("no record of earlier signatures and the chain is past genesis: this "
                    "validator will watch the network until height %d is final before it "
                    "signs freely again", network_height + 1)
        self.core = ConsensusState(self.chain_id, self.home.validator_key, self.params, None,
                                   fresh_start=True)
        self._guard_until_height = network_height + 1

    async def run(self) -> None:
        """The driver: start at head + 1, then apply events until cancelled."""
        self.verifier.start()
        await self._step(self._start_height_event())
        while True:
            event = await self._events.get()
            if isinstance(event, SyncedBlock):
                await self._apply_synced(event)
            else:
                await self._step(event)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.verifier.close()
        self.store.close()

    def enqueue(self, event: DriverEvent) -> None:
        self._events.put_nowait(event)

    def add_commit_listener(self, listener: Callable[[ExecutedBlock, CommitCertificate],
                                                     None]) -> None:
        self._commit_listeners.append(listener)

    def _start_height_event(self) -> StartHeight:
        height = self.store.head_height + 1
        return StartHeight(height, self.store.get_validator_set(height), self.store.head_hash,
                           self.store.head_timestamp_ms)

    # ------------------------------------------------------------------ consensus

    async def _step(self, event: Event) -> None:
        effects = self.core.process_event(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("h=%d r=%d %s %s -> %s", self.core.height, self.core.round,
                      self.core.step.value, _describe(event),
                      ", ".join(_describe(e) for e in effects) or "-")
        await self._apply_effects(effects)

    async def _apply_effects(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, PersistSignState):
                # Durable before the signature it protects leaves this process.
                await asyncio.to_thread(self._persist_sign_state, effect)
            elif isinstance(effect, Broadcast):
                self.broadcast_message(effect.message)
            elif isinstance(effect, ScheduleTimeout):
                self._schedule(effect)
            elif isinstance(effect, RequestBlock):
                await self._build_block(effect)
            elif isinstance(effect, ValidateBlock):
                await self._validate_block(effect.block)
            elif isinstance(effect, CommitBlock):
                await self._commit(effect.block, effect.certificate)
            elif isinstance(effect, RecordEvidence):
                self._record_evidence(effect.first, effect.second)

    def _persist_sign_state(self, state: PersistSignState) -> None:
        lock_id = (state.height, state.locked_round, state.locked_hash)
        lock = None
        if state.locked_block is not None and lock_id != self._persisted_lock:
            lock = encode_sign_lock(state)
        self.store.save_sign_state(encode_sign_state(state), lock)
        if lock is not None:
            self._persisted_lock = lock_id

    def _get_committed_nonce(self, address: Address) -> int:
        nonce = self._nonces.get(address)
        if nonce is None:
            nonce = self._nonces[address] = self.ledger.get_nonce(self.state, address)
        return nonce

    def _schedule(self, effect: ScheduleTimeout) -> None:
        loop = asyncio.get_running_loop()
        event = TimeoutFired(effect.height, effect.round, effect.kind)
        delay_s = effect.delay_ms / 1000
        decided_height, decided_at = self._decided
        if (effect.kind is TimeoutKind.BLOCK_INTERVAL and effect.height == decided_height + 1
                and self._is_first_proposer(effect.height)):
            # The proposer counts the interval from its decision, not from the end of
            # its commit: if it was slow to commit (on oversubscribed cores it often
            # is), it does not add the whole interval on top of that delay while the
            # others' propose timeouts run. The others still wait the interval after
            # their commit before they start those timeouts.
            delay_s = max(0.0, delay_s - (loop.time() - decided_at))

        def fire() -> None:
            self._timers.discard(handle)
            self.enqueue(event)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    def _is_first_proposer(self, height: int) -> bool:
        """True when this node proposes round 0 of `height` (the core is at `height`)."""
        key, validator_set = self.home.validator_key, self.core.validator_set
        return (key is not None and validator_set is not None and self.core.height == height
                and validator_set.get_proposer(height, 0) == key.public_key)

    async def _build_block(self, request: RequestBlock) -> None:
        assert self.home.validator_key is not None
        txs = self.mempool.reap(self.params.max_block_txs, self.params.max_block_bytes)
        timestamp_ms = max(now_ms(), request.min_timestamp_ms)
        # The other validators' propose timeout runs while we build: a block that takes
        # longer to execute than the timeout is prevoted nil by all of them, and the next
        # round's proposer has even more to build. Stop taking transactions at a share
        # of the timeout; the rest go in the next block.
        budget_s = BUILD_SHARE_OF_PROPOSE_TIMEOUT * compute_timeout_ms(
            self.params, TimeoutKind.PROPOSE, request.round) / 1000
        executed, dropped = await asyncio.to_thread(
            self.executor.build, height=request.height, round_=request.round, txs=txs,
            proposer=self.home.validator_key.public_key, timestamp_ms=timestamp_ms,
            max_seconds=budget_s)
        for tx, error in dropped:
            self.mempool.drop_invalid(tx.hash, Rejection(error.code, error.message, "execution"))
            self._resolve_waiters(tx.hash)
        cut = len(txs) - len(executed.block.txs) - len(dropped)
        log.debug("built block %d round %d with %d txs of %d reaped (%d left for the next "
                  "block by the %.0f ms budget; %d pending in the mempool)", request.height,
                  request.round, len(executed.block.txs), len(txs), cut, budget_s * 1000,
                  len(self.mempool))
        # Answered at once, ahead of queued events: building is part of this step.
        await self._step(BlockBuilt(request.height, request.round, executed.block))

    async def _validate_block(self, block: Block) -> None:
        valid = True
        try:
            verdicts = await self.verifier.verify(block.txs)
            if not all(verdicts):
                raise InvalidBlockError(f"transaction {verdicts.index(False)} has a bad signature")
            await asyncio.to_thread(self.executor.execute, block)
        except InvalidBlockError as e:
            log.warning("block %d %s... from %s is invalid: %s", block.height,
                        block.hash.hex()[:12], block.header.proposer.hex()[:12], e.message)
            valid = False
        # Answered at once, ahead of any timeout that fired meanwhile: validation is part
        # of receiving the proposal (Algorithm 1, line 22), so a block that takes longer
        # than timeout_propose to check is still voted on.
        await self._step(BlockValidated(block.hash, valid))

    async def _commit(self, block: Block, certificate: CommitCertificate) -> None:
        self._decided = (block.height, asyncio.get_running_loop().time())
        executed = self.executor.get_cached(block.hash)
        if executed is None:
            executed = await asyncio.to_thread(self.executor.execute, block)
        await asyncio.to_thread(
            self.store.commit_block, block, certificate, executed.changes,
            executed.result_values(), executed.next_validator_set, executed.prepared)
        self.executor.clear()
        self.verifier.forget_final(block.txs)
        if block.height >= self._guard_until_height > 0:
            self.core.lift_double_sign_guard()
            self._guard_until_height = 0
            log.info("height %d is final: this validator signs freely again", block.height)
        self._nonces.clear()
        self.params = self.core.params = self.executor.params = \
            self.ledger.get_chain_params(self.state)
        self.mempool.update_after_commit(block.txs)
        self._expire_mempool()
        log.info("final block %d %s... txs=%d round=%d", block.height, block.hash.hex()[:12],
                 len(block.txs), certificate.round)
        for tx_hash in [h for h in self._final_waiters if h not in self.mempool]:
            self._resolve_waiters(tx_hash)  # final, or evicted because its nonce was used
        for listener in self._commit_listeners:
            listener(executed, certificate)
        self._txs_signalled_height = -1
        await self._step(self._start_height_event())
        self._signal_txs_available()

    async def _apply_synced(self, item: SyncedBlock) -> None:
        """Check a block fetched from a peer against its certificate, then commit it."""
        block, certificate = item.block, item.certificate
        if block.height <= self.store.head_height:
            # Consensus committed it first; the copy from a peer is not needed.
            if not item.done.done():
                item.done.set_result(True)
            return
        try:
            if block.height != self.store.head_height + 1:
                raise InvalidBlockError(f"block {block.height} does not follow head "
                                        f"{self.store.head_height}")
            validate_certificate(certificate, self.store.get_validator_set(block.height),
                                 self.chain_id, height=block.height, block_hash=block.hash)
            verdicts = await (item.verdicts or self.verifier.verify(block.txs))
            if not all(verdicts):
                raise InvalidBlockError("a transaction has a bad signature")
            await asyncio.to_thread(self.executor.execute, block)
        except (InvalidBlockError, ChainError) as e:
            log.warning("synced block %d rejected: %s", block.height, getattr(e, "message", e))
            if not item.done.done():
                item.done.set_result(False)
            return
        await self._commit(block, certificate)
        if not item.done.done():
            item.done.set_result(True)

    def _record_evidence(self, first: Vote, second: Vote) -> None:
        log.warning("equivocation by validator %s... at height %d round %d",
                    first.validator.hex()[:12], first.height, first.round)
        self.store.add_evidence(codec.encode([first.to_value(), second.to_value()]))
        self.on_evidence(first, second)

    # ------------------------------------------------------------------ transactions

    def _signal_txs_available(self) -> None:
        if len(self.mempool) and self._txs_signalled_height != self.core.height:
            self._txs_signalled_height = self.core.height
            self.enqueue(TxsAvailable())

    async def submit_txs(self, txs: list[Transaction], *, relay: bool = True
                         ) -> list[MempoolError | None]:
        """Admit `txs` to the mempool; one error (or None) per tx, in order."""
        verdicts = await self.verifier.verify(txs)
        errors = [self._admit(tx, ok) for tx, ok in zip(txs, verdicts, strict=True)]
        for tx in txs:
            if tx.hash not in self.mempool:
                self.verifier.forget(tx.hash)  # refused, or already final: not on its way
        self.on_admission(errors)
        if relay:
            self.broadcast_txs([tx for tx, e in zip(txs, errors, strict=True) if e is None])
        self._signal_txs_available()
        return errors

    def _admit(self, tx: Transaction, signature_ok: bool) -> MempoolError | None:
        try:
            validate_chain_id(tx, self.chain_id)
            if len(tx.encoded) > self.params.max_tx_bytes:
                raise MempoolError("too_large", f"transaction of {len(tx.encoded)} bytes "
                                   f"exceeds the limit of {self.params.max_tx_bytes}")
            if not signature_ok:
                raise MempoolError("bad_signature", "a signature does not verify over the "
                                   "transaction's signing bytes")
            if tx.hash in self.mempool:
                return None  # already pending: idempotent
            try:
                self.mempool.add(tx, check=self._check_admission)
            except MempoolError as e:
                # Only a transaction whose nonce is used can be final already: look it
                # up then, not for every submission.
                if e.code == "nonce_too_low" and \
                        self.store.get_tx_location(tx.hash) is not None:
                    return None  # already final: idempotent
                raise
        except MempoolError as e:
            if e.code != "mempool_full":
                self.mempool.record_rejection(tx.hash, Rejection(e.code, e.message, "admission"))
            return e
        except ChainError as e:
            error = MempoolError(e.code, e.message)
            self.mempool.record_rejection(tx.hash, Rejection(e.code, e.message, "admission"))
            return error
        return None

    def _check_admission(self, tx: Transaction, account_nonce: int) -> None:
        try:
            self.ledger.check_admission(self.state, tx, expected_nonce=account_nonce)
        except LedgerError as e:
            raise MempoolError(e.code, e.message) from e

    def _expire_mempool(self) -> None:
        """Drop txs pending longer than the TTL, at most once a second (on commits)."""
        now = time.monotonic()
        if now < self._next_expiry_at:
            return
        self._next_expiry_at = now + 1.0
        if self.mempool.expire(now):
            for tx_hash in [h for h in self._final_waiters if h not in self.mempool]:
                self._resolve_waiters(tx_hash)

    def flush_mempool(self) -> int:
        """Drop every pending tx (admin); each reports rejected, where eviction."""
        count = self.mempool.flush()
        for tx_hash in list(self._final_waiters):
            self._resolve_waiters(tx_hash)
        return count

    def is_recently_seen(self, tx_hash: Hash32) -> bool:
        """True for a tx that is final or that this node refused for good (its bytes are
        wrong, or its nonce is used): no need to decode it again."""
        rejection = self.mempool.get_rejection(tx_hash)
        if rejection is not None and rejection.code in PERMANENT_REJECTIONS:
            return True
        return self.store.get_tx_location(tx_hash) is not None

    def _resolve_waiters(self, tx_hash: Hash32) -> None:
        for future in self._final_waiters.pop(tx_hash, []):
            if not future.done():
                future.set_result(None)

    async def wait_final(self, tx_hash: Hash32, timeout_s: float) -> None:
        """Return once the tx is final or rejected, or after `timeout_s`."""
        if self.store.get_tx(tx_hash) is not None or tx_hash not in self.mempool:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._final_waiters.setdefault(tx_hash, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            pass
        finally:
            waiters = self._final_waiters.get(tx_hash)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._final_waiters[tx_hash]

    # ------------------------------------------------------------------ reads

    def get_admitted_status(self, tx_hash: Hash32) -> str:
        """The status of a transaction admission just accepted: pending, or final when
        it was already committed (submitting it again is idempotent)."""
        if tx_hash in self.mempool:
            return "pending"
        return str(self.get_tx_status(tx_hash)["status"])

    def get_tx_status(self, tx_hash: Hash32) -> dict[str, Any]:
        record = self.store.get_tx(tx_hash)
        if record is not None:
            status = "final" if record.code == "ok" else "rejected"
            doc: dict[str, Any] = {"hash": tx_hash.hex(), "status": status,
                                   "height": record.height, "index": record.index,
                                   "code": record.code, "message": record.message,
                                   "events": [{"kind": kind, "attributes": attributes}
                                              for kind, attributes in record.events]}
            if status == "rejected":
                doc["where"] = "execution"
            return doc
        pending = self.mempool.get(tx_hash)
        if pending is not None:
            return {"hash": tx_hash.hex(), "status": "pending",
                    "waiting_for": self.mempool.get_wait_reason(pending)}
        rejection = self.mempool.get_rejection(tx_hash)
        if rejection is not None:
            return {"hash": tx_hash.hex(), "status": "rejected", "code": rejection.code,
                    "message": rejection.message, "where": rejection.where}
        base = self.store.base_height
        if base > 1:  # a pruned block's transactions are no longer indexed here
            return {"hash": tx_hash.hex(), "status": "pruned", "pruned_below": base}
        return {"hash": tx_hash.hex(), "status": "unknown"}

    def get_account(self, address: Address) -> dict[str, Any]:
        """Raises LedgerError (unknown_account) for an address with no account."""
        account = self.ledger.get_account(self.state, address)
        return {**account, "next_nonce": self.mempool.next_nonce(address),
                "pending": self.mempool.pending_count(address)}

    def validator_set(self, height: int | None = None) -> ValidatorSet:
        return self.store.get_validator_set(height or self.store.head_height + 1)


def _describe(item: object) -> str:
    """A short description of an event or effect for DEBUG logs."""
    name = type(item).__name__
    if isinstance(item, VoteReceived | Broadcast):
        message = item.vote if isinstance(item, VoteReceived) else item.message
        if isinstance(message, Vote):
            return (f"{name}({message.kind.name} {message.round} "
                    f"{message.block_hash.hex()[:8] or 'nil'} by "
                    f"{message.validator.hex()[:8]})")
        return f"{name}(proposal r{message.round} {message.block.hash.hex()[:8]})"
    if isinstance(item, TimeoutFired | ScheduleTimeout):
        return f"{name}({item.kind.value} r{item.round})"
    if isinstance(item, ProposalReceived):
        return f"{name}(r{item.proposal.round} {item.proposal.block.hash.hex()[:8]})"
    return name


__all__ = ["NIL", "Node", "SyncedBlock"]
