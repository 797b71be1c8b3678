"""The Tendermint consensus core: one event in, the core changed in place, effects out.

Algorithm 1 of Buchman, Kwon and Milosevic (arXiv 1807.04938), plus block pacing,
sign-state persistence and a guard for wiped validators. It must never do I/O, read a
clock, draw randomness, log or await: the shell turns the effects into actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import assert_never

from chain.block import Block
from chain.crypto import Hash32, KeyPair, PublicKey, is_valid_signature
from chain.genesis import ChainParams
from chain.vote import NIL, CommitCertificate, Proposal, ValidatorSet, Vote, VoteKind
from consensus.errors import (
    BuiltBlockMismatchError,
    HeightOrderError,
    NotStartedError,
    UnknownEventError,
)
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
from consensus.votes import HeightVotes

MAX_ROUND_AHEAD = 10_000
"""Messages for rounds beyond current round + this are ignored (bounded memory)."""
MAX_PROPOSALS_PER_ROUND = 4
"""Distinct proposals kept per round; an equivocating proposer cannot fill memory."""


class OnceRule(Enum):
    """The upon-rules of Algorithm 1 that fire only "for the first time" in a round."""

    PREVOTE_TIMEOUT = "line 34"
    LOCK = "line 36"
    PRECOMMIT_TIMEOUT = "line 47"


@dataclass(frozen=True, slots=True)
class FiredRule:
    """A once-per-round rule that has fired, with the round it fired in."""

    rule: OnceRule
    round: int


_STEP_RANK = {Step.PROPOSE: 1, Step.PREVOTE: 2, Step.PRECOMMIT: 3}
_VOTE_STEP = {VoteKind.PREVOTE: Step.PREVOTE, VoteKind.PRECOMMIT: Step.PRECOMMIT}


def compute_timeout_ms(params: ChainParams, kind: TimeoutKind, round_: int) -> int:
    """timeout(r) = min(base + r * delta, max); base is the propose or the vote timeout."""
    base = params.timeout_propose_ms if kind is TimeoutKind.PROPOSE else params.timeout_vote_ms
    return min(base + round_ * params.timeout_delta_ms, params.timeout_max_ms)


def is_valid_proposal_signature(proposal: Proposal, validator_set: ValidatorSet,
                                chain_id: str) -> bool:
    """True when `proposal` is signed by proposer(height, proposal.round).

    The shell must use this rather than Proposal.is_signature_valid: a re-proposed
    valid block (line 16 of Algorithm 1) keeps the header of the round it was built
    in, so its header's proposer is not the signer of the later proposal.
    """
    signer = validator_set.get_proposer(proposal.height, proposal.round)
    return is_valid_signature(signer, proposal.message(chain_id), proposal.signature)


class ConsensusState:
    """One node's consensus state. `process_event` changes it in place, and so does
    `lift_double_sign_guard`; the shell may replace `params` between events (after a
    governance change) and otherwise only reads the public attributes.

    Deterministic: the same events in the same order give the same effects.
    """

    _lock_block: Block | None
    _lock_votes: tuple[Vote, ...]
    _valid_block: Block | None

    def __init__(self, chain_id: str, key: KeyPair | PublicKey | None, params: ChainParams,
                 sign_state: PersistSignState | None, *, fresh_start: bool = False) -> None:
        """`key` is the validator's key pair when this process signs, its public key alone
        when a signer process holds the key (the core then asks for each signature with
        RequestSignature), or None for a node that does not vote."""
        self.chain_id = chain_id
        self.key: KeyPair | None = key if isinstance(key, KeyPair) else None
        """The key pair when signing happens here, else None."""
        self.public_key: PublicKey | None = (key.public_key if isinstance(key, KeyPair)
                                             else key)
        """The validator's public key, or None for a node that does not vote."""
        self.params = params
        self.last_signed: PersistSignState | None = sign_state
        """The last (height, round, step, hash) we signed, as persisted."""
        # Wiped-data-directory guard: see docs/consensus.md.
        self._guard_active = self.public_key is not None and sign_state is None and fresh_start
        self._guard_passed_height = -1
        self._guard_floor_round = -1
        self._observe_scheduled_height = -1
        self._max_round_seen = -1

        self.height = 0
        self.round = 0
        self.step = Step.WAIT
        self.validator_set: ValidatorSet | None = None
        self.prev_hash = NIL
        self.prev_timestamp_ms = 0
        self.last_commit_certificate: CommitCertificate | None = None
        self._height_votes: HeightVotes | None = None
        """The votes of the current height; None before the first StartHeight."""
        self._reset_height()

    # ------------------------------------------------------------ public helpers

    def own_votes_for_height(self) -> tuple[Proposal | Vote, ...]:
        """Our own signed proposals and votes at the current height, oldest round first."""
        own: list[Proposal | Vote] = []
        for r in sorted({r for r, _ in self._own_votes} | set(self._own_proposals)):
            if r in self._own_proposals:
                own.append(self._own_proposals[r])
            own.extend(self._own_votes[(r, kind)] for kind in VoteKind
                       if (r, kind) in self._own_votes)
        return tuple(own)

    def votes_for_height(self) -> tuple[Vote, ...]:
        """Every vote counted at the current height (one per validator, round, kind and
        block hash: an equivocator's conflicting votes are all here)."""
        return () if self._height_votes is None else self._height_votes.get_all_votes()

    def proposals_for_height(self) -> tuple[Proposal, ...]:
        """Every proposal kept at the current height."""
        return tuple(p for r in sorted(self._proposals) for p in self._proposals[r].values())

    @property
    def locked_round(self) -> int:
        """lockedRound of Algorithm 1: the round of our lock at this height, or -1."""
        return self._locked_round

    @property
    def locked_hash(self) -> Hash32:
        """The hash of lockedValue, the block we are locked on, or NIL."""
        return self._locked_hash

    @property
    def is_validator(self) -> bool:
        """True when we hold a key of the current height's validator set."""
        return (self.public_key is not None and self.validator_set is not None
                and self.validator_set.is_member(self.public_key))

    def lift_double_sign_guard(self) -> None:
        """End the wiped-node guard: the shell calls this once the network has finalized
        the height it was deciding when this validator restarted, since every signature
        the validator could have made before losing its sign state is at or below it.
        Changes the core in place."""
        self._guard_active = False

    # ------------------------------------------------------------ the transition

    def process_event(self, event: Event) -> list[Effect]:
        """Apply one event to this core, in place; return the effects, to be applied in
        list order. Raises UnknownEventError for an object that is not an Event, and
        NotStartedError for any event but StartHeight before the first StartHeight."""
        if not isinstance(event, Event):
            raise UnknownEventError(f"{type(event).__name__} is not a consensus event")
        if isinstance(event, StartHeight):
            return self.on_start_height(event)
        if self.validator_set is None:
            raise NotStartedError(f"{type(event).__name__} before the first StartHeight")
        match event:
            case VoteReceived():
                return self.on_vote(event.vote)
            case ProposalReceived():
                return self.on_proposal(event.proposal)
            case TimeoutFired():
                return self.on_timeout(event)
            case TxsAvailable():
                return self.on_txs_available()
            case BlockBuilt():
                return self.on_block_built(event)
            case BlockValidated():
                return self.on_block_validated(event)
            case SignatureReady():
                return self.on_signature_ready(event.message)
        assert_never(event)  # mypy: every Event type above has a case

    def on_start_height(self, event: StartHeight) -> list[Effect]:
        """StartHeight: forget the old height and wait for the pacing timeouts before
        line 11's StartRound(0); after a restart inside the height, resume instead."""
        if event.height <= self.height:
            raise HeightOrderError(
                f"StartHeight({event.height}) but the core is already at {self.height}")
        self.height = event.height
        self.round = 0
        self.step = Step.WAIT
        self.validator_set = event.validator_set
        self.prev_hash = event.prev_hash
        self.prev_timestamp_ms = event.prev_timestamp_ms
        self._height_votes = HeightVotes(event.validator_set)
        self._reset_height()
        h = self.height
        effects: list[Effect] = [
            ScheduleTimeout(h, 0, TimeoutKind.BLOCK_INTERVAL, self.params.block_interval_ms),
            ScheduleTimeout(h, 0, TimeoutKind.EMPTY_BLOCK, self.params.empty_block_interval_ms),
        ]
        if self.is_validator:
            effects.append(ScheduleTimeout(h, 0, TimeoutKind.REBROADCAST,
                                           self.params.timeout_propose_ms))
        restored = self.last_signed
        if restored is not None and restored.height == h and self.is_validator:
            self._resume(restored, effects)
            self._run_rules(effects)
        return effects

    def _resume(self, restored: PersistSignState, effects: list[Effect]) -> None:
        """After a restart inside a height, continue past the persisted sign state.

        The lock comes back with the sign state (and with it the valid block). The
        last signed vote is re-created (ed25519 signatures are deterministic, so it is
        the very message signed before the crash) and re-sent, since peers may wait
        for it. Then the node starts the next round: it has forgotten the other
        messages of the round it crashed in, and waiting there could wait forever.
        """
        self._locked_round = restored.locked_round
        self._locked_hash = restored.locked_hash
        block = restored.locked_block
        if block is not None and block.hash == restored.locked_hash:
            self._lock_block, self._lock_votes = block, restored.lock_votes
            self._valid_round, self._valid_block = restored.locked_round, block
            self._blocks[block.hash] = block
            self._validity[block.hash] = True  # we validated it before we locked on it
            for lock_vote in restored.lock_votes:
                self._add_vote(lock_vote, effects)
        if restored.step is not Step.PROPOSE:
            kind = (VoteKind.PREVOTE if restored.step is Step.PREVOTE
                    else VoteKind.PRECOMMIT)
            if self.key is None:
                assert self.public_key is not None
                effects.append(RequestSignature(Vote(kind, self.height, restored.round,
                                                     restored.block_hash, self.public_key,
                                                     b"")))
            else:
                vote = Vote.create(self.chain_id, self.key, kind, self.height,
                                   restored.round, restored.block_hash)
                self._own_votes[(restored.round, kind)] = vote
                self._add_vote(vote, effects)
                effects.append(Broadcast(vote))
        self._start_round(restored.round + 1, effects)

    def on_signature_ready(self, message: Proposal | Vote) -> list[Effect]:
        """SignatureReady: our own message, signed by the signer process. Kept, sent and
        counted as if signed here, then the upon-rules; ignored when it is not ours, not
        of this height, badly signed, or already in hand."""
        if (self.public_key is None or message.height != self.height
                or self.step is Step.COMMITTED):
            return []
        effects: list[Effect] = []
        if isinstance(message, Vote):
            if (message.validator != self.public_key
                    or not message.is_signature_valid(self.chain_id)
                    or (message.round, message.kind) in self._own_votes):
                return []
            self._own_votes[(message.round, message.kind)] = message
            effects.append(Broadcast(message))
            self._add_vote(message, effects)
        else:
            if (message.proposer != self.public_key
                    or not is_valid_signature(self.public_key, message.message(self.chain_id),
                                              message.signature)
                    or message.round in self._own_proposals):
                return []
            self._own_proposals[message.round] = message
            effects.append(Broadcast(message))
            effects.extend(Broadcast(v) for v in self._pol_votes(message))
            self._add_proposal(message, effects)
        if self.step is not Step.WAIT:
            self._run_rules(effects)
        return effects

    def on_txs_available(self) -> list[Effect]:
        """TxsAvailable: with the block interval passed, leave WAIT (line 11)."""
        self._txs_available = True
        return self._maybe_leave_wait()

    def on_vote(self, vote: Vote) -> list[Effect]:
        """A vote: count it, leave WAIT (line 11), then the upon-rules (lines 28-55)."""
        assert self.validator_set is not None
        if (vote.height != self.height or self.step is Step.COMMITTED
                or not self.validator_set.is_member(vote.validator)
                or vote.round > self.round + MAX_ROUND_AHEAD):
            return []
        effects: list[Effect] = []
        self._observe(vote.round, effects)
        if not self._add_vote(vote, effects):
            return effects
        if self.step is Step.WAIT:
            self._start_round(0, effects)
        self._run_rules(effects)
        return effects

    def on_proposal(self, proposal: Proposal) -> list[Effect]:
        """A proposal: keep it, ask for its validation, leave WAIT (line 11), then the
        upon-rules (lines 22-55)."""
        assert self.validator_set is not None
        if (proposal.height != self.height or self.step is Step.COMMITTED
                or proposal.round > self.round + MAX_ROUND_AHEAD
                or not (proposal.pol_round == -1 or 0 <= proposal.pol_round < proposal.round)):
            return []
        effects: list[Effect] = []
        self._observe(proposal.round, effects)
        if not self._add_proposal(proposal, effects):
            return effects
        if self.step is Step.WAIT and self._validity.get(proposal.block.hash) is not False:
            self._start_round(0, effects)
        self._run_rules(effects)
        return effects

    def on_timeout(self, event: TimeoutFired) -> list[Effect]:
        """A timeout: pacing, rebroadcast and the guard's watch, or lines 57, 61, 65."""
        if event.height != self.height or self.step is Step.COMMITTED:
            return []
        effects: list[Effect] = []
        kind, r = event.kind, event.round
        if kind is TimeoutKind.BLOCK_INTERVAL:
            self._block_interval_passed = True
            return self._maybe_leave_wait()
        if kind is TimeoutKind.EMPTY_BLOCK:
            self._empty_block_due = True
            return self._maybe_leave_wait()
        if kind is TimeoutKind.REBROADCAST:
            return self._rebroadcast()
        if kind is TimeoutKind.OBSERVE:
            self._guard_passed_height = self.height
            self._guard_floor_round = self._max_round_seen
            return []
        if kind is TimeoutKind.PROPOSE and r == self.round and self.step is Step.PROPOSE:
            if self._is_validating_proposal():
                # The round's proposal came in time and its block is being executed.
                # In Algorithm 1 the upon-rule of line 22 (28) checks valid(v) within
                # the step, so this timeout cannot overtake it; here validation takes
                # real time, and a shell that delivers the timeout first (the node's
                # does not, the simulation's did) would have us prevote nil on a good
                # block. Prevote when the verdict is in (on_block_validated).
                self._propose_timeout_waiting = r
                return []
            # line 57: OnTimeoutPropose -> prevote nil
            self._vote(VoteKind.PREVOTE, NIL, effects)
            self.step = Step.PREVOTE
        elif kind is TimeoutKind.PREVOTE and r == self.round and self.step is Step.PREVOTE:
            # line 61: OnTimeoutPrevote -> precommit nil
            self._vote(VoteKind.PRECOMMIT, NIL, effects)
            self.step = Step.PRECOMMIT
        elif kind is TimeoutKind.PRECOMMIT and r == self.round and self.step is not Step.WAIT:
            # line 65: OnTimeoutPrecommit -> StartRound(round + 1)
            self._start_round(r + 1, effects)
        else:
            return []
        self._run_rules(effects)
        return effects

    def on_block_built(self, event: BlockBuilt) -> list[Effect]:
        """BlockBuilt, the answer to getValue() of line 18: propose it (line 19)."""
        assert self.validator_set is not None and self.public_key is not None
        if (event.height != self.height or event.round != self.round
                or self.step is not Step.PROPOSE or event.round in self._own_proposals
                or event.round not in self._block_requested):
            return []  # a late answer for a round we already left
        header = event.block.header
        if (header.height != self.height or header.round != event.round
                or header.prev_hash != self.prev_hash or header.proposer != self.public_key
                or header.chain_id != self.chain_id
                or header.timestamp_ms <= self.prev_timestamp_ms):
            raise BuiltBlockMismatchError(
                f"BlockBuilt for height {event.height} round {event.round} carries a block "
                f"whose header does not match the RequestBlock (height {header.height}, "
                f"round {header.round})")
        effects: list[Effect] = []
        block_hash = event.block.hash
        self._validity[block_hash] = True  # we built it
        self._blocks[block_hash] = event.block
        self._propose(event.block, -1, effects)
        self._run_rules(effects)
        return effects

    def on_block_validated(self, event: BlockValidated) -> list[Effect]:
        """BlockValidated, the verdict valid(v) that lines 22, 28, 36 and 49 wait for;
        then the propose timeout that waited for it, if no rule voted (line 57)."""
        if event.block_hash not in self._validation_requested or self.step is Step.COMMITTED:
            return []
        if event.block_hash in self._validity:
            return []
        self._validity[event.block_hash] = event.valid
        effects: list[Effect] = []
        self._run_rules(effects)
        if (self._propose_timeout_waiting == self.round and self.step is Step.PROPOSE
                and not self._is_validating_proposal()):
            # The timeout that waited for this verdict, if no rule voted on it: line 57.
            self._vote(VoteKind.PREVOTE, NIL, effects)
            self.step = Step.PREVOTE
            self._run_rules(effects)
        return effects

    def _is_validating_proposal(self) -> bool:
        """True when this round's proposal would be prevoted by line 22 or 28 but for
        the verdict on its block, which is being computed."""
        proposal = self._first_proposal(self.round)
        if proposal is None:
            return False
        block_hash = proposal.block.hash
        if block_hash in self._validity or block_hash not in self._validation_requested:
            return False
        return proposal.pol_round == -1 or \
            self._votes.has_quorum(proposal.pol_round, VoteKind.PREVOTE, block_hash)

    # ------------------------------------------------------------ bookkeeping

    def _reset_height(self) -> None:
        """Forget, in place, what the core knew of the previous height (on_start_height
        replaces the votes)."""
        self._locked_round = -1
        self._locked_hash = NIL
        self._lock_block = None
        self._lock_votes = ()
        self._valid_round = -1
        self._valid_block = None
        self._proposals: dict[int, dict[Hash32, Proposal]] = {}
        self._blocks: dict[Hash32, Block] = {}
        self._validity: dict[Hash32, bool] = {}
        self._validation_requested: set[Hash32] = set()
        self._fired: set[FiredRule] = set()
        self._own_votes: dict[tuple[int, VoteKind], Vote] = {}
        self._own_proposals: dict[int, Proposal] = {}
        self._block_requested: set[int] = set()
        self._propose_timeout_waiting = -1
        """The round whose propose timeout fired while its proposal was validated."""
        self._block_interval_passed = False
        self._empty_block_due = False
        self._txs_available = False
        self._max_round_seen = -1

    def _maybe_leave_wait(self) -> list[Effect]:
        if self.step is not Step.WAIT or self.height == 0:
            return []
        if not self._block_interval_passed or not (self._txs_available
                                                   or self._empty_block_due):
            return []
        effects: list[Effect] = []
        self._start_round(0, effects)
        self._run_rules(effects)
        return effects

    def _observe(self, round_: int, effects: list[Effect]) -> None:
        """Guard bookkeeping: remember the highest round seen; start the watch once."""
        if not self._guard_active:
            return
        self._max_round_seen = max(self._max_round_seen, round_)
        if self._observe_scheduled_height != self.height:
            self._observe_scheduled_height = self.height
            effects.append(ScheduleTimeout(self.height, 0, TimeoutKind.OBSERVE,
                                           self.params.timeout_propose_ms))

    @property
    def _votes(self) -> HeightVotes:
        """The votes of the current height; there are none before the first StartHeight."""
        assert self._height_votes is not None, "no height started"
        return self._height_votes

    def _add_vote(self, vote: Vote, effects: list[Effect]) -> bool:
        """Count `vote`; report a validator's first equivocation per (round, kind).

        False when it changed nothing (a duplicate, or an equivocator over its cap)."""
        result = self._votes.add_vote(vote)
        if result.equivocation is not None:
            effects.append(RecordEvidence(result.equivocation.first,
                                          result.equivocation.second))
        return result.is_counted

    def _add_proposal(self, proposal: Proposal, effects: list[Effect]) -> bool:
        """Keep `proposal` and its block, at most MAX_PROPOSALS_PER_ROUND per round (more
        for a block with 2f+1 precommits); False when it changed nothing."""
        assert self.validator_set is not None
        block_hash = proposal.block.hash
        slot = self._proposals.setdefault(proposal.round, {})
        if block_hash in slot:
            return False
        if (len(slot) >= MAX_PROPOSALS_PER_ROUND
                and not self._votes.has_precommit_quorum(block_hash)):
            return False
        slot[block_hash] = proposal
        self._votes.add_sender(proposal.round,
                               self.validator_set.get_proposer(self.height, proposal.round))
        self._process_proposed_block(proposal.block, effects)
        return True

    def _process_proposed_block(self, block: Block, effects: list[Effect]) -> None:
        """Record a block first seen in a proposal: invalid if a header check the core can
        make fails, else kept and sent for validation (ValidateBlock, once per hash)."""
        assert self.validator_set is not None
        block_hash = block.hash
        if block_hash in self._validity or block_hash in self._validation_requested:
            return
        header = block.header
        if (header.height != self.height or header.prev_hash != self.prev_hash
                or header.chain_id != self.chain_id
                or header.round > self.round + MAX_ROUND_AHEAD
                or header.proposer != self.validator_set.get_proposer(self.height, header.round)
                or header.validator_set_hash != self.validator_set.hash
                or header.timestamp_ms <= self.prev_timestamp_ms):
            self._validity[block_hash] = False
            return
        self._blocks[block_hash] = block
        self._validation_requested.add(block_hash)
        effects.append(ValidateBlock(block))

    # ------------------------------------------------------------ signing

    def _may_sign(self, round_: int, step: Step, block_hash: Hash32 | None) -> bool:
        """Never sign below the last signed (h, r, step), nor a different hash at it.

        `block_hash` None asks whether any message could be signed at that point.
        """
        if not self.is_validator:
            return False
        if self._guard_active and (self._guard_passed_height != self.height
                                   or round_ <= self._guard_floor_round):
            return False
        last = self.last_signed
        if last is None:
            return True
        new_key = (self.height, round_, _STEP_RANK[step])
        last_key = (last.height, last.round, _STEP_RANK[last.step])
        if new_key != last_key:
            return new_key > last_key
        return block_hash is None or block_hash == last.block_hash

    def _persist(self, round_: int, step: Step, block_hash: Hash32,
                 effects: list[Effect]) -> None:
        """Set last_signed to the message about to be signed, and emit it to be fsynced."""
        self.last_signed = PersistSignState(self.height, round_, step, block_hash,
                                            self._locked_round, self._locked_hash,
                                            self._lock_block, self._lock_votes)
        effects.append(self.last_signed)

    def _vote(self, kind: VoteKind, block_hash: Hash32, effects: list[Effect]) -> None:
        """Sign, persist-then-broadcast and count our own vote, when allowed."""
        r = self.round
        if not self._may_sign(r, _VOTE_STEP[kind], block_hash):
            kept = self._own_votes.get((r, kind))
            if kept is not None and kept.block_hash == block_hash:
                effects.append(Broadcast(kept))
            return
        if self.key is None:
            assert self.public_key is not None
            self._persist(r, _VOTE_STEP[kind], block_hash, effects)
            effects.append(RequestSignature(Vote(kind, self.height, r, block_hash,
                                                 self.public_key, b"")))
            self._schedule_stall_fallback(kind, effects)
            return
        vote = Vote.create(self.chain_id, self.key, kind, self.height, r, block_hash)
        self._persist(r, _VOTE_STEP[kind], block_hash, effects)
        effects.append(Broadcast(vote))
        self._own_votes[(r, kind)] = vote
        self._add_vote(vote, effects)
        self._schedule_stall_fallback(kind, effects)

    def _schedule_stall_fallback(self, kind: VoteKind, effects: list[Effect]) -> None:
        """Deviation from Algorithm 1 (liveness only): after our prevote or precommit,
        time out at timeout_max_ms even without 2f+1 votes of the round (lines 34 and
        47 wait for them). Otherwise, with more than f validators silent (crashed, or
        a wiped validator that may not sign in this round), the live ones would wait
        in this round forever. Any timeout may fire at any time without harm to
        safety; the usual, shorter timeouts still come first when votes flow."""
        timeout_kind = TimeoutKind.PREVOTE if kind is VoteKind.PREVOTE else TimeoutKind.PRECOMMIT
        effects.append(ScheduleTimeout(self.height, self.round, timeout_kind,
                                       self.params.timeout_max_ms))

    def _propose(self, block: Block, pol_round: int, effects: list[Effect]) -> None:
        """Sign, persist-then-broadcast and keep our proposal, when allowed (line 19)."""
        r = self.round
        if not self._may_sign(r, Step.PROPOSE, block.hash):
            kept = self._own_proposals.get(r)
            if kept is not None and kept.block.hash == block.hash:
                effects.append(Broadcast(kept))
            return
        if self.key is None:
            self._persist(r, Step.PROPOSE, block.hash, effects)
            effects.append(RequestSignature(Proposal(self.height, r, pol_round, block, b"")))
            return
        proposal = Proposal.create(self.chain_id, self.key, self.height, r, pol_round, block)
        self._persist(r, Step.PROPOSE, block.hash, effects)
        effects.append(Broadcast(proposal))
        effects.extend(Broadcast(v) for v in self._pol_votes(proposal))
        self._own_proposals[r] = proposal
        self._add_proposal(proposal, effects)

    def _pol_votes(self, proposal: Proposal) -> list[Vote]:
        """The prevotes at pol_round for the proposed block: relayed with a re-proposal
        so that peers which missed them (or restarted) can apply line 28."""
        if proposal.pol_round < 0:
            return []
        return list(self._votes.get_votes(proposal.pol_round, VoteKind.PREVOTE,
                                          proposal.block.hash))

    def _rebroadcast(self) -> list[Effect]:
        """Re-send our own votes of the latest two rounds we voted in (and our proposal
        of this round, with its proof of lock) at this height; no re-persist. Two
        rounds, so that a peer one round behind gets the precommits it waits for."""
        effects: list[Effect] = [ScheduleTimeout(self.height, 0, TimeoutKind.REBROADCAST,
                                                 self.params.timeout_propose_ms)]
        if self.round in self._own_proposals:
            proposal = self._own_proposals[self.round]
            effects.append(Broadcast(proposal))
            effects.extend(Broadcast(v) for v in self._pol_votes(proposal))
        if self._own_votes:
            latest = max(r for r, _ in self._own_votes)
            effects.extend(Broadcast(vote) for (r, _), vote in sorted(self._own_votes.items())
                           if r >= latest - 1)
        return effects

    # ------------------------------------------------------------ Algorithm 1

    def _start_round(self, round_: int, effects: list[Effect]) -> None:
        """line 11: StartRound(round)."""
        assert self.validator_set is not None and self.step is not Step.COMMITTED
        self.round = round_
        self.step = Step.PROPOSE
        h = self.height
        if (self.is_validator
                and self.validator_set.get_proposer(h, round_) == self.public_key):
            if self._valid_block is not None:  # line 15-16
                self._propose(self._valid_block, self._valid_round, effects)
            elif (round_ not in self._block_requested
                  and self._may_sign(round_, Step.PROPOSE, None)):  # line 18: getValue()
                self._block_requested.add(round_)
                effects.append(RequestBlock(h, round_, self.prev_hash,
                                            self.prev_timestamp_ms + 1))
        # line 21; the proposer schedules it too, in case its block never gets built.
        effects.append(ScheduleTimeout(h, round_, TimeoutKind.PROPOSE,
                                       compute_timeout_ms(self.params, TimeoutKind.PROPOSE,
                                                          round_)))

    def _run_rules(self, effects: list[Effect]) -> None:
        """Apply the upon-rules of Algorithm 1 until none fires."""
        while self.step is not Step.COMMITTED and self.step is not Step.WAIT:
            if self._rule_commit(effects):
                return
            skip_round = self._votes.get_highest_f_plus_one_round()
            if skip_round > self.round:  # line 55
                self._start_round(skip_round, effects)
                continue
            self._rule_schedule_vote_timeouts(effects)
            if not (self._rule_prevote_fresh(effects) or self._rule_prevote_pol(effects)
                    or self._rule_lock(effects) or self._rule_precommit_nil(effects)):
                return

    def _first_proposal(self, round_: int) -> Proposal | None:
        slot = self._proposals.get(round_)
        return next(iter(slot.values())) if slot else None

    def _rule_prevote_fresh(self, effects: list[Effect]) -> bool:
        """line 22: proposal with vr = -1 in step propose -> prevote it or nil."""
        proposal = self._first_proposal(self.round)
        if self.step is not Step.PROPOSE or proposal is None or proposal.pol_round != -1:
            return False
        block_hash = proposal.block.hash
        valid = self._validity.get(block_hash)
        if valid is None:
            return False  # waiting for BlockValidated
        acceptable = valid and (self._locked_round == -1 or self._locked_hash == block_hash)
        self._vote(VoteKind.PREVOTE, block_hash if acceptable else NIL, effects)
        self.step = Step.PREVOTE
        return True

    def _rule_prevote_pol(self, effects: list[Effect]) -> bool:
        """line 28: proposal with 0 <= vr < r and 2f+1 prevotes for it in vr."""
        proposal = self._first_proposal(self.round)
        if self.step is not Step.PROPOSE or proposal is None or proposal.pol_round < 0:
            return False
        block_hash, vr = proposal.block.hash, proposal.pol_round
        if not self._votes.has_quorum(vr, VoteKind.PREVOTE, block_hash):
            return False
        valid = self._validity.get(block_hash)
        if valid is None:
            return False
        acceptable = valid and (self._locked_round <= vr or self._locked_hash == block_hash)
        self._vote(VoteKind.PREVOTE, block_hash if acceptable else NIL, effects)
        self.step = Step.PREVOTE
        return True

    def _rule_schedule_vote_timeouts(self, effects: list[Effect]) -> None:
        """lines 34 and 47: 2f+1 prevotes / precommits for anything -> schedule timeout."""
        r = self.round
        prevote_timeout = FiredRule(OnceRule.PREVOTE_TIMEOUT, r)
        if (self.step is Step.PREVOTE and prevote_timeout not in self._fired
                and self._votes.has_quorum_of_any(r, VoteKind.PREVOTE)):
            self._fired.add(prevote_timeout)
            effects.append(ScheduleTimeout(self.height, r, TimeoutKind.PREVOTE,
                                           compute_timeout_ms(self.params,
                                                              TimeoutKind.PREVOTE, r)))
        precommit_timeout = FiredRule(OnceRule.PRECOMMIT_TIMEOUT, r)
        if (precommit_timeout not in self._fired
                and self._votes.has_quorum_of_any(r, VoteKind.PRECOMMIT)):
            self._fired.add(precommit_timeout)
            effects.append(ScheduleTimeout(self.height, r, TimeoutKind.PRECOMMIT,
                                           compute_timeout_ms(self.params,
                                                              TimeoutKind.PRECOMMIT, r)))

    def _rule_lock(self, effects: list[Effect]) -> bool:
        """line 36: proposal v and 2f+1 prevotes for v in this round, step >= prevote."""
        r = self.round
        lock = FiredRule(OnceRule.LOCK, r)
        if self.step is Step.PROPOSE or lock in self._fired:
            return False
        for block_hash, proposal in self._proposals.get(r, {}).items():
            if (self._votes.has_quorum(r, VoteKind.PREVOTE, block_hash)
                    and self._validity.get(block_hash) is True):
                self._fired.add(lock)
                if self.step is Step.PREVOTE:
                    self._locked_round, self._locked_hash = r, block_hash
                    self._lock_block = proposal.block
                    self._lock_votes = self._votes.get_votes(r, VoteKind.PREVOTE, block_hash)
                    self._vote(VoteKind.PRECOMMIT, block_hash, effects)
                    self.step = Step.PRECOMMIT
                self._valid_round, self._valid_block = r, proposal.block
                return True
        return False

    def _rule_precommit_nil(self, effects: list[Effect]) -> bool:
        """line 44: 2f+1 prevotes for nil in step prevote -> precommit nil."""
        if (self.step is not Step.PREVOTE
                or not self._votes.has_quorum(self.round, VoteKind.PREVOTE, NIL)):
            return False
        self._vote(VoteKind.PRECOMMIT, NIL, effects)
        self.step = Step.PRECOMMIT
        return True

    def _rule_commit(self, effects: list[Effect]) -> bool:
        """line 49: proposal v and 2f+1 precommits for v in some round, valid(v) -> commit."""
        for block_hash, round_ in self._votes.get_precommit_quorums():
            block = self._blocks.get(block_hash)
            if block is None or self._validity.get(block_hash) is not True:
                continue
            votes = self._votes.get_votes(round_, VoteKind.PRECOMMIT, block_hash)
            certificate = CommitCertificate.from_votes(votes)
            effects.append(CommitBlock(block, certificate))
            self.step = Step.COMMITTED
            self.last_commit_certificate = certificate
            if self._guard_active and self._guard_passed_height == self.height:
                self._guard_active = False  # in step with a quorum again
            return True
        return False


def step(state: ConsensusState, event: Event) -> tuple[ConsensusState, list[Effect]]:
    """`state.process_event(event)` in the step(state, event) -> (state, effects) shape.

    Not a pure function: `state` itself is changed and returned, not a copy of it."""
    return state, state.process_event(event)
