"""Events into the consensus core and effects out of it.

Effect ordering rule (the driver must follow it): effects are applied in list
order, and a PersistSignState effect is always placed before the Broadcast of the
vote or proposal it protects; the driver must finish (fsync) the persist before it
sends anything that follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chain.block import Block
from chain.crypto import Hash32
from chain.vote import NIL, CommitCertificate, Proposal, ValidatorSet, Vote


class Step(Enum):
    """Where a validator is inside a round (plus the wait before round 0)."""

    WAIT = "wait"  # height started; waiting for txs or the empty-block interval
    PROPOSE = "propose"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"
    COMMITTED = "committed"


class TimeoutKind(Enum):
    BLOCK_INTERVAL = "block_interval"  # minimum time since the last block has passed
    EMPTY_BLOCK = "empty_block"  # the empty-block interval has passed
    PROPOSE = "propose"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"
    REBROADCAST = "rebroadcast"  # re-send own latest votes so drifted nodes re-converge
    # Added for the wiped-data-directory guard: a validator started with no sign state
    # and fresh_start=True observes a height this long before it may sign there.
    OBSERVE = "observe"


# ---------------------------------------------------------------- events (in)


@dataclass(frozen=True, slots=True)
class StartHeight:
    """Begin consensus at `height` (after genesis, a commit, or sync)."""

    height: int
    """The height to decide."""
    validator_set: ValidatorSet
    """The validators that must certify this height."""
    prev_hash: Hash32
    """Hash of the block at height - 1 (genesis hash for height 1)."""
    prev_timestamp_ms: int
    """Timestamp of the block at height - 1 (genesis time for height 1)."""


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal whose signature the shell has verified."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """A vote whose signature the shell has verified."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timeout scheduled by a ScheduleTimeout effect has expired."""

    height: int
    round: int
    kind: TimeoutKind


@dataclass(frozen=True, slots=True)
class TxsAvailable:
    """The mempool holds transactions ready for a block."""


@dataclass(frozen=True, slots=True)
class BlockBuilt:
    """Answer to RequestBlock: the block this node proposes for (height, round)."""

    height: int
    round: int
    block: Block


@dataclass(frozen=True, slots=True)
class BlockValidated:
    """Answer to ValidateBlock: whether executing the block reproduced its header."""

    block_hash: Hash32
    valid: bool


@dataclass(frozen=True, slots=True)
class SignatureReady:
    """Answer to RequestSignature: our own proposal or vote, signed by the signer.

    May come late (after the round moved on) or never (the signer is away): the core
    takes it whenever it comes, and works on without it meanwhile."""

    message: Proposal | Vote
    """The message of the request, with the signer's signature."""


Event = (StartHeight | ProposalReceived | VoteReceived | TimeoutFired | TxsAvailable
         | BlockBuilt | BlockValidated | SignatureReady)


# ---------------------------------------------------------------- effects (out)


@dataclass(frozen=True, slots=True)
class PersistSignState:
    """Durably record that we are about to sign at (height, round, step) for block_hash.

    Must be fsynced before any following Broadcast is sent.
    """

    height: int
    """Height of the message about to be signed."""
    round: int
    """Round of the message about to be signed."""
    step: Step
    """PROPOSE for a proposal, PREVOTE or PRECOMMIT for a vote."""
    block_hash: Hash32
    """The block signed for; NIL for a nil vote."""
    # The two lock fields were added so that a restarted validator keeps its Tendermint
    # lock (lockedRound, lockedValue): without them a validator that precommitted v,
    # crashed and restarted could prevote another block, which breaks safety once more
    # than f validators restart. The block and its prevote quorum come with the lock
    # for liveness (see docs/consensus.md); the shell may store them once per lock
    # change. Defaults keep older callers valid.
    locked_round: int = -1
    """The round this validator is locked in at `height`, or -1."""
    locked_hash: Hash32 = NIL
    """The hash of the block it is locked on, or NIL."""
    locked_block: Block | None = None
    """The block it is locked on: re-proposed after a restart (line 16), since a lock
    on a block nobody still holds would stall the height forever."""
    lock_votes: tuple[Vote, ...] = ()
    """The quorum of prevotes at `locked_round` for the locked block (its proof of lock),
    relayed with a re-proposal so that others can apply line 28."""


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send a signed proposal or vote to all peers."""

    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Feed TimeoutFired(height, round, kind) back after `delay_ms`."""

    height: int
    round: int
    kind: TimeoutKind
    delay_ms: int


@dataclass(frozen=True, slots=True)
class RequestBlock:
    """We are the proposer: build a block for (height, round) and answer BlockBuilt."""

    height: int
    round: int
    prev_hash: Hash32
    min_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Execute `block` against the parent state and answer BlockValidated."""

    block: Block


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """The block is final: store it with its certificate, then send StartHeight."""

    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class RecordEvidence:
    """Two conflicting signed votes by one validator for one (height, round, kind)."""

    first: Vote
    second: Vote


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """Ask the remote signer to sign `message` (its signature field is empty), and feed
    SignatureReady back if and when it answers.

    Emitted only by a core that holds no key (the key is in a signer process), always
    after the PersistSignState of the same message. The shell must not wait for the
    answer inside the step: a signer that is away delays nothing but our own vote."""

    message: Proposal | Vote


Effect = (PersistSignState | Broadcast | ScheduleTimeout | RequestBlock | ValidateBlock
          | CommitBlock | RecordEvidence | RequestSignature)
