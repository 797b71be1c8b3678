"""Signature verification: once per transaction, and the verdicts it keeps are bounded."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chain.crypto import KeyPair
from chain.tx import make_transaction
from node.verifier import SignatureVerifier, default_workers
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID

ALICE, BOB = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]


def transfer(nonce: int, key: KeyPair = ALICE):
    return make_transaction(CHAIN_ID, key, nonce, "transfer",
                            {"to": BOB.address, "asset": "GOV", "amount": 1})


async def test_valid_verdicts_are_kept_and_bad_ones_are_not():
    verifier = SignatureVerifier(workers=1, cache_size=3)
    try:
        good = [transfer(n) for n in range(4)]
        forged = dataclasses.replace(transfer(9), sender=BOB.address)
        assert await verifier.verify([*good, forged]) == [True] * 4 + [False]
        # The oldest good verdict made room (cap 3); the forged one was never kept.
        assert len(verifier) == 3
        assert not verifier.is_known_valid(good[0].hash)
        assert all(verifier.is_known_valid(tx.hash) for tx in good[1:])
        assert not verifier.is_known_valid(forged.hash)
        verifier.forget_final(good[1:3])
        assert len(verifier) == 1 and verifier.is_known_valid(good[3].hash)
    finally:
        verifier.close()


async def test_final_transactions_leave_the_verdict_cache(single_node):
    node = single_node.node
    txs = [transfer(n) for n in range(20)]
    assert all(e is None for e in await node.submit_txs(txs))
    assert all(node.verifier.is_known_valid(tx.hash) for tx in txs if tx.hash in node.mempool)
    for tx in txs:
        await single_node.client.submit(tx, wait="final")
    # Every one is final: the cache holds nothing for them, so at a steady load its size
    # follows the mempool instead of growing to its cap.
    assert len(node.verifier) == 0


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running; nor is one that
    # was reaped between the two looks.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # FileNotFoundError, or ProcessLookupError while reading
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_signatures_are_checked_in_worker_processes_in_order():
    verifier = SignatureVerifier(workers=2)
    try:
        good = [transfer(n) for n in range(600)]
        unsigned = dataclasses.replace(transfer(700), signatures=())
        other = dataclasses.replace(transfer(701), signatures=transfer(702).signatures)
        txs = [*good[:300], unsigned, *good[300:], other]
        batch = verifier.submit(txs, chunk=128)
        assert batch.result() == [True] * 300 + [False] + [True] * 300 + [False]
        assert batch.first_bad() == 300
        pids = verifier.worker_pids()
        assert len(pids) == 2 and os.getpid() not in pids
        assert verifier.verify_now([]) == []
    finally:
        verifier.close()
    assert wait_until(lambda: not any(is_running(pid) for pid in pids))
    assert default_workers() == max(1, (os.cpu_count() or 2) - 1)


async def test_a_killed_worker_is_replaced():
    verifier = SignatureVerifier(workers=1)
    try:
        assert verifier.verify_now([transfer(0)]) == [True]
        [pid] = verifier.worker_pids()
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not is_running(pid))
        # The pool notices the death; the next verification starts a new worker.
        assert await verifier.verify([transfer(1), transfer(2)]) == [True, True]
        assert verifier.verify_now([transfer(3)]) == [True]
        [new_pid] = verifier.worker_pids()
        assert new_pid != pid
    finally:
        verifier.close()


def test_workers_exit_when_their_node_is_killed(tmp_path: Path):
    """A node killed with SIGKILL runs no cleanup; its workers must still go."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import time\n"
        "from chain.crypto import KeyPair\n"
        "from chain.tx import make_transaction\n"
        "from node.verifier import SignatureVerifier\n"
        "if __name__ == '__main__':\n"
        "    key = KeyPair.from_seed(bytes(32))\n"
        "    txs = [make_transaction('c', key, n, 'transfer', {}) for n in range(8)]\n"
        "    verifier = SignatureVerifier(workers=2)\n"
        "    assert verifier.verify_now(txs, chunk=1) == [True] * 8\n"
        "    print(*verifier.worker_pids(), flush=True)\n"
        "    time.sleep(60)\n")
    root = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert pids and all(is_running(pid) for pid in pids)
    finally:
        owner.kill()
        owner.wait(timeout=10)
    assert wait_until(lambda: not any(is_running(pid) for pid in pids))


async def test_requests_in_one_loop_turn_share_one_message_to_the_workers():
    import asyncio

    verifier = SignatureVerifier(workers=1)
    sent: list[int] = []
    submit = verifier.submit

    def counting_submit(txs, chunk=256):
        sent.append(len(txs))
        return submit(txs, chunk)

    verifier.submit = counting_submit
    try:
        forged = dataclasses.replace(transfer(50), sender=BOB.address)
        requests = [[transfer(n)] for n in range(5)] + [[transfer(5), forged, transfer(6)]]
        verdicts = await asyncio.gather(*(verifier.verify(r) for r in requests))
        assert verdicts == [[True]] * 5 + [[True, False, True]]
        assert sent == [8]  # one message for the six callers
        assert await verifier.verify([transfer(7)]) == [True]
        assert sent == [8, 1]
    finally:
        verifier.close()


async def test_a_large_request_is_not_held_back_by_a_later_one():
    # Sync asks for every block of an answer at once and applies them in order: the
    # first block's verdicts must not wait for the last block's.
    import asyncio

    verifier = SignatureVerifier(workers=1)
    try:
        first = [transfer(n) for n in range(300)]
        later = [transfer(n) for n in range(300, 2300)]
        first_task = asyncio.ensure_future(verifier.verify(first))
        later_task = asyncio.ensure_future(verifier.verify(later))
        assert await first_task == [True] * 300
        assert not later_task.done()  # 2,000 more signatures are still being checked
        assert await later_task == [True] * 2000
    finally:
        verifier.close()
