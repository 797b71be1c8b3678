"""The short soak CI runs: 4 validator processes held at a steady load for about 30 s
(the long form: `python bench/soak.py`, 10 minutes at 1,500 tx/s). Asserts that every
offered transaction became final, none was refused, no node exited, and memory stayed
under the stated bound without growing; never on latency or throughput."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_short_soak_holds_the_load_within_memory_bounds(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "bench/soak.py", "--nodes", "4", "--rate", "300", "--minutes", "0.5",
         "--window-s", "10", "--sample-s", "1", "--senders", "200", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    print(result.stdout)
    summary = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary["offered"] == 300 * 30
    assert summary["final"] == summary["offered"] and summary["unfinished"] == 0
    assert summary["refused"] == {} and summary["exited"] == []
    assert summary["memory_bounded"], summary
    assert "Traceback" not in result.stderr
