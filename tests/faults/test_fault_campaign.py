"""The short fault campaign CI runs (the long one: python -m tests.faults.run)."""

from __future__ import annotations

import os
import random

import pytest

from tests.faults.campaign import Campaign

pytestmark = pytest.mark.slow


def test_short_fault_campaign(tmp_path):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(2**32)))
    report = Campaign(tmp_path / "devnet", seed, duration_s=45).run()
    print(report.summary())
    assert report.acknowledged > 0, report.summary()
    assert report.lost == 0, report.summary()
    assert report.safety_violations == [], f"FAULT_SEED={seed}: {report.safety_violations}"
