"""The world a simulated node runs in: node/runtime.py's protocols on simulated time.

One asyncio event loop without I/O or threads runs every node's driver and timer; time
moves only when nothing is ready. The worker runs work inline after a simulated delay;
the verifier checks signatures inline. Nothing here reads the real clock.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from chain.crypto import Hash32
from chain.tx import Transaction, signatures_verify_encoded

P = ParamSpec("P")
T = TypeVar("T")


class SimulatedLoop(asyncio.BaseEventLoop):
    """An asyncio event loop on simulated time, without I/O or threads: the callbacks
    that are ready run in order, then time jumps to the next timer. Timers fall due in
    the order of (time, arming), so the same calls run the same way every time.

    It replaces BaseEventLoop's timer heap and `_run_once` (whose selector would wait
    in real time) with the few lines simulated time needs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._armed = itertools.count()

    def time(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, (when, next(self._armed), timer))
        return timer

    def _run_once(self) -> None:
        timers, ready = self._timers, self._ready  # type: ignore[attr-defined]
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            while timers and timers[0][2].cancelled():
                heapq.heappop(timers)
            if not timers:
                raise RuntimeError("the simulation has nothing left to run")
            self._now = max(self._now, timers[0][0])
        while timers and timers[0][0] <= self._now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled():
                ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle.cancelled():
                handle._run()

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    def close(self) -> None:
        self._timers.clear()
        super().close()


class SimClock:
    """node/runtime.py's Clock on the simulated loop; the wall clock reads
    `wall_start_ms` at simulated time 0."""

    def __init__(self, loop: SimulatedLoop, wall_start_ms: int) -> None:
        self._loop = loop
        self._wall_start_ms = wall_start_ms

    def now_ms(self) -> int:
        return self._wall_start_ms + self.monotonic_ms()

    def monotonic_ms(self) -> int:
        return round(self._loop.time() * 1000)

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay_ms / 1000, callback)


class SimWorker:
    """node/runtime.py's Worker: no thread; the work runs inline after the simulated time
    `get_work_ms(name of the work, its arguments)` says it takes."""

    def __init__(self, get_work_ms: Callable[[str, tuple[Any, ...]], int]) -> None:
        self._get_work_ms = get_work_ms

    async def run(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        delay_ms = self._get_work_ms(getattr(work, "__name__", ""), args)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return work(*args, **kwargs)


class SimVerifier:
    """node/runtime.py's Verifier: signatures checked inline, each once per run."""

    def __init__(self) -> None:
        self._verdicts: dict[Hash32, bool] = {}

    def start(self) -> None:
        pass

    async def verify(self, txs: Sequence[Transaction]) -> list[bool]:
        verdicts = self._verdicts
        for tx in txs:
            if tx.hash not in verdicts:
                verdicts[tx.hash] = signatures_verify_encoded(tx.encoded)
        return [verdicts[tx.hash] for tx in txs]

    def forget(self, tx_hash: Hash32) -> None:
        pass

    def forget_final(self, txs: Sequence[Transaction]) -> None:
        pass

    def close(self) -> None:
        pass
