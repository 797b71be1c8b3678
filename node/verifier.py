"""Signature verification off the event loop, once per transaction.

pynacl releases the GIL while it verifies, so a thread per core verifies in
parallel with no pickling. Verified transaction hashes are remembered (bounded), so a
transaction admitted to the mempool is not verified again in a proposal or block.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from chain.crypto import Hash32, is_valid_signature
from chain.tx import Transaction

BATCH_SIZE = 256


def verify_batch(txs: Sequence[Transaction]) -> list[bool]:
    """One verdict per transaction: it has signatures and every one verifies."""
    results = []
    for tx in txs:
        message = tx.signing_bytes
        results.append(bool(tx.signatures) and all(
            is_valid_signature(s.public_key, message, s.signature) for s in tx.signatures))
    return results


class SignatureVerifier:
    """Verifies transaction signatures in a thread pool and caches the verdicts."""

    def __init__(self, threads: int = 0, cache_size: int = 500_000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2,
                                        thread_name_prefix="verify")
        self._verified: OrderedDict[Hash32, None] = OrderedDict()
        self._cache_size = cache_size

    def is_known_valid(self, tx_hash: Hash32) -> bool:
        return tx_hash in self._verified

    def remember(self, tx_hash: Hash32) -> None:
        self._verified[tx_hash] = None
        if len(self._verified) > self._cache_size:
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
        todo = [i for i, v in enumerate(verdicts) if v is None]
        if todo:
            loop = asyncio.get_running_loop()
            chunks = [todo[i:i + BATCH_SIZE] for i in range(0, len(todo), BATCH_SIZE)]
            futures = [loop.run_in_executor(self._pool, verify_batch, [txs[i] for i in chunk])
                       for chunk in chunks]
            for chunk, result in zip(chunks, await asyncio.gather(*futures), strict=True):
                for i, ok in zip(chunk, result, strict=True):
                    verdicts[i] = ok
                    if ok:
                        self.remember(txs[i].hash)
        return [bool(v) for v in verdicts]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
