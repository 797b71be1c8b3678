"""What the driver needs from the world besides its store: a clock, a worker for
blocking work, and a signature verifier.

Each is a small protocol handed to `Node`, the real implementation by default: the
system clock with the event loop's timers, worker threads, and the verifier's worker
processes (node/verifier.py). The simulation (tests/simulation) passes fakes on
simulated time, so that it runs the real driver. (Broadcasts leave through
`Node.broadcast_message`, which the network sets.) Nothing here holds chain state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import ParamSpec, Protocol, TypeVar

from chain.crypto import Hash32
from chain.tx import Transaction
from node import clock

P = ParamSpec("P")
T = TypeVar("T")


class Timer(Protocol):
    """A callback armed by `Clock.call_later` (hashable: the driver keeps a set)."""

    def cancel(self) -> None:
        """Do not call it (a no-op once it was called)."""
        ...


class Clock(Protocol):
    """Time as the driver reads it, and its timers."""

    def now_ms(self) -> int:
        """The wall clock, in ms since the Unix epoch: block timestamps, clock skew."""
        ...

    def monotonic_ms(self) -> int:
        """A clock that never goes back, in ms, for intervals (the timers' clock)."""
        ...

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        """Call `callback` on the event loop once `delay_ms` have passed."""
        ...


class Worker(Protocol):
    """Runs blocking work (disk writes, block execution) away from the event loop."""

    async def run(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)`, awaited; the driver does nothing else meanwhile."""
        ...


class Verifier(Protocol):
    """Verifies transaction signatures, once per transaction (node/verifier.py)."""

    def start(self) -> None:
        """Get ready before the first verification."""
        ...

    async def verify(self, txs: Sequence[Transaction]) -> list[bool]:
        """One verdict per transaction of `txs`, in order."""
        ...

    def forget(self, tx_hash: Hash32) -> None:
        """Drop the cached verdict of a transaction that is not on its way."""
        ...

    def forget_final(self, txs: Sequence[Transaction]) -> None:
        """Drop the cached verdicts of `txs`, now final."""
        ...

    def close(self) -> None:
        """Release what `start` took."""
        ...


class SystemClock:
    """The real clock: the system's wall clock (node.clock.now_ms, which fault
    rehearsals may skew), and the monotonic clock that asyncio's timers run on."""

    def now_ms(self) -> int:
        return clock.now_ms()

    def monotonic_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay_ms / 1000, callback)


class ThreadWorker:
    """The real worker: a thread of asyncio's default executor."""

    async def run(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(work, *args, **kwargs)
