"""Transcript tests of the consensus core: scripted events in, exact effects out.

Four validators v0..v3; the proposer of (height, round) is v[(height + round) % 4],
so at height 1 round 0 it is v1, round 1 v2, round 2 v3. Timeouts are the default
ChainParams: propose 1000 ms, vote 500 ms, +500 ms per round, capped at 10000 ms.
"""

from __future__ import annotations

import pytest

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.genesis import ChainParams
from chain.vote import NIL, Proposal, Validator, ValidatorSet, Vote, VoteKind, validate_certificate
from consensus.core import ConsensusState, compute_timeout_ms, step
from consensus.errors import HeightOrderError, NotStartedError
from consensus.events import (
    BlockBuilt,
    BlockValidated,
    Broadcast,
    CommitBlock,
    Effect,
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

CHAIN = "govchain-test"
PARAMS = ChainParams()
KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
VSET = ValidatorSet(tuple(Validator(k.public_key, f"v{i}") for i, k in enumerate(KEYS)))
GENESIS = compute_hash(b"genesis")
T0 = 1_700_000_000_000
PREVOTE, PRECOMMIT = VoteKind.PREVOTE, VoteKind.PRECOMMIT


def block(round_: int, proposer: int, salt: int = 0, height: int = 1) -> Block:
    header = BlockHeader(CHAIN, height, round_, T0 + 10 + salt, GENESIS, KEYS[proposer].public_key,
                         compute_tx_root(()), compute_tx_root(()),
                         compute_hash(b"state%d" % salt), VSET.hash,
                         VSET.hash)
    return Block(header, ())


def vote(i: int, kind: VoteKind, round_: int, block_hash: bytes, height: int = 1) -> Vote:
    return Vote.create(CHAIN, KEYS[i], kind, height, round_, block_hash)


def proposal(b: Block, round_: int, pol_round: int = -1) -> Proposal:
    signer = KEYS[(b.height + round_) % 4]
    return Proposal.create(CHAIN, signer, b.height, round_, pol_round, b)


def timeout(kind: TimeoutKind, round_: int, height: int = 1) -> ScheduleTimeout:
    return ScheduleTimeout(height, round_, kind, compute_timeout_ms(PARAMS, kind, round_))


def fallback(kind: TimeoutKind, round_: int) -> ScheduleTimeout:
    return ScheduleTimeout(1, round_, kind, PARAMS.timeout_max_ms)


START = StartHeight(1, VSET, GENESIS, T0)
HEIGHT_TIMERS: list[Effect] = [
    ScheduleTimeout(1, 0, TimeoutKind.BLOCK_INTERVAL, PARAMS.block_interval_ms),
    ScheduleTimeout(1, 0, TimeoutKind.EMPTY_BLOCK, PARAMS.empty_block_interval_ms),
    ScheduleTimeout(1, 0, TimeoutKind.REBROADCAST, PARAMS.timeout_propose_ms),
]


def node(i: int | None, sign_state: PersistSignState | None = None,
         fresh_start: bool = False) -> ConsensusState:
    return ConsensusState(CHAIN, None if i is None else KEYS[i], PARAMS, sign_state,
                          fresh_start=fresh_start)


def started(i: int | None, **kw: object) -> ConsensusState:
    """A core at height 1 that has left WAIT (round 0, step propose)."""
    core = node(i, **kw)  # type: ignore[arg-type]
    core.process_event(START)
    core.process_event(TimeoutFired(1, 0, TimeoutKind.BLOCK_INTERVAL))
    core.process_event(TimeoutFired(1, 0, TimeoutKind.EMPTY_BLOCK))
    return core


def persisted_vote(i: int, kind: VoteKind, round_: int, block_hash: bytes,
                   locked: tuple[int, Block] | None = None) -> list[Effect]:
    """PersistSignState then Broadcast, the order every own vote must follow."""
    step_ = Step.PREVOTE if kind is PREVOTE else Step.PRECOMMIT
    if locked is None:
        persist = PersistSignState(1, round_, step_, Hash32(block_hash))
    else:
        lock_round, lock_block = locked
        persist = PersistSignState(1, round_, step_, Hash32(block_hash), lock_round,
                                   lock_block.hash, lock_block,
                                   lock_votes_of(lock_round, lock_block))
    return [persist, Broadcast(vote(i, kind, round_, block_hash))]


def lock_votes_of(round_: int, b: Block) -> tuple[Vote, ...]:
    """The prevotes the lock helpers below deliver, in the order the core keeps them."""
    return tuple(vote(i, PREVOTE, round_, b.hash) for i in LOCK_ORDER[0:3])


LOCK_ORDER: list[int] = []


def test_happy_path_proposer_builds_votes_and_commits() -> None:
    core = node(1)
    assert core.process_event(START) == HEIGHT_TIMERS
    assert core.step is Step.WAIT
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.BLOCK_INTERVAL)) == []
    # Transactions wait and the block interval has passed: round 0 starts.
    assert core.process_event(TxsAvailable()) == [
        RequestBlock(1, 0, GENESIS, T0 + 1), timeout(TimeoutKind.PROPOSE, 0)]
    b = block(0, 1)
    p = proposal(b, 0)
    assert core.process_event(BlockBuilt(1, 0, b)) == [
        PersistSignState(1, 0, Step.PROPOSE, b.hash), Broadcast(p),
        *persisted_vote(1, PREVOTE, 0, b.hash), fallback(TimeoutKind.PREVOTE, 0)]
    assert core.process_event(VoteReceived(vote(2, PREVOTE, 0, b.hash))) == []
    lock = (0, b.hash)
    lock_votes = (vote(1, PREVOTE, 0, b.hash), vote(2, PREVOTE, 0, b.hash),
                  vote(3, PREVOTE, 0, b.hash))
    effects = core.process_event(VoteReceived(vote(3, PREVOTE, 0, b.hash)))
    assert effects == [
        timeout(TimeoutKind.PREVOTE, 0),  # line 34
        PersistSignState(1, 0, Step.PRECOMMIT, b.hash, 0, b.hash, b, lock_votes),  # line 36
        Broadcast(vote(1, PRECOMMIT, 0, b.hash)), fallback(TimeoutKind.PRECOMMIT, 0)]
    assert (core.locked_round, core.locked_hash) == lock
    assert core.process_event(VoteReceived(vote(0, PRECOMMIT, 0, b.hash))) == []
    effects = core.process_event(VoteReceived(vote(2, PRECOMMIT, 0, b.hash)))
    assert len(effects) == 1 and isinstance(effects[0], CommitBlock)  # line 49
    assert effects[0].block == b
    validate_certificate(effects[0].certificate, VSET, CHAIN, height=1, block_hash=b.hash)
    assert core.step is Step.COMMITTED
    assert core.last_commit_certificate == effects[0].certificate


def test_follower_validates_proposal_before_prevoting() -> None:
    core = node(3)
    core.process_event(START)
    b = block(0, 1)
    # A proposal in WAIT starts round 0 at once; the prevote waits for BlockValidated.
    assert core.process_event(ProposalReceived(proposal(b, 0))) == [
        ValidateBlock(b), timeout(TimeoutKind.PROPOSE, 0)]
    assert core.process_event(ProposalReceived(proposal(b, 0))) == []  # once per hash
    assert core.process_event(BlockValidated(b.hash, True)) == [
        *persisted_vote(3, PREVOTE, 0, b.hash), fallback(TimeoutKind.PREVOTE, 0)]


def test_invalid_block_gets_a_nil_prevote() -> None:
    core = started(3)
    b = block(0, 1)
    assert core.process_event(ProposalReceived(proposal(b, 0))) == [ValidateBlock(b)]
    assert core.process_event(BlockValidated(b.hash, False)) == [
        *persisted_vote(3, PREVOTE, 0, NIL), fallback(TimeoutKind.PREVOTE, 0)]


def test_invalid_header_from_the_wrong_proposer_is_not_validated() -> None:
    core = started(3)
    wrong = block(0, 2)  # v2 is not the proposer of round 0
    forged = Proposal.create(CHAIN, KEYS[2], 1, 0, -1, wrong)
    assert core.process_event(ProposalReceived(forged)) == [
        *persisted_vote(3, PREVOTE, 0, NIL), fallback(TimeoutKind.PREVOTE, 0)]


def test_proposer_down_prevote_nil_then_next_round_and_next_proposer() -> None:
    core = started(3)
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE)) == [  # line 57
        *persisted_vote(3, PREVOTE, 0, NIL), fallback(TimeoutKind.PREVOTE, 0)]
    assert core.process_event(VoteReceived(vote(0, PREVOTE, 0, NIL))) == []
    assert core.process_event(VoteReceived(vote(2, PREVOTE, 0, NIL))) == [
        timeout(TimeoutKind.PREVOTE, 0), *persisted_vote(3, PRECOMMIT, 0, NIL),  # line 44
        fallback(TimeoutKind.PRECOMMIT, 0)]
    core.process_event(VoteReceived(vote(0, PRECOMMIT, 0, NIL)))
    assert core.process_event(VoteReceived(vote(2, PRECOMMIT, 0, NIL))) == [
        timeout(TimeoutKind.PRECOMMIT, 0)]  # line 47
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.PRECOMMIT)) == [  # line 65
        timeout(TimeoutKind.PROPOSE, 1)]
    assert (core.round, core.step) == (1, Step.PROPOSE)
    b = block(1, 2)
    assert core.process_event(ProposalReceived(proposal(b, 1))) == [ValidateBlock(b)]
    assert core.process_event(BlockValidated(b.hash, True)) == [
        *persisted_vote(3, PREVOTE, 1, b.hash), fallback(TimeoutKind.PREVOTE, 1)]


def test_propose_timeout_waits_for_the_verdict_on_a_proposal_in_validation() -> None:
    # The proposal came in time; executing its block takes longer than the timeout.
    core = started(3)
    b = block(0, 1)
    assert core.process_event(ProposalReceived(proposal(b, 0))) == [ValidateBlock(b)]
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE)) == []
    assert core.step is Step.PROPOSE
    assert core.process_event(BlockValidated(b.hash, True)) == [
        *persisted_vote(3, PREVOTE, 0, b.hash), fallback(TimeoutKind.PREVOTE, 0)]


def test_propose_timeout_that_waited_gives_nil_for_an_invalid_block() -> None:
    core = started(3)
    b = block(0, 1)
    core.process_event(ProposalReceived(proposal(b, 0)))
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE)) == []
    assert core.process_event(BlockValidated(b.hash, False)) == [
        *persisted_vote(3, PREVOTE, 0, NIL), fallback(TimeoutKind.PREVOTE, 0)]


def test_propose_timeout_does_not_wait_for_a_reproposal_without_its_quorum() -> None:
    # A proposal naming valid round 0 without 2f+1 prevotes of round 0 here cannot be
    # prevoted whatever its verdict (line 28): the timeout gives nil at once (line 57).
    core = started(3)
    core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE))
    for i in (0, 1, 2):
        core.process_event(VoteReceived(vote(i, PRECOMMIT, 0, NIL)))
    core.process_event(TimeoutFired(1, 0, TimeoutKind.PRECOMMIT))
    assert (core.round, core.step) == (1, Step.PROPOSE)
    b = block(0, 1)
    assert core.process_event(ProposalReceived(proposal(b, 1, pol_round=0))) == [ValidateBlock(b)]
    assert core.process_event(TimeoutFired(1, 1, TimeoutKind.PROPOSE)) == [
        *persisted_vote(3, PREVOTE, 1, NIL), fallback(TimeoutKind.PREVOTE, 1)]
    assert core.process_event(BlockValidated(b.hash, True)) == []


def test_stale_timeouts_are_ignored() -> None:
    core = started(3)
    assert core.process_event(TimeoutFired(1, 3, TimeoutKind.PROPOSE)) == []
    assert core.process_event(TimeoutFired(7, 0, TimeoutKind.PROPOSE)) == []
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.PREVOTE)) == []  # not in prevote


def lock_on_a_in_round_0(core: ConsensusState) -> Block:
    assert core.key is not None
    me = KEYS.index(core.key)
    others = [i for i in (1, 2, 3, 0) if i != me][:2]
    LOCK_ORDER[:] = [me, *others]
    a = block(0, 1)
    core.process_event(ProposalReceived(proposal(a, 0)))
    core.process_event(BlockValidated(a.hash, True))
    for i in others:
        core.process_event(VoteReceived(vote(i, PREVOTE, 0, a.hash)))
    assert (core.locked_round, core.locked_hash) == (0, a.hash)
    core.process_event(VoteReceived(vote(1, PRECOMMIT, 0, NIL)))
    core.process_event(VoteReceived(vote(2, PRECOMMIT, 0, NIL)))
    core.process_event(TimeoutFired(1, 0, TimeoutKind.PRECOMMIT))
    assert (core.round, core.step) == (1, Step.PROPOSE)
    return a


def test_locked_validator_prevotes_nil_for_another_block() -> None:
    core = started(3)
    lock_on_a_in_round_0(core)
    b = block(1, 2, salt=1)
    core.process_event(ProposalReceived(proposal(b, 1)))
    assert core.process_event(BlockValidated(b.hash, True)) == [  # line 22, locked on a
        *persisted_vote(3, PREVOTE, 1, NIL, locked=(0, block(0, 1))),
        fallback(TimeoutKind.PREVOTE, 1)]


def test_locked_validator_prevotes_a_block_with_a_newer_proof_of_lock() -> None:
    core = started(3)
    a = lock_on_a_in_round_0(core)
    b = block(1, 2, salt=1)
    core.process_event(ProposalReceived(proposal(b, 1)))
    core.process_event(BlockValidated(b.hash, True))  # prevotes nil: locked on a
    for i in (0, 1, 2):  # but a quorum prevoted b in round 1 (a POL)
        core.process_event(VoteReceived(vote(i, PREVOTE, 1, b.hash)))
    # line 36 in step prevote: v3 moves its lock to b and precommits b.
    assert (core.locked_round, core.locked_hash) == (1, b.hash)
    assert core.step is Step.PRECOMMIT
    assert core.own_votes_for_height()[-1] == vote(3, PRECOMMIT, 1, b.hash)
    assert a.hash != b.hash


def test_reproposal_with_pol_unlocks() -> None:
    core = started(0)  # v0 proposes at round 3 (1 + 3) % 4
    a = lock_on_a_in_round_0(core)
    core.process_event(TimeoutFired(1, 1, TimeoutKind.PROPOSE))
    b = block(1, 2, salt=1)
    for i in (1, 2, 3):
        core.process_event(VoteReceived(vote(i, PREVOTE, 1, b.hash)))
    for i in (1, 2, 3):
        core.process_event(VoteReceived(vote(i, PRECOMMIT, 1, NIL)))
    core.process_event(TimeoutFired(1, 1, TimeoutKind.PRECOMMIT))
    assert core.round == 2 and core.locked_hash == a.hash
    # v3 re-proposes b in round 2 with pol_round 1: line 28 lets v0 prevote b.
    effects = core.process_event(ProposalReceived(proposal(b, 2, pol_round=1)))
    assert effects == [ValidateBlock(b)]
    assert core.process_event(BlockValidated(b.hash, True)) == [
        *persisted_vote(0, PREVOTE, 2, b.hash, locked=(0, a)),
        fallback(TimeoutKind.PREVOTE, 2)]


def test_f_plus_one_messages_of_a_higher_round_skip_to_it() -> None:
    core = started(3)
    assert core.process_event(VoteReceived(vote(0, PREVOTE, 5, NIL))) == []
    assert core.round == 0
    assert core.process_event(VoteReceived(vote(1, PRECOMMIT, 5, NIL))) == [  # line 55
        timeout(TimeoutKind.PROPOSE, 5)]
    assert (core.round, core.step) == (5, Step.PROPOSE)


def test_far_future_rounds_and_other_heights_are_ignored() -> None:
    core = started(3)
    assert core.process_event(VoteReceived(vote(0, PREVOTE, 10_001, NIL))) == []
    assert core.process_event(VoteReceived(vote(1, PREVOTE, 10_001, NIL))) == []
    assert core.round == 0
    assert core.process_event(VoteReceived(vote(0, PREVOTE, 0, NIL, height=2))) == []
    assert core.votes_for_height() == ()


def test_timeouts_grow_per_round_and_are_capped() -> None:
    assert compute_timeout_ms(PARAMS, TimeoutKind.PROPOSE, 0) == 1000
    assert compute_timeout_ms(PARAMS, TimeoutKind.PROPOSE, 2) == 2000
    assert compute_timeout_ms(PARAMS, TimeoutKind.PREVOTE, 1) == 1000
    assert compute_timeout_ms(PARAMS, TimeoutKind.PRECOMMIT, 1000) == PARAMS.timeout_max_ms
    core = started(3)
    core.process_event(VoteReceived(vote(0, PREVOTE, 49, NIL)))
    assert core.process_event(VoteReceived(vote(1, PREVOTE, 49, NIL))) == [
        ScheduleTimeout(1, 49, TimeoutKind.PROPOSE, PARAMS.timeout_max_ms)]


def test_equivocation_is_reported_once() -> None:
    core = started(3)
    first, second = vote(0, PREVOTE, 0, NIL), vote(0, PREVOTE, 0, block(0, 1).hash)
    assert core.process_event(VoteReceived(first)) == []
    assert core.process_event(VoteReceived(second)) == [RecordEvidence(first, second)]
    third = vote(0, PREVOTE, 0, block(0, 1, salt=5).hash)
    assert core.process_event(VoteReceived(third)) == []
    assert core.process_event(VoteReceived(first)) == []  # a duplicate is no evidence


def test_commit_waits_for_the_block_when_precommits_come_first() -> None:
    core = started(3)
    b = block(0, 1)
    for i in (0, 1, 2):
        assert not any(isinstance(e, CommitBlock)
                       for e in core.process_event(VoteReceived(vote(i, PRECOMMIT, 0, b.hash))))
    assert core.process_event(ProposalReceived(proposal(b, 0))) == [ValidateBlock(b)]
    effects = core.process_event(BlockValidated(b.hash, True))
    assert [type(e) for e in effects] == [CommitBlock]


def test_non_validator_follows_and_commits_without_signing() -> None:
    core = started(None)
    b = block(0, 1)
    core.process_event(ProposalReceived(proposal(b, 0)))
    effects = core.process_event(BlockValidated(b.hash, True))
    assert not any(isinstance(e, PersistSignState | Broadcast) for e in effects)
    for i in (0, 1, 2):
        effects = core.process_event(VoteReceived(vote(i, PRECOMMIT, 0, b.hash)))
    assert [type(e) for e in effects] == [CommitBlock]


def test_restart_resends_the_persisted_vote_and_moves_to_the_next_round() -> None:
    a = block(0, 1)
    persisted = PersistSignState(1, 0, Step.PREVOTE, a.hash)
    core = node(3, sign_state=persisted)
    effects = core.process_event(START)
    assert effects == [*HEIGHT_TIMERS, Broadcast(vote(3, PREVOTE, 0, a.hash)),
                       timeout(TimeoutKind.PROPOSE, 1)]
    assert core.round == 1
    # The re-sent vote is the very message signed before (no double sign).
    assert core.own_votes_for_height() == (vote(3, PREVOTE, 0, a.hash),)


def test_restart_refuses_to_sign_below_the_persisted_sign_state() -> None:
    persisted = PersistSignState(2, 0, Step.PREVOTE, Hash32(bytes(32)))
    core = started(3, sign_state=persisted)  # the store is behind: height 1 again
    b = block(0, 1)
    core.process_event(ProposalReceived(proposal(b, 0)))
    effects = core.process_event(BlockValidated(b.hash, True))
    effects += core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE))
    assert not any(isinstance(e, PersistSignState | Broadcast) for e in effects)
    for i in (0, 1, 2):  # it still follows the others to the commit
        effects = core.process_event(VoteReceived(vote(i, PRECOMMIT, 0, b.hash)))
    assert [type(e) for e in effects] == [CommitBlock]


def test_restart_keeps_the_lock_and_reproposes_the_locked_block() -> None:
    a = block(0, 1)
    lock_votes = tuple(vote(i, PREVOTE, 0, a.hash) for i in (0, 1, 2))
    persisted = PersistSignState(1, 1, Step.PRECOMMIT, NIL, 0, a.hash, a, lock_votes)
    core = node(3, sign_state=persisted)  # round 2 is v3's
    effects = core.process_event(START)
    assert (core.locked_round, core.locked_hash, core.round) == (0, a.hash, 2)
    reproposal = Proposal.create(CHAIN, KEYS[3], 1, 2, 0, a)
    assert effects == [
        *HEIGHT_TIMERS, Broadcast(vote(3, PRECOMMIT, 1, NIL)),
        PersistSignState(1, 2, Step.PROPOSE, a.hash, 0, a.hash, a, lock_votes),
        Broadcast(reproposal), *(Broadcast(v) for v in lock_votes),
        timeout(TimeoutKind.PROPOSE, 2),
        PersistSignState(1, 2, Step.PREVOTE, a.hash, 0, a.hash, a, lock_votes),
        Broadcast(vote(3, PREVOTE, 2, a.hash)), fallback(TimeoutKind.PREVOTE, 2)]


def test_wiped_validator_waits_to_observe_then_signs_only_in_later_rounds() -> None:
    core = started(3, fresh_start=True)
    b = block(0, 1)
    effects = core.process_event(ProposalReceived(proposal(b, 0)))
    assert effects == [ScheduleTimeout(1, 0, TimeoutKind.OBSERVE, PARAMS.timeout_propose_ms),
                       ValidateBlock(b)]
    effects = core.process_event(BlockValidated(b.hash, True))
    assert effects == []  # no signature before the observation ends
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.OBSERVE)) == []
    core.process_event(VoteReceived(vote(0, PREVOTE, 0, NIL)))
    core.process_event(VoteReceived(vote(1, PREVOTE, 0, NIL)))
    effects = core.process_event(VoteReceived(vote(2, PREVOTE, 0, NIL)))
    assert not any(isinstance(e, Broadcast) for e in effects)  # round 0 was seen
    for i in (0, 1, 2):
        core.process_event(VoteReceived(vote(i, PRECOMMIT, 0, NIL)))
    core.process_event(TimeoutFired(1, 0, TimeoutKind.PRECOMMIT))
    effects = core.process_event(TimeoutFired(1, 1, TimeoutKind.PROPOSE))
    assert effects[:2] == persisted_vote(3, PREVOTE, 1, NIL)  # round 1 > all seen


def test_rebroadcast_resends_own_votes_without_persisting() -> None:
    core = started(3)
    core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE))
    assert core.process_event(TimeoutFired(1, 0, TimeoutKind.REBROADCAST)) == [
        ScheduleTimeout(1, 0, TimeoutKind.REBROADCAST, PARAMS.timeout_propose_ms),
        Broadcast(vote(3, PREVOTE, 0, NIL))]


def test_misuse_raises_consensus_errors() -> None:
    core = node(3)
    with pytest.raises(NotStartedError):
        core.process_event(TxsAvailable())
    core.process_event(START)
    with pytest.raises(HeightOrderError):
        core.process_event(START)


def test_functional_step_returns_the_state_and_effects() -> None:
    core = node(1)
    state, effects = step(core, START)
    assert state is core and effects == HEIGHT_TIMERS
