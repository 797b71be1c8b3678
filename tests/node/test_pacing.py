"""Block pacing: the block interval runs from the decision, not from the end of a commit."""

from __future__ import annotations

import asyncio

from consensus.events import ScheduleTimeout, TimeoutKind


def _new_timer(node, effect: ScheduleTimeout) -> float:
    """Schedule `effect` on `node`; seconds until it fires (the timer is cancelled)."""
    before = set(node._timers)
    node._schedule(effect)
    (handle,) = node._timers - before
    handle.cancel()
    node._timers.discard(handle)
    return handle.when() - asyncio.get_running_loop().time()


async def test_block_interval_counts_the_commit_time(single_node) -> None:
    node = single_node.node
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
