"""The node's side of upgrades at a height: which upgrades this version implements, and
when it must stop.

A node commits the block before a scheduled upgrade's height and halts there unless
it implements the upgrade; it refuses to start on a chain whose pending upgrade is due
next, or that applied an upgrade it does not know. The process then exits with
EXIT_HALTED_FOR_UPGRADE so that a supervisor (or the operator) starts the new release.
The ledger rules themselves are in ledger/upgrades.py; this module never changes state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.keys import LAST_UPGRADE_KEY
from ledger.state import StateReader, get_value
from ledger.upgrades import Upgrade, get_known_upgrades, get_pending_upgrade
from node.errors import NodeError

REHEARSAL_ENV = "GOVCHAIN_REHEARSAL_UPGRADE"
"""Set to an upgrade name, this build also implements a rehearsal upgrade of that name
(ledger.upgrades.REHEARSAL_CHANGES): the "new version" of a devnet rehearsal."""
EXIT_HALTED_FOR_UPGRADE = 3
"""The exit status of `govchain run` when it stops for an upgrade it does not implement."""


def load_known_upgrades(env: Mapping[str, str] | None = None) -> dict[str, Upgrade]:
    """The upgrades of this build: the released ones, plus the rehearsal one if asked."""
    environ = os.environ if env is None else env
    try:
        return get_known_upgrades(environ.get(REHEARSAL_ENV) or None)
    except ValueError as e:
        raise NodeError(f"{REHEARSAL_ENV}: {e}") from e


@dataclass(frozen=True, slots=True)
class UpgradeHalt:
    """Why this node stops: an upgrade it does not implement is due."""

    name: str
    """The upgrade's name."""
    height: int
    """The height it activates at; the node stays at height - 1 (or stopped past it)."""
    info: str
    """The plan's info (release, checksum) as governance recorded it."""
    applied: bool = False
    """True when the chain already applied it (this version is too old to run at all)."""

    @property
    def message(self) -> str:
        if self.applied:
            return (f"halted for upgrade {self.name} at {self.height}: the chain applied it "
                    "at that height and this version of govchain does not implement it; "
                    f"install the release that does ({self.info or 'see the plan'})")
        return (f"halted for upgrade {self.name} at {self.height}: height {self.height - 1} "
                "is committed and this version of govchain does not implement the upgrade; "
                f"install the release that does ({self.info or 'see the plan'}) and start "
                "the node again")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "height": self.height, "info": self.info,
                "message": self.message}


class HaltedForUpgradeError(NodeError):
    """Raised when the node stops, or refuses to start, for an upgrade it lacks."""

    code = "halted_for_upgrade"

    def __init__(self, halt: UpgradeHalt) -> None:
        super().__init__(halt.message)
        self.halt = halt


def get_upgrade_halt(state: StateReader, head_height: int,
                     known: Mapping[str, Upgrade]) -> UpgradeHalt | None:
    """The halt due on a chain whose head is `head_height`, or None to keep running."""
    plan = get_pending_upgrade(state)
    if plan is not None and plan["height"] <= head_height + 1 and plan["name"] not in known:
        return UpgradeHalt(plan["name"], plan["height"], plan["info"])
    last = get_value(state, LAST_UPGRADE_KEY, "last upgrade")
    if last is not None and last[0] not in known:
        return UpgradeHalt(str(last[0]), int(last[1]), str(last[2]), applied=True)
    return None
