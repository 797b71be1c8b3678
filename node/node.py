"""The node: one driver task that owns the chain state and runs the consensus core.

Everything that changes chain state happens in `run`, one queued event at a time
(`_step`): the consensus core's effects are applied in their documented order
(persist the sign state, fsync, then broadcast), and the events that answer effects
go on the step's work list, never back into the core from inside its effects. RPC
and p2p handlers only decode, check, and enqueue. Block execution and disk writes run
on the worker (a thread) so the event loop keeps answering; the clock, the worker and
the verifier are handed in (node/runtime.py), so the simulation runs this very driver.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from chain import codec
from chain.block import Block
from chain.crypto import Address, Hash32, KeyPair, PublicKey
from chain.tx import Transaction
from chain.vote import NIL, CommitCertificate, Proposal, ValidatorSet, Vote
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
    RequestSignature,
    ScheduleTimeout,
    SignatureReady,
    StartHeight,
    Step,
    TimeoutFired,
    TimeoutKind,
    TxsAvailable,
    ValidateBlock,
    VoteReceived,
)
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from ledger.upgrades import Upgrade
from node.admission import Admission, CommittedNonces
from node.config import NodeHome
from node.errors import ConfigError, MempoolError
from node.execution import (
    BlockExecutor,
    ExecutedBlock,
    InvalidBlockError,
    apply_certified_block,
    validate_signature_verdicts,
)
from node.mempool import Mempool
from node.private import PrivateVault
from node.rejection import Rejection, RejectionCode, Where
from node.runtime import Clock, SystemClock, ThreadWorker, Timer, Verifier, Worker
from node.signer.client import RemoteSigner, build_client_tls
from node.signer.server import ListenAddress
from node.upgrades import UpgradeHalt, get_upgrade_halt, load_known_upgrades
from node.verifier import VERDICTS_BEYOND_MEMPOOL, SignatureVerifier
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


class Node:
    """A govchain node: state, mempool, consensus driver; p2p and RPC plug in."""

    def __init__(self, home: NodeHome, *, store: ChainStore | None = None,
                 clock: Clock | None = None, worker: Worker | None = None,
                 verifier: Verifier | None = None,
                 upgrades: Mapping[str, Upgrade] | None = None) -> None:
        """The driver's I/O defaults to the real one (node/runtime.py): the LevelDB store
        of the home's data directory, the system clock and the event loop's timers,
        worker threads, and the signature worker processes. `upgrades` are those this
        version implements (default: node.upgrades.load_known_upgrades())."""
        self.home = home
        self.genesis = home.genesis
        self.chain_id = home.genesis.chain_id
        self.params = home.genesis.params
        self.store = store if store is not None else ChainStore.open(
            str(home.data_dir), home.genesis, retain_blocks=home.config.retain_blocks)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.worker: Worker = worker if worker is not None else ThreadWorker()
        self.ledger = Ledger(default_modules(),
                             load_known_upgrades() if upgrades is None else upgrades)
        if not self.store.is_initialized:
            view = Overlay({})  # genesis applies over an empty state
            self.ledger.apply_genesis(view, home.genesis)
            self.store.commit_genesis(view.changes(), home.genesis.validator_set)
        self.executor = BlockExecutor(self.store, self.ledger, self.chain_id, self.params)
        self.state = self.executor.state
        # Governance may have changed them since genesis.
        self.params = self.executor.params = self.ledger.get_chain_params(self.state)
        config = home.config
        self.verifier: Verifier = (verifier if verifier is not None else SignatureVerifier(
            config.verify_workers, cache_size=config.mempool_max_txs + VERDICTS_BEYOND_MEMPOOL))
        # Account nonces of the committed state, read once per height (cleared on commit).
        self._nonces = CommittedNonces(lambda address: self.ledger.get_nonce(self.state,
                                                                             address))
        self.mempool = Mempool(
            get_nonce=self._nonces.get, max_txs=config.mempool_max_txs,
            max_bytes=config.mempool_max_bytes, max_per_sender=config.mempool_max_per_sender,
            ttl_s=config.mempool_tx_ttl_s, max_rejections=config.mempool_max_rejections,
            on_evicted=self.verifier.forget,
            clock_s=lambda: self.clock.monotonic_ms() / 1000)
        self.admission = Admission(
            chain_id=self.chain_id, ledger=self.ledger, state=self.state,
            get_params=lambda: self.params, mempool=self.mempool, verifier=self.verifier,
            store=self.store)
        self._guard_until_height = 0
        self._sign_state = decode_sign_state(self.store.load_sign_state(),
                                             self.store.load_sign_lock())
        self._persisted_lock = ((self._sign_state.height, self._sign_state.locked_round,
                                 self._sign_state.locked_hash) if self._sign_state else None)
        self.signer_client = _build_signer_client(home)
        """The link to a signer process, or None when the key is in this process."""
        if self.signer_client is not None:
            self.signer_client.on_signed = lambda m: self.enqueue(SignatureReady(m))
        self.core = ConsensusState(self.chain_id, self._consensus_key(), self.params,
                                   self._sign_state)
        self.started_at = time.monotonic()
        self._events: asyncio.Queue[DriverEvent] = asyncio.Queue()
        self._timers: set[Timer] = set()
        self._decided: tuple[int, int] = (-1, 0)
        """(height, monotonic ms) of the last block this node began to commit."""
        self._final_waiters: dict[Hash32, list[asyncio.Future[None]]] = {}
        self._commit_listeners: list[Callable[[ExecutedBlock, CommitCertificate], None]] = []
        self._txs_signalled_height = -1
        self._next_expiry_at = 0.0
        self.broadcast_message: Callable[[Proposal | Vote], None] = lambda message: None
        self.broadcast_txs: Callable[[list[Transaction]], None] = lambda txs: None
        self.on_evidence: Callable[[Vote, Vote], None] = lambda a, b: None
        self.on_admission: Callable[[list[MempoolError | None]], None] = lambda errors: None
        """Told each admission batch's verdicts (metrics)."""
        self.upgrade_halt: UpgradeHalt | None = self.get_upgrade_halt()
        """Set once an upgrade this version does not implement is due: the driver stops
        (at start already, if the chain is there)."""
        self.on_upgrade_halt: Callable[[UpgradeHalt], None] = lambda halt: None
        """Told when the driver halts for an upgrade (the service stops the process)."""
        self.on_step: Callable[[Event, list[Effect]], None] = self._log_step
        """Told each event the core takes and the effects it answers, before they are
        applied: a DEBUG line by default; the simulation keeps its trace with it."""
        self.private = PrivateVault(self)
        """Private record payloads this node holds, reads and the read log (node/private.py)."""

    # ------------------------------------------------------------------ lifecycle

    def needs_double_sign_guard(self) -> bool:
        """True when this validator has no record of what it signed."""
        return self.home.validator_public_key is not None and self._sign_state is None

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
        self.core = ConsensusState(self.chain_id, self._consensus_key(), self.params, None,
                                   fresh_start=True)
        self._guard_until_height = network_height + 1

    def get_upgrade_halt(self) -> UpgradeHalt | None:
        """The upgrade halt due at the head, or None (node/upgrades.py)."""
        return get_upgrade_halt(self.state, self.store.head_height, self.ledger.upgrades)

    def _consensus_key(self) -> KeyPair | PublicKey | None:
        """The key pair when this process signs, the public key alone with a signer."""
        if self.signer_client is not None:
            return self.signer_client.public_key
        return self.home.validator_key

    async def run(self) -> None:
        """The driver: start at head + 1, then apply events until cancelled, or until it
        halts for an upgrade (then it returns)."""
        self.verifier.start()
        if self.upgrade_halt is None:
            await self._step(self._start_height_event())
        while self.upgrade_halt is None:
            await self._step(await self._events.get())
        self._on_halted()

    def _on_halted(self) -> None:
        """Nothing more is decided here: timers off, waiting fetchers and clients told."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        while not self._events.empty():
            item = self._events.get_nowait()
            if isinstance(item, SyncedBlock) and not item.done.done():
                item.done.set_result(True)  # not the peer's fault: we stop here
        for tx_hash in list(self._final_waiters):
            self._resolve_waiters(tx_hash)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.verifier.close()
        self.private.close()
        self.store.close()

    def enqueue(self, event: DriverEvent) -> None:
        if self.upgrade_halt is not None:
            # Halted: nothing is taken any more, so nothing may pile up either.
            if isinstance(event, SyncedBlock) and not event.done.done():
                event.done.set_result(True)  # not the peer's fault: we stop here
            return
        self._events.put_nowait(event)

    def add_commit_listener(self, listener: Callable[[ExecutedBlock, CommitCertificate],
                                                     None]) -> None:
        self._commit_listeners.append(listener)

    def _start_height_event(self) -> StartHeight:
        height = self.store.head_height + 1
        return StartHeight(height, self.store.get_validator_set(height), self.store.head_hash,
                           self.store.head_timestamp_ms)

    # ------------------------------------------------------------------ consensus

    async def _step(self, event: DriverEvent) -> None:
        """Apply `event` and everything it leads to, before the next queued event.

        The core's effects are applied in list order. An effect answered by an event of
        its own (RequestBlock by BlockBuilt, ValidateBlock by BlockValidated, CommitBlock
        and a synced block by StartHeight) puts that event on this step's work list,
        which is taken in order once the current effects are applied: the answer comes
        at once, ahead of queued events, and the core is never re-entered while its
        effects are being applied.
        """
        work: deque[DriverEvent] = deque([event])
        committed = False
        while work and self.upgrade_halt is None:
            item = work.popleft()
            if isinstance(item, SyncedBlock):
                follow_ups = await self._apply_synced(item)
                committed = committed or bool(follow_ups)
                work.extend(follow_ups)
                continue
            effects = self.core.process_event(item)
            self.on_step(item, effects)
            for effect in effects:
                follow_up = await self._apply_effect(effect)
                if follow_up is not None:
                    committed = committed or isinstance(effect, CommitBlock)
                    work.append(follow_up)
        if committed:
            # Queued, not on the work list: like any TxsAvailable, it waits its turn.
            self._signal_txs_available()

    def _log_step(self, event: Event, effects: list[Effect]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("h=%d r=%d %s %s -> %s", self.core.height, self.core.round,
                      self.core.step.value, _describe(event),
                      ", ".join(_describe(e) for e in effects) or "-")

    async def _apply_effect(self, effect: Effect) -> Event | None:
        """Do what `effect` asks; return the event that answers it, if it has one."""
        if isinstance(effect, PersistSignState):
            # Durable before the signature it protects leaves this process.
            await self.worker.run(self._persist_sign_state, effect)
        elif isinstance(effect, Broadcast):
            self.broadcast_message(effect.message)
        elif isinstance(effect, ScheduleTimeout):
            self._schedule(effect)
        elif isinstance(effect, RequestBlock):
            return await self._build_block(effect)
        elif isinstance(effect, ValidateBlock):
            return await self._validate_block(effect.block)
        elif isinstance(effect, CommitBlock):
            # The block's verdicts are cached since its validation (or admission).
            return await self._commit(effect.block, effect.certificate,
                                      await self.verifier.verify(effect.block.txs))
        elif isinstance(effect, RecordEvidence):
            self._record_evidence(effect.first, effect.second)
        elif isinstance(effect, RequestSignature):
            # Answered later by SignatureReady, through the queue (or never).
            assert self.signer_client is not None, "a core with a key pair signs itself"
            self.signer_client.submit(effect.message)
        else:
            assert_never(effect)
        return None

    def _persist_sign_state(self, state: PersistSignState) -> None:
        lock_id = (state.height, state.locked_round, state.locked_hash)
        lock = None
        if state.locked_block is not None and lock_id != self._persisted_lock:
            lock = encode_sign_lock(state)
        self.store.save_sign_state(encode_sign_state(state), lock)
        if lock is not None:
            self._persisted_lock = lock_id

    def _schedule(self, effect: ScheduleTimeout) -> None:
        event = TimeoutFired(effect.height, effect.round, effect.kind)
        delay_ms = effect.delay_ms
        decided_height, decided_at_ms = self._decided
        if (effect.kind is TimeoutKind.BLOCK_INTERVAL and effect.height == decided_height + 1
                and self._is_first_proposer(effect.height)):
            # The proposer counts the interval from its decision, not from the end of
            # its commit: if it was slow to commit (on oversubscribed cores it often
            # is), it does not add the whole interval on top of that delay while the
            # others' propose timeouts run. The others still wait the interval after
            # their commit before they start those timeouts.
            delay_ms = max(0, delay_ms - (self.clock.monotonic_ms() - decided_at_ms))

        def fire() -> None:
            self._timers.discard(handle)
            self.enqueue(event)

        handle = self.clock.call_later(delay_ms, fire)
        self._timers.add(handle)

    def _is_first_proposer(self, height: int) -> bool:
        """True when this node proposes round 0 of `height` (the core is at `height`)."""
        key, validator_set = self.home.validator_public_key, self.core.validator_set
        return (key is not None and validator_set is not None and self.core.height == height
                and validator_set.get_proposer(height, 0) == key)

    async def _build_block(self, request: RequestBlock) -> BlockBuilt:
        proposer = self.home.validator_public_key
        assert proposer is not None
        txs = self.mempool.reap(self.params.max_block_txs, self.params.max_block_bytes)
        timestamp_ms = max(self.clock.now_ms(), request.min_timestamp_ms)
        # The other validators' propose timeout runs while we build: a block that takes
        # longer to execute than the timeout is prevoted nil by all of them, and the next
        # round's proposer has even more to build. Stop taking transactions at a share
        # of the timeout; the rest go in the next block.
        budget_s = BUILD_SHARE_OF_PROPOSE_TIMEOUT * compute_timeout_ms(
            self.params, TimeoutKind.PROPOSE, request.round) / 1000
        executed, dropped = await self.worker.run(
            self.executor.build, height=request.height, round_=request.round, txs=txs,
            proposer=proposer, timestamp_ms=timestamp_ms,
            max_seconds=budget_s)
        for tx, error in dropped:
            self.mempool.drop_invalid(tx.hash, Rejection.of(error.code, error.message,
                                                            Where.EXECUTION))
            self._resolve_waiters(tx.hash)
        cut = len(txs) - len(executed.block.txs) - len(dropped)
        log.debug("built block %d round %d with %d txs of %d reaped (%d left for the next "
                  "block by the %.0f ms budget; %d pending in the mempool)", request.height,
                  request.round, len(executed.block.txs), len(txs), cut, budget_s * 1000,
                  len(self.mempool))
        # Answered at once, ahead of queued events: building is part of this step.
        return BlockBuilt(request.height, request.round, executed.block)

    async def _validate_block(self, block: Block) -> BlockValidated:
        valid = True
        try:
            validate_signature_verdicts(block, await self.verifier.verify(block.txs))
            await self.worker.run(self.executor.execute, block)
        except InvalidBlockError as e:
            log.warning("block %d %s... from %s is invalid: %s", block.height,
                        block.hash.hex()[:12], block.header.proposer.hex()[:12], e.message)
            valid = False
        # Answered at once, ahead of any timeout that fired meanwhile: validation is part
        # of receiving the proposal (Algorithm 1, line 22), so a block that takes longer
        # than timeout_propose to check is still voted on.
        return BlockValidated(block.hash, valid)

    async def _commit(self, block: Block, certificate: CommitCertificate,
                      verdicts: list[bool]) -> StartHeight:
        """Apply a certified block, decided here or fetched by sync; answer the start of
        the next height. Raises InvalidBlockError (and commits nothing) if it fails."""
        decided_at_ms = self.clock.monotonic_ms()
        executed = await self.worker.run(apply_certified_block, self.store, self.executor,
                                         block, certificate, verdicts)
        self._decided = (block.height, decided_at_ms)
        self.verifier.forget_final(block.txs)
        if block.height >= self._guard_until_height > 0:
            self.core.lift_double_sign_guard()
            self._guard_until_height = 0
            log.info("height %d is final: this validator signs freely again", block.height)
        self._nonces.clear()
        self.params = self.core.params = self.executor.params
        self.mempool.update_after_commit(block.txs)
        self._expire_mempool()
        log.info("final block %d %s... txs=%d round=%d", block.height, block.hash.hex()[:12],
                 len(block.txs), certificate.round)
        for tx_hash in [h for h in self._final_waiters if h not in self.mempool]:
            self._resolve_waiters(tx_hash)  # final, or evicted because its nonce was used
        for listener in self._commit_listeners:
            listener(executed, certificate)
        self._txs_signalled_height = -1
        halt = self.get_upgrade_halt()
        if halt is not None:
            self.upgrade_halt = halt
            log.error("%s", halt.message)
            self.on_upgrade_halt(halt)
        return self._start_height_event()

    async def _apply_synced(self, item: SyncedBlock) -> list[Event]:
        """Apply a block fetched from a peer and tell the fetcher whether it was good;
        answer the start of the next height if it was applied."""
        block, certificate = item.block, item.certificate
        if block.height <= self.store.head_height:
            # Consensus committed it first; the copy from a peer is not needed.
            if not item.done.done():
                item.done.set_result(True)
            return []
        verdicts = await (item.verdicts or self.verifier.verify(block.txs))
        try:
            start_height = await self._commit(block, certificate, verdicts)
        except InvalidBlockError as e:
            log.warning("synced block %d rejected: %s", block.height, e.message)
            if not item.done.done():
                item.done.set_result(False)
            return []
        if not item.done.done():
            item.done.set_result(True)
        return [start_height]

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
        """Admit `txs` to the mempool (node/admission.py); one error (or None) per tx, in
        order. The admitted ones are relayed to peers unless `relay` is false."""
        if self.upgrade_halt is not None:
            halted = MempoolError(RejectionCode.HALTED_FOR_UPGRADE, self.upgrade_halt.message)
            return [halted] * len(txs)
        errors = await self.admission.admit(txs)
        self.on_admission(errors)
        if relay:
            self.broadcast_txs([tx for tx, e in zip(txs, errors, strict=True) if e is None])
        self._signal_txs_available()
        return errors

    def _expire_mempool(self) -> None:
        """Drop txs pending longer than the TTL, at most once a second (on commits)."""
        now = self.clock.monotonic_ms() / 1000
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
        return self.admission.is_recently_seen(tx_hash)

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
        rejected = self.admission.get_rejection_status(tx_hash)
        if rejected is not None:
            return rejected
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


def _build_signer_client(home: NodeHome) -> RemoteSigner | None:
    """The signer link the config asks for (signer_address), or None."""
    config = home.config
    if not config.signer_address:
        return None
    address = ListenAddress.parse(config.signer_address)
    tls = None
    if address.host:
        try:
            tls = build_client_tls(home.path / config.signer_tls_cert,
                                   home.path / config.signer_tls_key,
                                   home.path / config.signer_tls_ca)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"signer TLS files cannot be loaded: {e}") from e
    public_key = home.validator_public_key
    assert public_key is not None
    return RemoteSigner(address, home.genesis.chain_id, public_key, tls)


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
