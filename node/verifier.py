"""Signature verification in worker processes, once per transaction.

Verification runs in a small pool of worker processes (one fewer than the cores, at
least one), not in threads: pynacl releases the GIL while it verifies, but a thread
must take the GIL back for every signature, and with the node's own thread busy in
Python the two convoy on it. Measured on 2 cores: a process worker took a single node
from 5,100 to 7,150 final tx/s and the audit from 5,900 to 8,800 tx/s
(docs/performance.md). A worker gets each transaction's encoding, which the node
already holds, so sending it costs the node little.

Verified transaction hashes are remembered (bounded), so a transaction admitted to the
mempool is not verified again in a proposal or block. A verdict is dropped when its
transaction is final, refused, or leaves the mempool otherwise: the cache follows
the mempool, never the count of refusals.

Workers start from a fork server that has imported only this module, never from a
fork of the node (whose threads and open database must not be copied). A worker exits
when the process that started it is gone, even if that one was killed, so no worker
outlives its node; it ignores SIGINT, which the node handles for the whole group.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait

from chain.crypto import Hash32
from chain.tx import Transaction, signatures_verify_encoded

log = logging.getLogger("govchain.verifier")

BATCH_SIZE = 256
"""Transactions per message to a worker."""

VERDICTS_BEYOND_MEMPOOL = 100_000
"""Verdicts kept beyond the mempool's cap (the node's cache holds mempool_max_txs plus
this many): those of proposals and synced blocks still on their way to a commit, ten
full blocks of the default max_block_txs. About 150 bytes each."""


def default_workers() -> int:
    """One worker per core but one: the node's own thread needs the remaining core."""
    return max(1, (os.cpu_count() or 2) - 1)


def verify_encoded(encoded_txs: Sequence[bytes]) -> list[bool]:
    """One verdict per transaction: it has signatures and every one verifies (runs in a
    worker). The node sends the bytes it already holds (each `tx.encoded` of a decoded
    transaction, so of checked form) and the worker cuts the signing bytes and
    signatures out of them: that costs the node nothing, where cutting them out for the
    worker cost it 4-5 % of its time, and the worker only reads what it verifies
    (a full decode again took it 10-15 % of its time)."""
    return [signatures_verify_encoded(encoded) for encoded in encoded_txs]


def _start_worker() -> None:
    """Runs first in each worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        def exit_with_parent() -> None:
            wait([parent.sentinel])
            os._exit(0)
        threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class VerdictBatch:
    """Verification of a sequence of transactions, under way in the workers."""

    def __init__(self, pool: ProcessPoolExecutor, futures: list[tuple[int, Future[list[bool]]]],
                 total: int) -> None:
        self.pool = pool
        self._futures = futures
        self._total = total

    def result(self) -> list[bool]:
        """One verdict per transaction, in order (waits for the workers)."""
        verdicts: list[bool] = []
        for _, future in self._futures:
            verdicts.extend(future.result())
        assert len(verdicts) == self._total
        return verdicts

    async def wait(self) -> list[bool]:
        """`result()` for a coroutine: awaits the workers without blocking the loop."""
        verdicts: list[bool] = []
        for _, future in self._futures:
            chunk: list[bool] = await asyncio.wrap_future(future)
            verdicts += chunk
        return verdicts

    def first_bad(self) -> int | None:
        """Index of the first transaction with a bad signature, or None."""
        for offset, future in self._futures:
            verdicts = future.result()
            if not all(verdicts):
                return offset + verdicts.index(False)
        return None


class SignatureVerifier:
    """Verifies transaction signatures in worker processes and caches the verdicts."""

    def __init__(self, workers: int = 0, cache_size: int = 500_000) -> None:
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._verified: OrderedDict[Hash32, None] = OrderedDict()
        self.cache_size = cache_size
        """Most verdicts kept; the oldest goes first."""
        # Transactions asked for during this turn of the event loop, sent together.
        self._queued: list[tuple[Sequence[Transaction], asyncio.Future[list[bool]]]] = []
        self._flush_tasks: set[asyncio.Task[None]] = set()

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(),
                                                 initializer=_start_worker)
            return self._pool

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        """Drop `broken` (a worker of it died, e.g. killed for memory); the next
        verification starts new workers."""
        with self._pool_lock:
            if self._pool is not broken:
                return
            self._pool = None
        log.warning("a signature worker process died; starting new workers")
        broken.shutdown(wait=False, cancel_futures=True)

    def start(self) -> None:
        """Start the workers now, without waiting for them (they otherwise start at the
        first verification, which then waits for them)."""
        self._get_pool().submit(verify_encoded, [])

    def submit(self, txs: Sequence[Transaction], chunk: int = BATCH_SIZE) -> VerdictBatch:
        """Start verifying every signature of `txs` (no cache); see VerdictBatch."""
        for attempt in (1, 2):
            pool = self._get_pool()
            try:
                return VerdictBatch(pool, [
                    (i, pool.submit(verify_encoded, [tx.encoded for tx in txs[i:i + chunk]]))
                    for i in range(0, len(txs), chunk)], len(txs))
            except BrokenProcessPool:
                self._discard(pool)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def verify_now(self, txs: Sequence[Transaction], chunk: int = BATCH_SIZE) -> list[bool]:
        """Verdicts for `txs` (no cache), waiting for them. If a worker dies meanwhile,
        new workers are started and the work is sent again, once."""
        batch = self.submit(txs, chunk)
        try:
            return batch.result()
        except BrokenProcessPool:
            self._discard(batch.pool)
            return self.submit(txs, chunk).result()

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (none before the first verification)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return sorted(pid for pid, p in processes.items() if p.is_alive())

    def is_known_valid(self, tx_hash: Hash32) -> bool:
        return tx_hash in self._verified

    def remember(self, tx_hash: Hash32) -> None:
        self._verified[tx_hash] = None
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)

    def forget(self, tx_hash: Hash32) -> None:
        self._verified.pop(tx_hash, None)

    def forget_final(self, txs: Sequence[Transaction]) -> None:
        """Drop the verdicts of `txs`, now final: no block or peer can bring them again
        as new, so the cache holds only transactions still on their way (bounded by the
        mempool, plus what a peer gossips before its block)."""
        verified = self._verified
        for tx in txs:
            verified.pop(tx.hash, None)

    def __len__(self) -> int:
        return len(self._verified)

    async def verify(self, txs: Sequence[Transaction]) -> list[bool]:
        """Verdicts for `txs` in order; cached ones cost nothing."""
        verdicts: list[bool | None] = [True if self.is_known_valid(tx.hash) else None
                                       for tx in txs]
        todo = [txs[i] for i, v in enumerate(verdicts) if v is None]
        if todo:
            results = await (self._verify_together(todo) if len(todo) < BATCH_SIZE
                             else self._verify_alone(todo))
            fresh = iter(results)
            for i, v in enumerate(verdicts):
                if v is None:
                    ok = next(fresh)
                    verdicts[i] = ok
                    if ok:
                        self.remember(txs[i].hash)
        return [bool(v) for v in verdicts]

    async def _verify_alone(self, txs: Sequence[Transaction]) -> list[bool]:
        batch = self.submit(txs)
        try:
            return await batch.wait()
        except BrokenProcessPool:
            self._discard(batch.pool)
            return await self.submit(txs).wait()

    def _verify_together(self, txs: Sequence[Transaction]) -> asyncio.Future[list[bool]]:
        """Verdicts for `txs` (fewer than BATCH_SIZE), sent to the workers with the other
        small requests of the same turn of the event loop: many small requests (one
        transaction per RPC call) make one message to a worker, not one each. Large
        ones go alone, so that each caller has its verdicts as soon as they are ready
        (sync asks for a whole answer's blocks at once and applies them in order)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((txs, future))
        return future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.ensure_future(self._verify_queued(queued))
        self._flush_tasks.add(task)
        task.add_done_callback(self._flush_tasks.discard)

    async def _verify_queued(
            self, queued: list[tuple[Sequence[Transaction], asyncio.Future[list[bool]]]]
    ) -> None:
        txs = [tx for part, _ in queued for tx in part]
        try:
            results = await self._verify_alone(txs)
        except Exception as e:  # the callers get it
            for _, future in queued:
                if not future.done():
                    future.set_exception(e)
            return
        except BaseException:  # cancelled (closing): so are the callers
            for _, future in queued:
                future.cancel()
            raise
        start = 0
        for part, future in queued:
            if not future.done():  # a caller that gave up cancelled its future
                future.set_result(results[start:start + len(part)])
            start += len(part)

    def close(self) -> None:
        for task in self._flush_tasks:
            task.cancel()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
