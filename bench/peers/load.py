"""One load driver for every chain in the side-by-side benchmark.

Each lane is a list of units (one transaction, or one batch) sent in order with one
request in flight; lanes run concurrently. A follower reports the transactions of
each new final (govchain) or mined (peer) block; a transaction's latency is the time
its block was seen minus the time its request left. Bounded by a deadline; never
asserts, only measures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.common import percentile


@dataclass(frozen=True, slots=True)
class Unit:
    """What one request carries: the hashes it submits (lowercase hex, no 0x) and the
    request's payload for the chain's submit function."""

    hashes: tuple[str, ...]
    payload: Any


class Follower(Protocol):
    async def poll(self) -> list[list[str]]:
        """The tx hashes of each block that became final since the last poll, in order."""
        ...


Send = Callable[[int, Unit], Awaitable[list[str]]]
"""send(lane, unit) submits one unit and returns the refusals' messages (empty if none)."""


@dataclass(slots=True)
class Measurement:
    label: str
    offered: int
    final: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    blocks: int = 0
    refused: int = 0
    first_refusal: str | None = None
    timed_out: bool = False
    peak_rss_mb: float = 0.0
    client_cpu: float = 0.0
    """CPU time of this benchmark process (the load generator) over wall time: 1.0 is
    one core busy. Near 1.0, the figure may be the generator's limit, not the chain's."""

    @property
    def tx_per_s(self) -> float:
        return self.final / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50_s(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99_s(self) -> float:
        return percentile(self.latencies, 0.99)

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "offered": self.offered, "final": self.final,
                "seconds": round(self.seconds, 3), "tx_per_s": round(self.tx_per_s, 1),
                "p50_s": round(self.p50_s, 4), "p99_s": round(self.p99_s, 4),
                "blocks": self.blocks, "refused": self.refused,
                "first_refusal": self.first_refusal, "timed_out": self.timed_out,
                "peak_rss_mb": round(self.peak_rss_mb, 1),
                "client_cpu": round(self.client_cpu, 2)}


def split_lanes(units: Sequence[Unit], lanes: int) -> list[list[Unit]]:
    """Unit i goes to lane i mod `lanes`: with units in round-robin sender order and one
    lane per sender, each lane is one sender's transactions in nonce order."""
    return [list(units[i::lanes]) for i in range(lanes)]


async def measure(label: str, lanes: list[list[Unit]], send: Send, follower: Follower, *,
                  max_seconds: float, poll_s: float = 0.02) -> Measurement:
    """Submits every lane's units and follows blocks until each accepted transaction is
    seen in a block or `max_seconds` have passed since the first request."""
    result = Measurement(label, offered=sum(len(u.hashes) for lane in lanes for u in lane))
    submitted_at: dict[str, float] = {}
    final_at: dict[str, float] = {}
    submitting = True
    cpu0 = sum(os.times()[:2])
    t0 = time.monotonic()
    deadline = t0 + max_seconds

    async def run_lane(index: int, units: list[Unit]) -> None:
        for unit in units:
            now = time.monotonic()
            for tx_hash in unit.hashes:
                submitted_at[tx_hash] = now
            refusals = await send(index, unit)
            if refusals:
                result.refused += len(refusals)
                result.first_refusal = result.first_refusal or refusals[0]

    async def follow() -> None:
        while time.monotonic() < deadline:
            blocks = await follower.poll()
            now = time.monotonic()
            for hashes in blocks:
                result.blocks += 1
                for tx_hash in hashes:
                    if tx_hash in submitted_at:
                        final_at.setdefault(tx_hash, now)
            if not submitting and len(final_at) >= result.offered - result.refused:
                return
            if not blocks:
                await asyncio.sleep(poll_s)

    follower_task = asyncio.create_task(follow())
    try:
        async with asyncio.timeout(max_seconds):
            await asyncio.gather(*(run_lane(i, lane) for i, lane in enumerate(lanes)))
    except TimeoutError:
        result.timed_out = True
    submitting = False
    await follower_task
    result.timed_out = result.timed_out or len(final_at) < result.offered - result.refused
    result.final = len(final_at)
    result.seconds = (max(final_at.values()) if final_at else time.monotonic()) - t0
    result.latencies = [final_at[h] - submitted_at[h] for h in final_at]
    result.client_cpu = (sum(os.times()[:2]) - cpu0) / max(time.monotonic() - t0, 1e-9)
    return result


def median_summary(runs: Sequence[Measurement]) -> dict[str, Any]:
    """Medians over repeated runs, each figure on its own (tx/s, p50 and p99 may come
    from different runs)."""
    return {"label": runs[0].label, "runs": len(runs),
            "tx_per_s": statistics.median(r.tx_per_s for r in runs),
            "p50_s": statistics.median(r.p50_s for r in runs),
            "p99_s": statistics.median(r.p99_s for r in runs),
            "final": statistics.median(r.final for r in runs),
            "offered": runs[0].offered,
            "blocks": statistics.median(r.blocks for r in runs),
            "peak_rss_mb": statistics.median(r.peak_rss_mb for r in runs),
            "client_cpu": statistics.median(r.client_cpu for r in runs),
            "refused": sum(r.refused for r in runs),
            "timed_out": any(r.timed_out for r in runs)}
