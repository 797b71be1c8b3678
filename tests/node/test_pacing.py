"""Block pacing: the next proposer counts the block interval from its decision, not from
the end of its commit; the other validators count it from the end of theirs."""

from __future__ import annotations

import asyncio

from consensus.events import ScheduleTimeout, TimeoutKind
from tests.node.conftest import wait_for


def _new_timer(node, effect: ScheduleTimeout) -> float:
    """Schedule `effect` on `node`; seconds until it fires (the timer is cancelled)."""
    before = set(node._timers)
    node._schedule(effect)
    (handle,) = node._timers - before
    handle.cancel()
    node._timers.discard(handle)
    return handle.when() - asyncio.get_running_loop().time()


async def test_proposer_counts_the_block_interval_from_its_decision(single_node) -> None:
    node = single_node.node  # the only validator: the proposer of every height
    height = node.store.head_height
    # This node began to commit `height` 150 ms ago (a slow commit).
    node._decided = (height, asyncio.get_running_loop().time() - 0.150)
    interval = _new_timer(node, ScheduleTimeout(height + 1, 0, TimeoutKind.BLOCK_INTERVAL, 200))
    assert 0.0 < interval <= 0.051
    # A commit that took longer than the interval: the next height may start at once.
    node._decided = (height, asyncio.get_running_loop().time() - 0.5)
    assert _new_timer(node, ScheduleTimeout(height + 1, 0, TimeoutKind.BLOCK_INTERVAL,
                                            200)) <= 0.0
    # Every other timeout, and the interval of any other height, keeps its full delay.
    for effect in (ScheduleTimeout(height + 1, 0, TimeoutKind.EMPTY_BLOCK, 200),
                   ScheduleTimeout(height + 1, 0, TimeoutKind.PROPOSE, 200),
                   ScheduleTimeout(height + 2, 0, TimeoutKind.BLOCK_INTERVAL, 200)):
        assert 0.19 < _new_timer(node, effect) <= 0.2


async def test_other_validators_wait_the_whole_interval_after_their_commit(network4) -> None:
    # All four at the same height; nothing runs in between (one event loop).
    height = await wait_for(lambda: _common_height(network4), 20, "all four at one height")
    first = [running.node._is_first_proposer(height) for running in network4]
    assert first.count(True) == 1
    for running, proposes in zip(network4, first, strict=True):
        node = running.node
        node._decided = (height - 1, asyncio.get_running_loop().time() - 0.150)
        delay = _new_timer(node, ScheduleTimeout(height, 0, TimeoutKind.BLOCK_INTERVAL, 200))
        if proposes:
            assert 0.0 < delay <= 0.051
        else:
            assert 0.19 < delay <= 0.2


async def _common_height(nodes) -> int | None:
    heights = {running.node.core.height for running in nodes}
    return heights.pop() if len(heights) == 1 and min(heights) > 0 else None
