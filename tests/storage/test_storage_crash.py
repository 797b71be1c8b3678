"""A real crash: a writer process SIGKILLed at a random moment, then the store reopened."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from crash_writer import changes_for
from storage_builders import make_genesis

from chain.state_proof import compute_state_root
from storage.chain_store import ChainStore

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def run_writer_and_kill(data_dir: str, rng: random.Random) -> list[int]:
    """Start the writer, SIGKILL it after a random number of commits plus a random delay,
    and return the heights it reported committed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(WRITER), data_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    reported: list[int] = []
    try:
        assert proc.stdout is not None
        wanted = rng.randint(1, 8)
        deadline = time.monotonic() + 30
        while len(reported) < wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported.append(int(line))
        time.sleep(rng.uniform(0, 0.05))  # land anywhere in the next commit
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=10)
        reported.extend(int(x) for x in rest.split())
        assert reported, f"the writer committed nothing: {err}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return reported


def expected_state(head: int) -> dict[bytes, bytes]:
    state = {b"param/x": b"1"}
    for height in range(1, head + 1):
        for key, value in changes_for(height).items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return state


def test_sigkill_leaves_a_consistent_store(tmp_path: Path) -> None:
    # Replay a failure with CRASH_SEED=<seed from the assertion message>.
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    data_dir = str(tmp_path / "data")
    all_reported: list[int] = []
    for _ in range(4):  # each run resumes from where the last was killed
        all_reported += run_writer_and_kill(data_dir, rng)
        store = ChainStore.open(data_dir, make_genesis())
        try:
            head = store.head_height
            assert head >= max(all_reported), f"SEED={seed}: a reported block was lost"
            assert head <= max(all_reported) + 1, f"SEED={seed}: head beyond what was written"
            for height in range(1, head + 1):
                block = store.get_block(height)
                assert block is not None, f"SEED={seed}: block {height} missing"
                cert = store.get_certificate(height)
                assert cert is not None and cert.block_hash == block.hash
            head_block = store.head_block()
            assert head_block is not None
            assert store.head_state_root == head_block.header.state_root
            state = dict(store.iterate_state(b""))
            assert state == expected_state(head), f"SEED={seed}: state is not that of {head}"
            assert compute_state_root(state.items()) == store.head_state_root
        finally:
            store.close()
