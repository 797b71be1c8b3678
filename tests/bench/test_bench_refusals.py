"""bench/bench_refusals.py runs end to end at a small N (the figures: docs/reliability.md):
every transfer of an unknown sender is refused, over RPC and over p2p. Never asserts on
memory or speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_bench_refusals_refuses_every_transfer_both_ways() -> None:
    result = subprocess.run([sys.executable, "bench/bench_refusals.py", "--txs", "600"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    counted = re.findall(r"refusals counted   \{'unknown_account': (\d+)\}", result.stdout)
    assert counted == ["600", "600"], result.stdout
    assert len(re.findall(r"RSS after +\d+ MiB", result.stdout)) == 2
