"""Unit and property tests of the vote bookkeeping (consensus.votes), alone.

The type trusts its input (the shell checks signatures), so these votes carry no
signature; four validators unless a test says otherwise: quorum 3, f = 1.
"""

from __future__ import annotations

import random
from itertools import product

from hypothesis import given
from hypothesis import strategies as st

from chain.crypto import Hash32, PublicKey, compute_hash
from chain.vote import NIL, Validator, ValidatorSet, Vote, VoteKind
from consensus.votes import MAX_HASHES_PER_VOTER, Equivocation, HeightVotes, RoundVotes

PREVOTE, PRECOMMIT = VoteKind.PREVOTE, VoteKind.PRECOMMIT
KEYS = [PublicKey(bytes([i + 1]) * 32) for i in range(7)]
A, B, C = (compute_hash(name) for name in (b"a", b"b", b"c"))


def validators(n: int) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(k, f"v{i}") for i, k in enumerate(KEYS[:n])))


def vote(i: int, kind: VoteKind, round_: int, block_hash: Hash32) -> Vote:
    return Vote(kind, 1, round_, block_hash, KEYS[i], b"")


def height_votes(*votes: Vote, n: int = 4) -> HeightVotes:
    tally = HeightVotes(validators(n))
    for v in votes:
        tally.add_vote(v)
    return tally


# ---------------------------------------------------------------- unit tests


def test_quorum_for_a_block_and_for_any() -> None:
    tally = height_votes(vote(0, PREVOTE, 0, A), vote(1, PREVOTE, 0, A))
    assert tally.get_power(0, PREVOTE, A) == 2
    assert not tally.has_quorum(0, PREVOTE, A)
    tally.add_vote(vote(2, PREVOTE, 0, NIL))
    assert not tally.has_quorum(0, PREVOTE, A)
    assert tally.has_quorum_of_any(0, PREVOTE)  # lines 34 and 47: 2f+1 of anything
    assert not tally.has_quorum_of_any(0, PRECOMMIT)
    assert not tally.has_quorum_of_any(1, PREVOTE)
    tally.add_vote(vote(3, PREVOTE, 0, A))
    assert tally.has_quorum(0, PREVOTE, A)
    assert tally.get_votes(0, PREVOTE, A) == (vote(0, PREVOTE, 0, A), vote(1, PREVOTE, 0, A),
                                              vote(3, PREVOTE, 0, A))


def test_a_duplicate_is_not_counted_twice() -> None:
    tally = height_votes(vote(0, PREVOTE, 0, A))
    result = tally.add_vote(vote(0, PREVOTE, 0, A))
    assert not result.is_counted and result.equivocation is None
    assert tally.get_power(0, PREVOTE, A) == 1
    assert tally.get_all_votes() == (vote(0, PREVOTE, 0, A),)


def test_rounds_and_kinds_are_counted_apart() -> None:
    tally = height_votes(vote(0, PREVOTE, 0, A), vote(0, PRECOMMIT, 0, A),
                         vote(0, PREVOTE, 1, A))
    assert [tally.get_power(r, k, A) for r, k in product((0, 1), (PREVOTE, PRECOMMIT))] == \
        [1, 1, 1, 0]
    assert tally.get_equivocations() == ()


def test_equivocation_is_reported_once_and_counts_for_each_hash() -> None:
    tally = height_votes(vote(0, PREVOTE, 0, A))
    first = tally.add_vote(vote(0, PREVOTE, 0, B))
    assert first.is_counted
    assert first.equivocation == Equivocation(vote(0, PREVOTE, 0, A), vote(0, PREVOTE, 0, B))
    again = tally.add_vote(vote(0, PREVOTE, 0, NIL))
    assert again.is_counted and again.equivocation is None
    assert [tally.get_power(0, PREVOTE, h) for h in (A, B, NIL)] == [1, 1, 1]
    assert tally.get_total_power(0, PREVOTE) == 1  # one validator, whatever it signed
    assert tally.get_equivocations() == (first.equivocation,)


def test_an_equivocator_counts_for_at_most_max_hashes() -> None:
    hashes = [compute_hash(b"%d" % i) for i in range(MAX_HASHES_PER_VOTER + 2)]
    round_votes = RoundVotes(0, PRECOMMIT)
    counted = [round_votes.add_vote(vote(0, PRECOMMIT, 0, h)).is_counted for h in hashes]
    assert counted == [True] * MAX_HASHES_PER_VOTER + [False, False]
    assert round_votes.get_power(hashes[-1]) == 0
    assert len(list(round_votes.iter_votes())) == MAX_HASHES_PER_VOTER


def test_precommit_quorums_in_the_order_they_formed() -> None:
    tally = height_votes(*(vote(i, PRECOMMIT, 2, B) for i in range(3)),
                         *(vote(i, PRECOMMIT, 0, A) for i in range(3)),
                         *(vote(i, PRECOMMIT, 1, A) for i in range(3)),
                         *(vote(i, PRECOMMIT, 3, NIL) for i in range(4)),
                         *(vote(i, PREVOTE, 4, C) for i in range(4)))
    assert tally.get_precommit_quorums() == ((B, 2), (A, 0))  # nil and prevotes decide nothing
    assert tally.has_precommit_quorum(A) and not tally.has_precommit_quorum(C)


def test_f_plus_one_senders_of_a_round_count_proposals_too() -> None:
    tally = height_votes(vote(0, PREVOTE, 3, NIL), vote(0, PRECOMMIT, 3, NIL))
    assert tally.get_highest_f_plus_one_round() == -1  # one validator, twice
    tally.add_sender(3, KEYS[1])  # its proposal
    assert tally.get_highest_f_plus_one_round() == 3
    tally.add_vote(vote(2, PREVOTE, 1, NIL))
    tally.add_vote(vote(3, PREVOTE, 1, NIL))
    assert tally.get_highest_f_plus_one_round() == 3  # the highest, not the latest


def test_all_votes_by_round_then_kind() -> None:
    late, early, precommit = vote(0, PREVOTE, 1, A), vote(1, PREVOTE, 0, A), \
        vote(1, PRECOMMIT, 0, A)
    assert height_votes(late, precommit, early).get_all_votes() == (early, precommit, late)


# ---------------------------------------------------------------- properties

HASHES = [NIL, A, B, C]  # at most MAX_HASHES_PER_VOTER per voter: every vote counts

votes_of = st.integers(4, 7).flatmap(lambda n: st.tuples(st.just(n), st.lists(
    st.builds(vote, st.integers(0, n - 1), st.sampled_from([PREVOTE, PRECOMMIT]),
              st.integers(0, 2), st.sampled_from(HASHES)), max_size=60)))


def summary(tally: HeightVotes) -> object:
    """Everything that must not depend on the order the votes came in."""
    slots = list(product(range(3), (PREVOTE, PRECOMMIT)))
    return ([tally.get_total_power(r, k) for r, k in slots],
            [tally.get_power(r, k, h) for (r, k), h in product(slots, HASHES)],
            {(r, k, h): set(tally.get_votes(r, k, h)) for (r, k), h in product(slots, HASHES)},
            {h for h, _ in tally.get_precommit_quorums()},
            {(e.first.validator, e.first.round, e.first.kind) for e in tally.get_equivocations()},
            tally.get_highest_f_plus_one_round())


@given(votes_of, st.randoms(use_true_random=False))
def test_counting_does_not_depend_on_arrival_order(case: tuple[int, list[Vote]],
                                                   rng: random.Random) -> None:
    n, votes = case
    shuffled = list(votes)
    rng.shuffle(shuffled)
    assert summary(height_votes(*votes, n=n)) == summary(height_votes(*shuffled, n=n))


def signed_ballots(choices: list[set[Hash32]]) -> st.SearchStrategy[tuple[int, list[Vote]]]:
    votes = [vote(i, PRECOMMIT, 0, h) for i, hashes in enumerate(choices) for h in hashes]
    return st.tuples(st.just(len(choices)), st.permutations(votes))


ballots = st.integers(4, 7).flatmap(lambda n: st.lists(
    st.sets(st.sampled_from([NIL, A, B])), min_size=n, max_size=n)).flatmap(signed_ballots)
"""One round of precommits: each validator signs a set of hashes; any arrival order."""


@given(ballots)
def test_two_quorums_in_one_round_need_recorded_equivocators(
        case: tuple[int, list[Vote]]) -> None:
    n, votes = case
    tally = height_votes(*votes, n=n)
    signed: dict[PublicKey, set[Hash32]] = {}
    for v in votes:
        signed.setdefault(v.validator, set()).add(v.block_hash)
    equivocators = {e.first.validator for e in tally.get_equivocations()}
    assert equivocators == {key for key, hashes in signed.items() if len(hashes) > 1}
    for x, y in product([NIL, A, B], [NIL, A, B]):
        if x == y or not (tally.has_quorum(0, PRECOMMIT, x) and tally.has_quorum(0, PRECOMMIT, y)):
            continue
        both = ({v.validator for v in tally.get_votes(0, PRECOMMIT, x)}
                & {v.validator for v in tally.get_votes(0, PRECOMMIT, y)})
        assert len(both) > tally.validator_set.max_faulty  # two quorums share f+1 validators
        assert both <= equivocators


@given(votes_of)
def test_each_equivocation_names_one_validator_and_two_hashes(
        case: tuple[int, list[Vote]]) -> None:
    n, votes = case
    for e in height_votes(*votes, n=n).get_equivocations():
        assert (e.first.validator, e.first.round, e.first.kind) == \
            (e.second.validator, e.second.round, e.second.kind)
        assert e.first.block_hash != e.second.block_hash
