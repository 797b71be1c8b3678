"""Block pacing: the next proposer counts the block interval from its decision, not from
the end of its commit; the other validators count it from the end of theirs.

The nodes run on a clock of the test's own (node/runtime.py's Clock): time stands
still unless the test moves it, and each timer's delay is read exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus.events import ScheduleTimeout, TimeoutFired, TimeoutKind
from node.node import Node
from tests.node.conftest import VALIDATOR_KEYS, make_genesis, make_home


@dataclass(eq=False)
class ArmedTimer:
    delay_ms: int
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class StillClock:
    """A clock that moves only when told to; it records the timers armed on it."""

    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now = now_ms
        self.timers: list[ArmedTimer] = []

    def now_ms(self) -> int:
        return self.now

    def monotonic_ms(self) -> int:
        return self.now

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> ArmedTimer:
        timer = ArmedTimer(delay_ms, callback)
        self.timers.append(timer)
        return timer


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[tuple[Node, StillClock]]]:
    """Four validators of one genesis, each core at height 1, each on its own clock."""
    keys = VALIDATOR_KEYS[:4]
    genesis = make_genesis(keys)
    started = []
    for i, key in enumerate(keys):
        clock = StillClock()
        node = Node(make_home(tmp_path / f"node{i}", genesis, key), clock=clock)
        node.core.process_event(node._start_height_event())
        started.append((node, clock))
    yield started
    for node, _ in started:
        node.close()


def _delay_ms(node: Node, clock: StillClock, effect: ScheduleTimeout) -> int:
    """Schedule `effect` on `node`: the delay its timer is armed with."""
    node._schedule(effect)
    return clock.timers[-1].delay_ms


def test_proposer_counts_the_block_interval_from_its_decision(nodes) -> None:
    node, clock = next((n, c) for n, c in nodes if n._is_first_proposer(1))
    # This node began to commit height 0 150 ms ago (a slow commit).
    node._decided = (0, clock.now - 150)
    assert _delay_ms(node, clock, ScheduleTimeout(1, 0, TimeoutKind.BLOCK_INTERVAL, 200)) == 50
    # A commit that took longer than the interval: the next height may start at once.
    node._decided = (0, clock.now - 500)
    assert _delay_ms(node, clock, ScheduleTimeout(1, 0, TimeoutKind.BLOCK_INTERVAL, 200)) == 0
    # Every other timeout, and the interval of any other height, keeps its full delay.
    for effect in (ScheduleTimeout(1, 0, TimeoutKind.EMPTY_BLOCK, 200),
                   ScheduleTimeout(1, 0, TimeoutKind.PROPOSE, 200),
                   ScheduleTimeout(2, 0, TimeoutKind.BLOCK_INTERVAL, 200)):
        assert _delay_ms(node, clock, effect) == 200


def test_other_validators_wait_the_whole_interval_after_their_commit(nodes) -> None:
    first = [node._is_first_proposer(1) for node, _ in nodes]
    assert first.count(True) == 1
    for (node, clock), proposes in zip(nodes, first, strict=True):
        node._decided = (0, clock.now - 150)
        delay = _delay_ms(node, clock, ScheduleTimeout(1, 0, TimeoutKind.BLOCK_INTERVAL, 200))
        assert delay == (50 if proposes else 200)


def test_a_timer_enqueues_its_timeout_when_it_fires(nodes) -> None:
    node, clock = nodes[0]
    _delay_ms(node, clock, ScheduleTimeout(1, 0, TimeoutKind.PROPOSE, 200))
    timer = clock.timers[-1]
    assert timer in node._timers
    timer.callback()
    assert timer not in node._timers
    assert node._events.get_nowait() == TimeoutFired(1, 0, TimeoutKind.PROPOSE)
