"""Governance: quorum of the set in force, expiry, acceptance, validator-set limits."""

from __future__ import annotations

from typing import Any

from chain.crypto import KeyPair
from chain.tx import make_transaction
from ledger.governance import get_proposal_info, sign_acceptance
from ledger.roles import get_account_roles
from ledger.state import Overlay
from tests.ledger.app_fixtures import (
    CHAIN_ID,
    HOLDER,
    ISSUER,
    OTHER,
    VALIDATORS,
    App,
    ctx_at,
    make_app,
    make_app_genesis,
)

V0, V1, V2, V3 = VALIDATORS
CANDIDATE = KeyPair.from_seed(b"\x99" * 32)


def propose(app: App, key: KeyPair, action: str, args: dict[str, Any],
            expiry: int | None = None) -> int:
    result = app.ok(key, "propose", {"action": action, "args": args,
                                     "expiry_height": expiry or app.height + 100})
    return int(result.events[0].attributes["id"])


def vote(app: App, key: KeyPair, proposal: int) -> list[str]:
    return [e.kind for e in app.ok(key, "vote", {"proposal": proposal}).events]


def grant_args(address: bytes = OTHER.address) -> dict[str, Any]:
    return {"role": "issuer", "scope": "KGS", "address": address}


def test_grant_role_passes_at_quorum_of_four(app: App) -> None:
    pid = propose(app, V0, "grant_role", grant_args())
    assert vote(app, V1, pid) == ["proposal_voted"]
    assert ("issuer", "KGS") not in get_account_roles(app.state, OTHER.address)
    assert vote(app, V2, pid) == ["proposal_voted", "proposal_passed", "role_granted"]
    assert ("issuer", "KGS") in get_account_roles(app.state, OTHER.address)
    app.ok(OTHER, "mint", {"asset": "KGS", "to": OTHER.address, "amount": 5})
    app.assert_fails(V3, "vote", {"proposal": pid}, "proposal_closed")
    info = get_proposal_info(app.state, pid, app.height)
    assert info is not None and info["status"] == "passed" and info["approvals"] == 3


def test_invalid_governance_votes(app: App) -> None:
    pid = propose(app, V0, "grant_role", grant_args(), expiry=app.height + 3)
    app.assert_fails(V0, "vote", {"proposal": pid}, "already_voted")
    app.assert_fails(HOLDER, "vote", {"proposal": pid}, "not_validator")
    app.assert_fails(V1, "vote", {"proposal": 99}, "unknown_proposal")
    app.height += 5
    app.assert_fails(V1, "vote", {"proposal": pid}, "proposal_expired")
    info = get_proposal_info(app.state, pid, app.height)
    assert info is not None and info["status"] == "expired"


def test_invalid_proposals_are_refused_at_once(app: App) -> None:
    app.assert_fails(HOLDER, "propose", {"action": "grant_role", "args": grant_args(),
                                         "expiry_height": 50}, "not_validator")
    app.assert_fails(V0, "propose", {"action": "grant_role", "args": grant_args(ISSUER.address),
                                     "expiry_height": 50}, "role_exists")
    app.assert_fails(V0, "propose", {"action": "grant_role", "args": grant_args(),
                                     "expiry_height": 0}, "malformed_fields")
    app.assert_fails(V0, "propose", {"action": "grant_role", "args": grant_args(),
                                     "expiry_height": app.height + 1}, "invalid_expiry")
    app.assert_fails(V0, "propose", {"action": "add_validator",
                                     "args": {"public_key": CANDIDATE.public_key, "name": "x"},
                                     "expiry_height": 50}, "candidate_not_accepted")
    app.assert_fails(V0, "propose", {"action": "remove_validator",
                                     "args": {"public_key": CANDIDATE.public_key},
                                     "expiry_height": 50}, "not_validator")
    app.assert_fails(V0, "propose", {"action": "set_param",
                                     "args": {"name": "max_tx_bytes", "value": 10},
                                     "expiry_height": 50}, "invalid_param")
    app.assert_fails(V0, "propose", {"action": "set_param",
                                     "args": {"name": "warp_speed", "value": 10},
                                     "expiry_height": 50}, "invalid_param")
    app.assert_fails(V0, "propose", {"action": "create_asset", "args": {
        "symbol": "KGS", "name": "again", "decimals": 2, "issuer": ISSUER.address,
        "reserve_backed": True}, "expiry_height": 50}, "asset_exists")
    app.assert_fails(V0, "propose", {"action": "teleport", "args": {},
                                     "expiry_height": 50}, "malformed_fields")


def test_add_validator_needs_proof_of_possession(app: App) -> None:
    bad = sign_acceptance(CHAIN_ID, OTHER, "ministry-new")  # signed by the wrong key
    app.assert_fails(HOLDER, "validator_accept", {"public_key": CANDIDATE.public_key,
                                                  "name": "ministry-new", "signature": bad},
                     "bad_acceptance")
    wrong_chain = sign_acceptance("other-chain", CANDIDATE, "ministry-new")
    app.assert_fails(HOLDER, "validator_accept", {"public_key": CANDIDATE.public_key,
                                                  "name": "ministry-new",
                                                  "signature": wrong_chain}, "bad_acceptance")
    app.ok(HOLDER, "validator_accept", {
        "public_key": CANDIDATE.public_key, "name": "ministry-new",
        "signature": sign_acceptance(CHAIN_ID, CANDIDATE, "ministry-new")})
    pid = propose(app, V0, "add_validator", {"public_key": CANDIDATE.public_key,
                                             "name": "ministry-new"})
    vote(app, V1, pid)
    kinds = vote(app, V2, pid)
    assert kinds[-1] == "validator_added"
    vset = app.ledger.get_validator_set(app.state)
    assert vset.size == 5 and vset.is_member(CANDIDATE.public_key)
    # the newcomer votes at once (its account was created) and counts toward quorum 4
    pid2 = propose(app, CANDIDATE, "grant_role", grant_args())
    for key in (V0, V1):
        vote(app, key, pid2)
    assert vote(app, V2, pid2)[-1] == "role_granted"


def test_removed_validator_stops_counting(app: App) -> None:
    pid = propose(app, V3, "grant_role", grant_args())  # V3 approves, then is removed
    rid = propose(app, V0, "remove_validator", {"public_key": V3.public_key})
    vote(app, V1, rid)
    assert vote(app, V2, rid)[-1] == "validator_removed"
    assert app.ledger.get_validator_set(app.state).size == 3
    app.assert_fails(V3, "vote", {"proposal": pid}, "not_validator")
    assert get_proposal_info(app.state, pid, app.height)["approvals"] == 0  # type: ignore[index]
    vote(app, V0, pid)
    assert vote(app, V1, pid) == ["proposal_voted"]  # quorum of 3 is 3
    assert vote(app, V2, pid)[-1] == "role_granted"


def test_invalid_removing_the_last_validator() -> None:
    app = make_app(make_app_genesis(VALIDATORS[:1]))
    app.assert_fails(V0, "propose", {"action": "remove_validator",
                                     "args": {"public_key": V0.public_key},
                                     "expiry_height": 50}, "validator_set_empty")


def test_invalid_removing_a_quorum_at_one_height(app: App) -> None:
    """Three removals of four validators decided in one block: the third is refused."""
    p1, p2, p3 = (propose(app, V0, "remove_validator", {"public_key": k.public_key})
                  for k in (V1, V2, V3))
    vote(app, V2, p1)
    vote(app, V3, p2)
    view = Overlay(app.state)
    ctx = ctx_at(app.height + 1)
    nonces = {k.address: app.ledger.get_nonce(app.state, k.address) for k in (V2, V3)}
    results = []
    for voter, pid in ((V3, p1), (V2, p2), (V3, p3)):
        tx = make_transaction(CHAIN_ID, voter, nonces[voter.address], "vote", {"proposal": pid})
        nonces[voter.address] += 1
        results.append(app.ledger.apply_tx(view, ctx, tx))
    kinds = [[e.kind for e in r.events] for r in results]
    assert kinds[0][-1] == "validator_removed" and kinds[1][-1] == "validator_removed"
    assert kinds[2][-1] == "proposal_failed"
    assert results[2].events[-1].attributes["code"] == "removes_quorum"
    app.commit(view)
    app.height += 1
    assert app.ledger.get_validator_set(app.state).size == 2
    # at the next height the base is the set of two: removing one of them is allowed
    p4 = propose(app, V0, "remove_validator", {"public_key": V3.public_key})
    assert vote(app, V3, p4)[-1] == "validator_removed"


def accept(app: App, key: KeyPair, name: str) -> None:
    app.ok(HOLDER, "validator_accept", {"public_key": key.public_key, "name": name,
                                        "signature": sign_acceptance(CHAIN_ID, key, name)})


def test_replace_validator_swaps_a_key_in_place(app: App) -> None:
    """The set keeps its size and quorum; the new key takes the old one's turn and name."""
    before = app.ledger.get_validator_set(app.state)
    accept(app, CANDIDATE, "ministry-3")
    pid = propose(app, V0, "replace_validator", {"public_key": V3.public_key,
                                                 "new_public_key": CANDIDATE.public_key})
    vote(app, V1, pid)
    result = app.ok(V2, "vote", {"proposal": pid})
    replaced = result.events[-1]
    assert replaced.kind == "validator_replaced"
    assert replaced.attributes == {"public_key": V3.public_key,
                                   "new_public_key": CANDIDATE.public_key,
                                   "name": "ministry-3", "from_height": app.height + 1}
    after = app.ledger.get_validator_set(app.state)
    assert (after.size, after.quorum) == (before.size, before.quorum) == (4, 3)
    assert after.validators[3].public_key == CANDIDATE.public_key
    assert after.validators[3].name == before.validators[3].name
    assert after.validators[:3] == before.validators[:3]
    # the old key no longer counts; the new one proposes and votes at once
    app.assert_fails(V3, "propose", {"action": "grant_role", "args": grant_args(),
                                     "expiry_height": app.height + 10}, "not_validator")
    pid2 = propose(app, CANDIDATE, "grant_role", grant_args())
    vote(app, V0, pid2)
    assert vote(app, V1, pid2)[-1] == "role_granted"


def test_invalid_replace_validator(app: App) -> None:
    def refused(args: dict[str, Any], code: str) -> None:
        app.assert_fails(V0, "propose", {"action": "replace_validator", "args": args,
                                         "expiry_height": app.height + 10}, code)

    refused({"public_key": V3.public_key, "new_public_key": CANDIDATE.public_key},
            "candidate_not_accepted")
    accept(app, CANDIDATE, "ministry-3")
    refused({"public_key": OTHER.public_key, "new_public_key": CANDIDATE.public_key},
            "not_validator")
    refused({"public_key": V3.public_key, "new_public_key": V2.public_key},
            "already_validator")
    refused({"public_key": V3.public_key, "new_public_key": V3.public_key},
            "already_validator")
    refused({"public_key": V3.public_key}, "malformed_fields")
    refused({"public_key": V3.public_key, "new_public_key": b"short"}, "malformed_fields")
    refused({"public_key": V3.public_key, "new_public_key": CANDIDATE.public_key,
             "name": "x"}, "malformed_fields")
    assert app.ledger.get_validator_set(app.state).validators[3].public_key == V3.public_key


def test_invalid_replacing_a_quorum_at_one_height(app: App) -> None:
    """A replacement removes a key from the set certifying this height: the per-height
    limit on removals counts it, so three of four keys cannot be swapped at once."""
    news = [KeyPair.from_seed(bytes([0xA0 + i]) * 32) for i in range(3)]
    for i, key in enumerate(news):
        accept(app, key, f"new-{i}")
    pids = [propose(app, V0, "replace_validator", {"public_key": old.public_key,
                                                   "new_public_key": new.public_key})
            for old, new in zip((V1, V2, V3), news, strict=True)]
    view, ctx = Overlay(app.state), ctx_at(app.height + 1)
    nonces: dict[bytes, int] = {}
    last_events = []
    for pid, voters in zip(pids, ((V2, V3), (V3, V2), (V3, news[0])), strict=True):
        for voter in voters:
            nonce = nonces.get(voter.address, app.ledger.get_nonce(app.state, voter.address))
            nonces[voter.address] = nonce + 1
            tx = make_transaction(CHAIN_ID, voter, nonce, "vote", {"proposal": pid})
            events = app.ledger.apply_tx(view, ctx, tx).events
        last_events.append(events[-1])
    assert [e.kind for e in last_events] == ["validator_replaced", "validator_replaced",
                                             "proposal_failed"]
    assert last_events[2].attributes["code"] == "removes_quorum"
    app.commit(view)
    assert [v.public_key for v in app.ledger.get_validator_set(app.state).validators] == \
        [V0.public_key, news[0].public_key, news[1].public_key, V3.public_key]


def test_param_change_and_creations_take_effect(app: App) -> None:
    def decide(action: str, args: dict[str, Any]) -> list[str]:
        pid = propose(app, V0, action, args)
        vote(app, V1, pid)
        return vote(app, V2, pid)

    assert decide("set_param", {"name": "max_block_txs", "value": 500})[-1] == "param_changed"
    assert app.ledger.get_chain_params(app.state).max_block_txs == 500
    assert decide("create_asset", {"symbol": "GOLD", "name": "Gold gram", "decimals": 3,
                                   "issuer": OTHER.address, "reserve_backed": False}
                  )[-1] == "role_granted"
    app.ok(OTHER, "mint", {"asset": "GOLD", "to": HOLDER.address, "amount": 7})
    assert decide("create_namespace", {"name": "titles", "description": "land titles",
                                       "max_value_bytes": 1024})[-1] == "namespace_created"
    assert decide("revoke_role", grant_args(ISSUER.address))[-1] == "role_revoked"
    app.assert_fails(ISSUER, "mint", {"asset": "KGS", "to": HOLDER.address, "amount": 1},
                     "missing_role")


def test_a_proposal_that_became_impossible_fails_with_its_code(app: App) -> None:
    first = propose(app, V0, "grant_role", grant_args())
    second = propose(app, V1, "grant_role", grant_args())
    vote(app, V1, first)
    vote(app, V2, first)
    vote(app, V0, second)
    result = app.ok(V2, "vote", {"proposal": second})
    assert result.events[-1].kind == "proposal_failed"
    assert result.events[-1].attributes["code"] == "role_exists"
    info = get_proposal_info(app.state, second, app.height)
    assert info is not None and (info["status"], info["result"]) == ("failed", "role_exists")
