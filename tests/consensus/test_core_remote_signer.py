"""Transcripts of a core whose key is in a signer process: it asks for each signature
(RequestSignature, after PersistSignState) and takes SignatureReady whenever it comes."""

from __future__ import annotations

import dataclasses

from chain.crypto import Hash32
from chain.vote import NIL, Proposal, Vote
from consensus.core import ConsensusState
from consensus.events import (
    BlockBuilt,
    BlockValidated,
    Broadcast,
    PersistSignState,
    ProposalReceived,
    RequestBlock,
    RequestSignature,
    SignatureReady,
    Step,
    TimeoutFired,
    TimeoutKind,
)
from tests.consensus.test_core_transcripts import (
    CHAIN,
    KEYS,
    PARAMS,
    PREVOTE,
    START,
    T0,
    block,
    fallback,
    proposal,
    timeout,
    vote,
)


def remote(i: int) -> ConsensusState:
    """Validator v`i` with only its public key: a signer holds the key."""
    core = ConsensusState(CHAIN, KEYS[i].public_key, PARAMS, None)
    core.process_event(START)
    core.process_event(TimeoutFired(1, 0, TimeoutKind.BLOCK_INTERVAL))
    core.process_event(TimeoutFired(1, 0, TimeoutKind.EMPTY_BLOCK))
    return core


def unsigned_vote(i: int, round_: int, block_hash: bytes) -> Vote:
    return dataclasses.replace(vote(i, PREVOTE, round_, block_hash), signature=b"")


def test_remote_vote_is_requested_then_sent_when_signed() -> None:
    core = remote(0)
    b = block(0, 1)
    core.process_event(ProposalReceived(proposal(b, 0)))
    effects = core.process_event(BlockValidated(b.hash, True))
    # Persist, then ask; nothing is broadcast before the signature comes back.
    assert effects == [PersistSignState(1, 0, Step.PREVOTE, b.hash),
                       RequestSignature(unsigned_vote(0, 0, b.hash)),
                       fallback(TimeoutKind.PREVOTE, 0)]
    assert core.step is Step.PREVOTE
    signed = vote(0, PREVOTE, 0, b.hash)
    assert core.process_event(SignatureReady(signed)) == [Broadcast(signed)]
    assert core.process_event(SignatureReady(signed)) == []  # already in hand


def test_remote_signer_away_the_core_moves_on_without_its_vote() -> None:
    core = remote(0)
    effects = core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE))
    assert effects[:2] == [PersistSignState(1, 0, Step.PREVOTE, NIL),
                           RequestSignature(unsigned_vote(0, 0, NIL))]
    # No answer: the prevote timeout still leads to the next step.
    effects = core.process_event(TimeoutFired(1, 0, TimeoutKind.PREVOTE))
    assert core.step is Step.PRECOMMIT
    assert isinstance(effects[1], RequestSignature) and effects[1].message.kind == 2


def test_invalid_signature_ready_is_ignored() -> None:
    core = remote(0)
    core.process_event(TimeoutFired(1, 0, TimeoutKind.PROPOSE))
    forged = dataclasses.replace(vote(0, PREVOTE, 0, NIL), signature=b"\x01" * 64)
    of_another = vote(2, PREVOTE, 0, NIL)
    other_height = vote(0, PREVOTE, 0, NIL, height=2)
    for message in (forged, of_another, other_height):
        assert core.process_event(SignatureReady(message)) == []
    assert core.own_votes_for_height() == ()


def test_remote_proposer_asks_for_its_proposal() -> None:
    core = ConsensusState(CHAIN, KEYS[1].public_key, PARAMS, None)  # proposer of (1, 0)
    core.process_event(START)
    core.process_event(TimeoutFired(1, 0, TimeoutKind.BLOCK_INTERVAL))
    effects = core.process_event(TimeoutFired(1, 0, TimeoutKind.EMPTY_BLOCK))
    assert RequestBlock(1, 0, START.prev_hash, T0 + 1) in effects
    b = block(0, 1)
    effects = core.process_event(BlockBuilt(1, 0, b))
    assert effects == [PersistSignState(1, 0, Step.PROPOSE, b.hash),
                       RequestSignature(Proposal(1, 0, -1, b, b""))]
    signed = proposal(b, 0)
    effects = core.process_event(SignatureReady(signed))
    # Sent, then our own (valid, built here) block is prevoted: asked for in turn.
    assert effects[0] == Broadcast(signed)
    assert RequestSignature(unsigned_vote(1, 0, b.hash)) in effects
    assert timeout(TimeoutKind.PROPOSE, 0) not in effects
    assert Hash32(b.hash) == core.last_signed.block_hash  # type: ignore[union-attr]
