"""Private registries on the chain: commitments only, grants, erasure, read-log anchors."""

from __future__ import annotations

import os

import pytest

from chain.commitment import compute_record_commitment, is_matching_commitment
from chain.genesis import Genesis
from ledger.errors import LedgerError
from ledger.private import (
    get_anchor,
    get_erasure,
    get_grant,
    get_holder_addresses,
    is_grant_active,
)
from ledger.registry import get_namespace, get_record
from tests.ledger.app_fixtures import (
    HOLDER,
    OTHER,
    STRANGER,
    VALIDATORS,
    WRITER,
    App,
    ctx_at,
    make_app,
    make_app_genesis,
)

COURT = OTHER
CITIZEN = HOLDER
BANK = STRANGER
PAYLOAD = b"licence 42 for Aida Bekova, born 1990-01-02"
SALT = bytes(range(32))
COMMITMENT = compute_record_commitment(SALT, PAYLOAD)


def private_genesis() -> Genesis:
    genesis = make_app_genesis()
    app_state = dict(genesis.app_state)
    app_state["private"] = {"namespaces": [{
        "name": "drivers", "description": "driving licences",
        "holders": [VALIDATORS[0].public_key.hex(), VALIDATORS[1].public_key.hex()],
        "metadata_keys": ["class"]}]}
    roles = dict(app_state["roles"])
    roles["grants"] = [*roles["grants"],
                       {"role": "writer", "scope": "drivers", "address": WRITER.address.hex()},
                       {"role": "authority", "scope": "drivers",
                        "address": COURT.address.hex()}]
    app_state["roles"] = roles
    return Genesis(genesis.chain_id, genesis.genesis_time_ms, genesis.validator_set,
                   genesis.accounts, genesis.params, app_state)


@pytest.fixture
def papp() -> App:
    return make_app(private_genesis())


PUT = {"namespace": "drivers", "key": "lic-42", "commitment": COMMITMENT,
       "subject": CITIZEN.address, "metadata": {"class": "B"}}


def test_private_record_holds_only_the_commitment(papp: App) -> None:
    papp.ok(WRITER, "private_put", PUT)
    record = get_record(papp.state, "drivers", "lic-42")
    assert record is not None
    assert record["commitment"] == COMMITMENT and record["value"] == b""
    assert record["subject"] == CITIZEN.address and record["metadata"] == {"class": "B"}
    assert not any(PAYLOAD in value for value in papp.state.values())
    assert is_matching_commitment(record["commitment"], SALT, PAYLOAD)
    assert not is_matching_commitment(record["commitment"], SALT, PAYLOAD + b"!")
    namespace = get_namespace(papp.state, "drivers")
    assert namespace is not None and namespace["records"] == 1
    assert set(get_holder_addresses(namespace)) == {VALIDATORS[0].address,
                                                    VALIDATORS[1].address}


def test_public_namespace_works_unchanged(papp: App) -> None:
    papp.ok(WRITER, "record_put", {"namespace": "licenses", "key": "v1", "value": b"open"})
    record = get_record(papp.state, "licenses", "v1")
    assert record is not None and record["value"] == b"open" and "commitment" not in record


def test_invalid_private_record_rejections(papp: App) -> None:
    papp.assert_fails(WRITER, "record_put", {"namespace": "drivers", "key": "k",
                                             "value": PAYLOAD}, "private_namespace")
    papp.assert_fails(WRITER, "private_put", {**PUT, "namespace": "licenses"},
                      "private_namespace")
    papp.assert_fails(BANK, "private_put", PUT, "missing_role")
    papp.assert_fails(WRITER, "private_put", {**PUT, "commitment": COMMITMENT[:31]},
                      "malformed_fields")
    papp.assert_fails(WRITER, "private_put", {**PUT, "metadata": {"name": "Aida"}},
                      "malformed_fields")
    papp.ok(WRITER, "private_put", PUT)
    papp.assert_fails(WRITER, "private_put", PUT, "record_exists")


def test_grant_by_subject_revoke_and_refusal_at_admission(papp: App) -> None:
    papp.ok(WRITER, "private_put", PUT)
    grant = {"namespace": "drivers", "key": "lic-42", "grantee": BANK.address,
             "expires_ms": ctx_at(100).timestamp_ms}
    # someone without the role (not the subject, not a writer) is refused at admission
    tx = papp.tx(BANK, "private_grant", grant)
    with pytest.raises(LedgerError) as info:
        papp.ledger.check_admission(papp.state, tx, expected_nonce=0)
    assert info.value.code == "missing_role"
    papp.assert_fails(BANK, "private_grant", grant, "missing_role")
    granted = papp.tx(CITIZEN, "private_grant", grant)
    papp.ledger.check_admission(papp.state, granted, expected_nonce=granted.nonce)
    assert papp.run(granted).is_ok
    stored = get_grant(papp.state, "drivers", "lic-42", BANK.address)
    assert stored is not None and stored["grantor"] == CITIZEN.address
    papp.ok(CITIZEN, "private_revoke", {"namespace": "drivers", "key": "lic-42",
                                        "grantee": BANK.address})
    stored = get_grant(papp.state, "drivers", "lic-42", BANK.address)
    assert stored is not None and stored["revoked_height"] > 0
    # the old grant transaction replayed: its nonce is used
    with pytest.raises(LedgerError) as info:
        papp.ledger.check_admission(papp.state, granted, expected_nonce=granted.nonce + 2)
    assert info.value.code == "nonce_too_low"
    papp.assert_fails(CITIZEN, "private_revoke", {"namespace": "drivers", "key": "lic-42",
                                                  "grantee": BANK.address}, "unknown_grant")
    papp.assert_fails(CITIZEN, "private_grant", {**grant, "expires_ms": 1}, "malformed_fields")


def test_erasure_by_authority_keeps_the_commitment(papp: App) -> None:
    papp.ok(WRITER, "private_put", PUT)
    erase = {"namespace": "drivers", "key": "lic-42", "reason": "court order 2026/77"}
    papp.assert_fails(WRITER, "private_erase", erase, "missing_role")
    papp.ok(COURT, "private_erase", erase)
    erasure = get_erasure(papp.state, "drivers", "lic-42")
    assert erasure is not None and erasure["authority"] == COURT.address
    record = get_record(papp.state, "drivers", "lic-42")
    assert record is not None and record["commitment"] == COMMITMENT
    papp.assert_fails(COURT, "private_erase", erase, "record_erased")
    papp.assert_fails(CITIZEN, "private_grant", {
        "namespace": "drivers", "key": "lic-42", "grantee": BANK.address,
        "expires_ms": ctx_at(100).timestamp_ms}, "record_erased")


def test_read_log_anchors_follow_each_other(papp: App) -> None:
    validator = VALIDATORS[0]
    root = os.urandom(32)
    papp.ok(validator, "private_anchor", {"batch": 0, "first_seq": 0, "count": 3, "root": root})
    papp.assert_fails(validator, "private_anchor", {"batch": 0, "first_seq": 0, "count": 1,
                                                    "root": root}, "anchor_out_of_order")
    papp.ok(validator, "private_anchor", {"batch": 1, "first_seq": 3, "count": 1, "root": root})
    anchor = get_anchor(papp.state, validator.address, 1)
    assert anchor is not None and anchor["first_seq"] == 3
    papp.assert_fails(WRITER, "private_anchor", {"batch": 0, "first_seq": 0, "count": 1,
                                                 "root": root}, "not_validator")


def test_private_namespace_by_governance(papp: App) -> None:
    args = {"name": "health", "holders": [VALIDATORS[2].public_key]}
    height = papp.height + 100
    result = papp.ok(VALIDATORS[0], "propose", {"action": "create_private_namespace",
                                                "args": args, "expiry_height": height})
    pid = result.events[0].attributes["id"]
    for voter in VALIDATORS[1:3]:
        papp.ok(voter, "vote", {"proposal": pid})
    namespace = get_namespace(papp.state, "health")
    assert namespace is not None and tuple(namespace["holders"]) == (VALIDATORS[2].public_key,)
    bad = {"name": "x", "holders": [b"short"]}
    tx = papp.tx(VALIDATORS[0], "propose", {"action": "create_private_namespace",
                                            "args": bad, "expiry_height": height})
    with pytest.raises(LedgerError) as info:
        papp.ledger.check_admission(papp.state, tx, expected_nonce=tx.nonce)
    assert info.value.code == "malformed_fields"


def test_grant_is_active_until_it_expires_or_is_revoked(papp: App) -> None:
    papp.ok(WRITER, "private_put", PUT)
    expires_ms = ctx_at(50).timestamp_ms
    papp.ok(CITIZEN, "private_grant", {"namespace": "drivers", "key": "lic-42",
                                       "grantee": BANK.address, "expires_ms": expires_ms})
    grant = get_grant(papp.state, "drivers", "lic-42", BANK.address)
    assert is_grant_active(grant, expires_ms - 1)
    assert not is_grant_active(grant, expires_ms)
    assert not is_grant_active(get_grant(papp.state, "drivers", "lic-42", COURT.address), 0)
    papp.ok(CITIZEN, "private_revoke", {"namespace": "drivers", "key": "lic-42",
                                        "grantee": BANK.address})
    assert not is_grant_active(get_grant(papp.state, "drivers", "lic-42", BANK.address),
                               expires_ms - 1)
