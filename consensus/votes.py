"""Vote bookkeeping of one height: what each validator voted, by round and kind, and the sums.

Counts votes, records equivocation and answers the quorum and f+1 questions of
Algorithm 1 (CometBFT's VoteSet and HeightVoteSet). It decides nothing and emits no
effects: the core (consensus.core) acts on its answers. It trusts that signatures were checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chain.crypto import Hash32, PublicKey
from chain.vote import NIL, ValidatorSet, Vote, VoteKind

MAX_HASHES_PER_VOTER = 4
"""Distinct block hashes counted per (validator, round, kind); bounds equivocators."""


@dataclass(frozen=True, slots=True)
class Equivocation:
    """Two votes by one validator for one (height, round, kind) and different blocks."""

    first: Vote
    """The validator's first vote counted in that round and kind."""
    second: Vote
    """The first vote of it that names another block hash."""


@dataclass(frozen=True, slots=True)
class AddVoteResult:
    """What adding one vote did."""

    is_counted: bool
    """True when the vote was new and now counts; False for a duplicate, or for an
    equivocator's hash beyond MAX_HASHES_PER_VOTER."""
    equivocation: Equivocation | None = None
    """The validator's first conflicting pair in this round and kind; given only once."""


_NOT_COUNTED = AddVoteResult(is_counted=False)
_COUNTED = AddVoteResult(is_counted=True)


class RoundVotes:
    """The prevotes or the precommits of one round at one height (CometBFT's VoteSet).

    Every validator has power 1 (govchain's validator sets are unweighted), so a power
    is a number of validators. An equivocator counts for each hash it signed, up to
    MAX_HASHES_PER_VOTER: two quorums for different hashes still share an honest
    validator, and whichever of its votes a node saw first cannot cost the round its
    quorum. Only `add_vote` changes it; every query returns an immutable value.
    """

    __slots__ = ("_by_voter", "_equivocations", "_power_by_hash", "kind", "round")

    def __init__(self, round_: int, kind: VoteKind) -> None:
        self.round = round_
        self.kind = kind
        self._by_voter: dict[PublicKey, dict[Hash32, Vote]] = {}
        """voter -> block hash -> vote; both levels in the order first seen."""
        self._power_by_hash: dict[Hash32, int] = {}
        self._equivocations: list[Equivocation] = []

    def add_vote(self, vote: Vote) -> AddVoteResult:
        """Count `vote` in place, unless it is a duplicate or over the equivocator cap."""
        assert (vote.round, vote.kind) == (self.round, self.kind)
        by_hash = self._by_voter.setdefault(vote.validator, {})
        if vote.block_hash in by_hash or len(by_hash) >= MAX_HASHES_PER_VOTER:
            return _NOT_COUNTED
        result = _COUNTED
        if len(by_hash) == 1:  # its first conflicting vote in this round and kind
            equivocation = Equivocation(next(iter(by_hash.values())), vote)
            self._equivocations.append(equivocation)
            result = AddVoteResult(is_counted=True, equivocation=equivocation)
        by_hash[vote.block_hash] = vote
        self._power_by_hash[vote.block_hash] = self._power_by_hash.get(vote.block_hash, 0) + 1
        return result

    def get_power(self, block_hash: Hash32) -> int:
        """The validators that voted for `block_hash` (NIL: for nil)."""
        return self._power_by_hash.get(block_hash, 0)

    def get_total_power(self) -> int:
        """The validators that cast any vote here (an equivocator once): lines 34 and 47."""
        return len(self._by_voter)

    def get_votes(self, block_hash: Hash32) -> tuple[Vote, ...]:
        """The votes for `block_hash`, in the order their voters were first seen."""
        return tuple(by_hash[block_hash] for by_hash in self._by_voter.values()
                     if block_hash in by_hash)

    def iter_votes(self) -> Iterator[Vote]:
        """Every counted vote: voters in the order first seen, each voter's in its order."""
        for by_hash in self._by_voter.values():
            yield from by_hash.values()

    def get_equivocations(self) -> tuple[Equivocation, ...]:
        """The first conflicting pair of each equivocator, in the order found."""
        return tuple(self._equivocations)


class HeightVotes:
    """Every vote of one height, by round and kind (CometBFT's HeightVoteSet).

    Besides the per-round sums it keeps two that the core asks for after every message:
    the blocks with 2f+1 precommits in some round (line 49), and the highest round in
    which f+1 validators sent any message, proposals included (line 55). Only
    `add_vote` and `add_sender` change it; every query returns an immutable value.
    """

    __slots__ = ("_highest_f_plus_one_round", "_precommit_quorums", "_rounds", "_senders",
                 "validator_set")

    def __init__(self, validator_set: ValidatorSet) -> None:
        self.validator_set = validator_set
        """The validators of this height; their quorum and f are the thresholds."""
        self._rounds: dict[tuple[int, VoteKind], RoundVotes] = {}
        self._senders: dict[int, set[PublicKey]] = {}
        """round -> validators that sent a vote or a proposal of it."""
        self._precommit_quorums: dict[Hash32, int] = {}
        """block hash -> first round with 2f+1 precommits for it; in the order formed."""
        self._highest_f_plus_one_round = -1

    # ------------------------------------------------------------ changes

    def add_vote(self, vote: Vote) -> AddVoteResult:
        """Count `vote` in place (see RoundVotes.add_vote); its voter becomes a sender."""
        key = (vote.round, vote.kind)
        round_votes = self._rounds.get(key)
        if round_votes is None:
            round_votes = self._rounds[key] = RoundVotes(vote.round, vote.kind)
        result = round_votes.add_vote(vote)
        if not result.is_counted:
            return result
        self.add_sender(vote.round, vote.validator)
        if (vote.kind is VoteKind.PRECOMMIT and vote.block_hash != NIL
                and round_votes.get_power(vote.block_hash) >= self.validator_set.quorum):
            self._precommit_quorums.setdefault(vote.block_hash, vote.round)
        return result

    def add_sender(self, round_: int, sender: PublicKey) -> None:
        """Note in place that `sender` sent a message of `round_` (the core calls this
        for proposals; add_vote does it for votes)."""
        senders = self._senders.setdefault(round_, set())
        senders.add(sender)
        if len(senders) > self.validator_set.max_faulty:
            self._highest_f_plus_one_round = max(self._highest_f_plus_one_round, round_)

    # ------------------------------------------------------------ queries

    def get_power(self, round_: int, kind: VoteKind, block_hash: Hash32) -> int:
        """The validators that sent a `kind` vote for `block_hash` in `round_`."""
        round_votes = self._rounds.get((round_, kind))
        return 0 if round_votes is None else round_votes.get_power(block_hash)

    def get_total_power(self, round_: int, kind: VoteKind) -> int:
        """The validators that sent any `kind` vote in `round_`."""
        round_votes = self._rounds.get((round_, kind))
        return 0 if round_votes is None else round_votes.get_total_power()

    def has_quorum(self, round_: int, kind: VoteKind, block_hash: Hash32) -> bool:
        """2f+1 `kind` votes for `block_hash` (NIL: for nil) in `round_`."""
        return self.get_power(round_, kind, block_hash) >= self.validator_set.quorum

    def has_quorum_of_any(self, round_: int, kind: VoteKind) -> bool:
        """2f+1 `kind` votes for anything in `round_` (lines 34 and 47)."""
        return self.get_total_power(round_, kind) >= self.validator_set.quorum

    def get_votes(self, round_: int, kind: VoteKind, block_hash: Hash32) -> tuple[Vote, ...]:
        """The `kind` votes for `block_hash` in `round_`, voters in the order first seen."""
        round_votes = self._rounds.get((round_, kind))
        return () if round_votes is None else round_votes.get_votes(block_hash)

    def get_all_votes(self) -> tuple[Vote, ...]:
        """Every counted vote, by round, prevotes before precommits."""
        return tuple(vote for key in sorted(self._rounds)
                     for vote in self._rounds[key].iter_votes())

    def get_equivocations(self) -> tuple[Equivocation, ...]:
        """The first conflicting pair of each (validator, round, kind), by round and kind."""
        return tuple(e for key in sorted(self._rounds)
                     for e in self._rounds[key].get_equivocations())

    def get_precommit_quorums(self) -> tuple[tuple[Hash32, int], ...]:
        """(block hash, round) for each block with 2f+1 precommits (not nil) in a round,
        in the order those quorums formed; the round is the first to reach one."""
        return tuple(self._precommit_quorums.items())

    def has_precommit_quorum(self, block_hash: Hash32) -> bool:
        """2f+1 precommits for `block_hash` in some round."""
        return block_hash in self._precommit_quorums

    def get_highest_f_plus_one_round(self) -> int:
        """The highest round in which f+1 validators sent a message, or -1 (line 55)."""
        return self._highest_f_plus_one_round
