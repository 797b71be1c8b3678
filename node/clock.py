"""The node's wall clock, in milliseconds since the Unix epoch.

Every wall-clock read of the node (block timestamps, the proposal clock-skew check) goes
through `now_ms`, so that fault rehearsals can skew one node's clock: the environment
variable GOVCHAIN_CLOCK_OFFSET_MS (an integer, may be negative) is added to the
system clock. Consensus itself never reads a clock.
"""

from __future__ import annotations

import os
import time

_OFFSET_MS = int(os.environ.get("GOVCHAIN_CLOCK_OFFSET_MS", "0") or 0)


def now_ms() -> int:
    return int(time.time() * 1000) + _OFFSET_MS
