"""Upgrades at a height: governance schedules and cancels plans under the usual quorum;
the block at the plan's height runs the upgrade's migration, or is refused by a ledger
that does not implement it."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.errors import UpgradeNotImplementedError
from ledger.execution import Ledger
from ledger.state import Overlay
from ledger.upgrades import (
    REHEARSAL_CHANGES,
    get_known_upgrades,
    get_pending_upgrade,
    get_upgrade_plan,
)
from node.upgrades import get_upgrade_halt, load_known_upgrades
from tests.ledger.app_fixtures import VALIDATORS, App, ctx_at
from tests.ledger.test_governance import propose, vote

V0, V1, V2, V3 = VALIDATORS


def schedule(app: App, name: str, height: int, info: str = "release 2.0") -> list[str]:
    """Propose and pass a schedule_upgrade; the kinds of the deciding vote's events."""
    pid = propose(app, V0, "schedule_upgrade", {"name": name, "height": height, "info": info})
    vote(app, V1, pid)
    return vote(app, V2, pid)


def run_empty_block(app: App, ledger: Ledger | None = None) -> None:
    """Execute an empty block at the next height (begin_block runs) and commit it."""
    app.height += 1
    view = Overlay(app.state)
    (ledger or app.ledger).apply_block(view, ctx_at(app.height), [])
    app.commit(view)


def test_schedule_upgrade_passes_at_quorum_and_is_pending(app: App) -> None:
    assert schedule(app, "v2-limits", app.height + 50)[-1] == "upgrade_scheduled"
    plan = get_pending_upgrade(app.state)
    assert plan is not None and plan["name"] == "v2-limits" and plan["status"] == "scheduled"
    assert plan["info"] == "release 2.0"


def test_invalid_upgrade_plans_are_refused(app: App) -> None:
    def refused(args: dict[str, Any], code: str) -> None:
        app.assert_fails(V0, "propose", {"action": "schedule_upgrade", "args": args,
                                         "expiry_height": app.height + 100}, code)

    app.height = 10
    # The proposal runs at height 11: a plan at 11 or below is in the past already.
    refused({"name": "v2", "height": app.height + 1, "info": ""}, "upgrade_height_passed")
    refused({"name": "v2", "height": 1, "info": ""}, "upgrade_height_passed")
    for bad_name in ("", "V2", "v2/evil", "-v2", "x" * 49, "v 2"):
        refused({"name": bad_name, "height": app.height + 10, "info": ""}, "malformed_fields")
    refused({"name": "v2", "height": 0, "info": ""}, "malformed_fields")
    refused({"name": "v2", "height": app.height + 10, "info": "x" * 1025}, "malformed_fields")
    refused({"name": "v2", "height": app.height + 10}, "malformed_fields")
    refused({"name": "v2", "height": app.height + 10, "info": "", "extra": 1},
            "malformed_fields")
    app.assert_fails(V0, "propose", {"action": "cancel_upgrade", "args": {"name": "v2"},
                                     "expiry_height": app.height + 100}, "unknown_upgrade")
    assert get_pending_upgrade(app.state) is None


def test_a_plan_whose_height_passed_while_voting_fails(app: App) -> None:
    pid = propose(app, V0, "schedule_upgrade", {"name": "late", "height": app.height + 3,
                                                "info": ""})
    app.height += 5  # the votes come after the plan's height
    vote(app, V1, pid)
    result = app.ok(V2, "vote", {"proposal": pid})
    assert result.events[-1].kind == "proposal_failed"
    assert result.events[-1].attributes["code"] == "upgrade_height_passed"
    assert get_pending_upgrade(app.state) is None


def test_duplicate_and_second_pending_upgrades_are_refused(app: App) -> None:
    schedule(app, "v2", app.height + 50)
    for name, code in (("v2", "upgrade_exists"), ("v3", "upgrade_pending")):
        app.assert_fails(V0, "propose", {"action": "schedule_upgrade", "args": {
            "name": name, "height": app.height + 60, "info": ""},
            "expiry_height": app.height + 100}, code)
    # Cancelled, the name stays used; another name may now be scheduled.
    pid = propose(app, V1, "cancel_upgrade", {"name": "v2"})
    vote(app, V2, pid)
    assert vote(app, V3, pid)[-1] == "upgrade_cancelled"
    assert get_pending_upgrade(app.state) is None
    plan = get_upgrade_plan(app.state, "v2")
    assert plan is not None and plan["status"] == "cancelled"
    app.assert_fails(V0, "propose", {"action": "schedule_upgrade", "args": {
        "name": "v2", "height": app.height + 60, "info": ""},
        "expiry_height": app.height + 100}, "upgrade_exists")
    assert schedule(app, "v3", app.height + 60)[-1] == "upgrade_scheduled"


def test_the_block_at_the_height_runs_the_migration_only_there(app: App) -> None:
    new = Ledger(app.ledger.modules, get_known_upgrades("v2"))
    height = app.height + 4
    schedule(app, "v2", height)
    before = app.ledger.get_chain_params(app.state).max_block_txs
    while app.height < height - 1:
        run_empty_block(app, new)  # the new version runs the old rules until H
    assert new.get_chain_params(app.state).max_block_txs == before != 777
    run_empty_block(app, new)
    assert app.height == height
    assert new.get_chain_params(app.state).max_block_txs == REHEARSAL_CHANGES["max_block_txs"]
    plan = get_upgrade_plan(app.state, "v2")
    assert plan is not None and (plan["status"], plan["decided_height"]) == ("applied", height)
    assert get_pending_upgrade(app.state) is None
    run_empty_block(app, new)  # and keeps running past it


def test_invalid_block_at_an_unimplemented_upgrade_is_refused(app: App) -> None:
    height = app.height + 5
    assert schedule(app, "v2", height)[-1] == "upgrade_scheduled"
    while app.height < height - 1:
        run_empty_block(app)  # up to height - 1: still the old rules
    state_before = dict(app.state)
    view = Overlay(app.state)
    with pytest.raises(UpgradeNotImplementedError, match="v2"):
        app.ledger.apply_block(view, ctx_at(height), [])
    assert view.changes() == {} and app.state == state_before


def test_the_node_halts_before_an_upgrade_it_lacks_and_after_one_applied(app: App) -> None:
    height = app.height + 5
    schedule(app, "v2", height, info="https://example.gov/govchain-2.0")
    assert get_upgrade_halt(app.state, height - 2, {}) is None
    halt = get_upgrade_halt(app.state, height - 1, {})
    assert halt is not None and (halt.name, halt.height) == ("v2", height)
    assert "halted for upgrade v2 at " + str(height) in halt.message
    assert get_upgrade_halt(app.state, height - 1, get_known_upgrades("v2")) is None
    new = Ledger(app.ledger.modules, get_known_upgrades("v2"))
    while app.height < height:
        run_empty_block(app, new)
    applied = get_upgrade_halt(app.state, height, {})
    assert applied is not None and applied.applied and "applied it" in applied.message
    assert get_upgrade_halt(app.state, height, get_known_upgrades("v2")) is None


def test_invalid_rehearsal_name_is_refused() -> None:
    assert load_known_upgrades({}) == {}
    assert set(load_known_upgrades({"GOVCHAIN_REHEARSAL_UPGRADE": "v2"})) == {"v2"}
    from node.errors import NodeError
    with pytest.raises(NodeError, match="GOVCHAIN_REHEARSAL_UPGRADE"):
        load_known_upgrades({"GOVCHAIN_REHEARSAL_UPGRADE": "Not A Name"})
