"""Upgrades at a height: governance schedules a named plan, every node stops before it,
and only a version that implements the name executes the block at its height.

A plan is written by the governance actions schedule_upgrade and cancel_upgrade
(ledger/governance.py runs them on a quorum). At most one plan is pending at a time.
The block at the plan's height first runs the upgrade's migration (its rule change),
then its transactions; a version that does not know the name refuses that block
(upgrade_not_implemented), and the node halts one height earlier (node/upgrades.py).
Pure: the set of upgrades a version implements is handed in, never read from the
environment here. Theory of operation: docs/ledger.md, procedure: docs/operator.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chain.errors import ChainError
from chain.genesis import ChainParams
from ledger import fields as f
from ledger.errors import (
    CorruptStateError,
    UnknownUpgradeError,
    UpgradeExistsError,
    UpgradeHeightPassedError,
    UpgradeNotImplementedError,
    UpgradePendingError,
)
from ledger.interface import BlockContext, Event
from ledger.keys import (
    CHAIN_PARAMS_KEY,
    LAST_UPGRADE_KEY,
    PENDING_UPGRADE_KEY,
    get_upgrade_key,
)
from ledger.state import Overlay, StateReader, get_value, put_value

SCHEDULE_UPGRADE = "schedule_upgrade"
CANCEL_UPGRADE = "cancel_upgrade"
UPGRADE_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
"""Lower-case letters, digits, '.', '_' and '-', at most 48 characters, e.g. "v2.0-limits"."""
MAX_UPGRADE_INFO = 1024
"""The longest `info` of a plan: what operators read (release URL, checksum)."""

SCHEDULED, CANCELLED, APPLIED = "scheduled", "cancelled", "applied"

Migration = Callable[[Overlay, BlockContext], list[Event]]


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A rule change that a version of govchain implements, activated by a plan's name."""

    name: str
    """The name governance schedules (UPGRADE_NAME_PATTERN)."""
    summary: str
    """What changes from the plan's height on, for operators (node_status, logs)."""
    migrate: Migration
    """Runs at the start of the block at the plan's height, before its transactions:
    it writes whatever state the new rules need; its changes are in that block's root."""


# ------------------------------------------------------------------ reads


def get_upgrade_plan(view: StateReader, name: str) -> dict[str, Any] | None:
    value = get_value(view, get_upgrade_key(name), "upgrade plan")
    return None if value is None else dict(value)


def get_pending_upgrade(view: StateReader) -> dict[str, Any] | None:
    """The scheduled plan not yet reached, or None."""
    name = get_value(view, PENDING_UPGRADE_KEY, "pending upgrade")
    if name is None:
        return None
    plan = get_upgrade_plan(view, str(name))
    if plan is None:
        raise CorruptStateError(f"the pending upgrade {name!r} has no plan")
    return plan


# ------------------------------------------------------------------ governance actions


def validate_schedule_upgrade_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"name", "height", "info"}))
    f.expect_text(args, "name", 48, pattern=UPGRADE_NAME_PATTERN)
    f.expect_int(args, "height", 1, 2**63 - 1)
    f.expect_text(args, "info", MAX_UPGRADE_INFO)


def apply_schedule_upgrade(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                           ) -> list[Event]:
    """Record the plan; at the proposal and again when it passes, its height must still
    be ahead: a plan in the past would fork nodes that already ran beyond it."""
    name, height = args["name"], args["height"]
    if height <= ctx.height:
        raise UpgradeHeightPassedError(
            f"upgrade {name!r} at height {height} is not ahead of height {ctx.height}: "
            f"schedule it at {ctx.height + 1} or later (leave operators time to install it)")
    if get_upgrade_plan(view, name) is not None:
        raise UpgradeExistsError(f"an upgrade named {name!r} was scheduled before: an "
                                 "upgrade name is used once; choose another")
    pending = get_pending_upgrade(view)
    if pending is not None:
        raise UpgradePendingError(
            f"upgrade {pending['name']!r} is pending at height {pending['height']}: cancel "
            "it (cancel_upgrade) or let it pass before scheduling another")
    put_value(view, get_upgrade_key(name), {
        "name": name, "height": height, "info": args["info"], "status": SCHEDULED,
        "scheduled_height": ctx.height, "decided_height": 0})
    put_value(view, PENDING_UPGRADE_KEY, name)
    return [Event("upgrade_scheduled", {"name": name, "height": height, "info": args["info"]})]


def validate_cancel_upgrade_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"name"}))
    f.expect_text(args, "name", 48, pattern=UPGRADE_NAME_PATTERN)


def apply_cancel_upgrade(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                         ) -> list[Event]:
    name = args["name"]
    pending = get_pending_upgrade(view)
    if pending is None or pending["name"] != name:
        raise UnknownUpgradeError(f"no upgrade named {name!r} is pending "
                                  "(never scheduled, cancelled, or applied already)")
    put_value(view, get_upgrade_key(name), {**pending, "status": CANCELLED,
                                            "decided_height": ctx.height})
    view.delete(PENDING_UPGRADE_KEY)
    return [Event("upgrade_cancelled", {"name": name, "height": pending["height"]})]


# ------------------------------------------------------------------ the block at the height


def apply_upgrade_due(view: Overlay, ctx: BlockContext, known: Mapping[str, Upgrade]
                      ) -> list[Event]:
    """At the start of a block: run the pending upgrade if this is its height.

    Raises UpgradeNotImplementedError when this version does not implement it: the
    block must not be built or accepted by this version.
    """
    plan = get_pending_upgrade(view)
    if plan is None or plan["height"] > ctx.height:
        return []
    if plan["height"] < ctx.height:
        raise CorruptStateError(f"upgrade {plan['name']!r} was due at height "
                                f"{plan['height']} but is still pending at {ctx.height}")
    upgrade = known.get(plan["name"])
    if upgrade is None:
        raise UpgradeNotImplementedError(
            f"height {ctx.height} activates upgrade {plan['name']!r}, which this version "
            "of govchain does not implement: install the release that does")
    events = upgrade.migrate(view, ctx)
    put_value(view, get_upgrade_key(upgrade.name), {**plan, "status": APPLIED,
                                                    "decided_height": ctx.height})
    put_value(view, LAST_UPGRADE_KEY, [upgrade.name, ctx.height, plan["info"]])
    view.delete(PENDING_UPGRADE_KEY)
    return [Event("upgrade_applied", {"name": upgrade.name, "height": ctx.height}), *events]


# ------------------------------------------------------------------ the upgrades of this version


RELEASED_UPGRADES: tuple[Upgrade, ...] = ()
"""The upgrades this release implements. A release that changes a consensus rule adds
its Upgrade here (its name agreed with the other ministries before the plan is voted)
and keeps every earlier one, so that it can still replay the chain from genesis."""


def make_param_upgrade(name: str, changes: Mapping[str, int]) -> Upgrade:
    """An upgrade whose rule change is new values of chain parameters (limits)."""
    def migrate(view: Overlay, ctx: BlockContext) -> list[Event]:
        current = get_value(view, CHAIN_PARAMS_KEY, "chain parameters")
        if current is None:
            raise CorruptStateError("the chain parameters are missing")
        try:
            params = ChainParams.from_value({**current, **changes})
        except ChainError as e:
            raise CorruptStateError(f"upgrade {name!r}: {e.message}") from e
        put_value(view, CHAIN_PARAMS_KEY, params.to_value())
        return [Event("param_changed", {"name": key, "value": value,
                                        "from_height": ctx.height + 1})
                for key, value in sorted(changes.items())]

    summary = ", ".join(f"{key} = {value}" for key, value in sorted(changes.items()))
    return Upgrade(name, f"sets {summary}", migrate)


REHEARSAL_CHANGES = {"max_block_txs": 777}
"""The rule a rehearsal upgrade changes: at most 777 transactions per block."""


def get_known_upgrades(rehearsal: str | None = None) -> dict[str, Upgrade]:
    """This version's upgrades by name; `rehearsal` adds a rehearsal upgrade of that
    name (REHEARSAL_CHANGES), to practise the procedure on a devnet."""
    known = {upgrade.name: upgrade for upgrade in RELEASED_UPGRADES}
    if rehearsal:
        if UPGRADE_NAME_PATTERN.fullmatch(rehearsal) is None:
            raise ValueError(f"rehearsal upgrade name {rehearsal!r} must match "
                             f"{UPGRADE_NAME_PATTERN.pattern}")
        known[rehearsal] = make_param_upgrade(rehearsal, REHEARSAL_CHANGES)
    return known
