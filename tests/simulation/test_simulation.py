"""Seeded simulations of a validator network of real nodes (node/node.py's driver,
core, mempool, executor and store) in a simulated world (tests/simulation/world.py).

Each seed runs chaos (drops, duplicates, reordering, partitions, crashes, an
equivocating validator) then heals; invariants are checked at every broadcast and
commit. A failure prints SIM_SEED=<seed>; `SIM_SEED=<seed> pytest tests/simulation`
replays it.
"""

from __future__ import annotations

import os

import pytest

from tests.simulation.sim import Scenario, Simulation, SimulationFailure, run_seed

SEEDS = 500
CHUNK = 50
REPLAY = os.environ.get("SIM_SEED")


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK))
def test_random_seeds_keep_safety_and_liveness(first: int) -> None:
    seeds = [int(REPLAY)] if REPLAY else range(first, first + CHUNK)
    for seed in seeds:
        run_seed(seed)


@pytest.mark.parametrize("n", [5, 6, 7])
def test_larger_validator_sets(n: int) -> None:
    for seed in range(10):
        sim = run_seed(1000 + seed, n=n)
        assert all(node.height >= 3 for node in sim.honest_up())


def test_equivocating_validator_is_reported() -> None:
    sim = Simulation(Scenario(seed=7, byzantine=1, drop_rate=0.0, partitions=False,
                              crashes=False))
    sim.run()
    assert sim.evidence, "an equivocating validator went unreported"
    assert {e.first.validator for e in sim.evidence} == {sim.keys[0].public_key}


def test_no_honest_vote_for_a_proposal_with_a_wrong_results_root() -> None:
    # A byzantine proposer sends some peers, instead of its block, one whose header is
    # right but for its state root or its results root (the transactions' result codes
    # and events). Only executing the block shows it; every honest validator must
    # prevote nil (the simulation fails at the first honest vote for such a block) and
    # the chain must go on.
    sim = Simulation(Scenario(seed=19, byzantine=1, malformed_rate=1.0, drop_rate=0.0,
                              partitions=False, crashes=False, liveness_heights=4))
    sim.run()
    assert "results_root" in sim.malformed.values(), "no block with a wrong results root sent"
    assert all(node.height >= 4 for node in sim.honest_up())
    for node in sim.honest_up():
        assert not {block.hash for block, _ in node.chain} & set(sim.malformed)


def test_quorum_lost_then_regained_with_a_wiped_validator() -> None:
    # 2 of 4 validators crash: no quorum, the chain stops. One comes back with a wiped
    # data directory (no sign state): it must observe before signing, then the chain
    # must resume with 3 of 4.
    scenario = Scenario(seed=42, drop_rate=0.0, partitions=False, crashes=False,
                        chaos_ms=4_000, restart_at_heal=False, liveness_heights=3,
                        liveness_budget_ms=20_000,
                        controls=[(500, "crash", 2), (600, "crash", 3),
                                  (3_000, "wipe_restart", 2)])
    sim = Simulation(scenario)
    heights_during_outage: list[int] = []
    sim.at(2_900, lambda: heights_during_outage.append(
        max(n.height for n in sim.nodes)))
    sim.at(700, lambda: heights_during_outage.append(
        max(n.height for n in sim.nodes)))
    sim.run()
    assert heights_during_outage[0] == heights_during_outage[1], "progress without quorum"
    wiped = sim.nodes[2]
    assert wiped.is_up and wiped.sign_state is not None, "the wiped validator never signed"
    assert wiped.height >= heights_during_outage[0] + 3


def test_blocks_slower_to_execute_than_the_propose_timeout_commit_in_round_0() -> None:
    # No faults; each validator takes up to 2.5 s to execute a proposed block, longer
    # than the 1 s propose timeout. The timeout must not overtake the verdict on a
    # proposal that came in time: every height commits in its first round.
    scenario = Scenario(seed=11, drop_rate=0.0, duplicate_rate=0.0, partitions=False,
                        crashes=False, chaos_ms=1_000, max_validate_ms=2_500,
                        liveness_heights=6, liveness_budget_ms=60_000)
    sim = Simulation(scenario)
    sim.run()
    chain = sim.nodes[0].chain
    assert len(chain) >= 6
    assert [block.header.round for block, _ in chain] == [0] * len(chain)


def test_a_broken_invariant_names_the_seed() -> None:
    sim = Simulation(Scenario(seed=3))
    with pytest.raises(SimulationFailure, match="SIM_SEED=3"):
        sim.fail("a test failure")
