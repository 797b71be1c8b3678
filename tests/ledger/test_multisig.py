"""Multisig accounts: M-of-N signatures, creation, member changes."""

from __future__ import annotations

from chain.crypto import compute_multisig_address
from ledger.multisig import get_policy
from tests.ledger.app_fixtures import MEMBERS, OTHER, STRANGER, TREASURY, App


def test_treasury_pays_with_two_of_three(app: App) -> None:
    fields = {"to": OTHER.address, "asset": "GOV", "amount": 100}
    app.ok(MEMBERS[0], "transfer", fields, sender=TREASURY, signers=MEMBERS[:2])
    app.ok(MEMBERS[0], "transfer", fields, sender=TREASURY, signers=[MEMBERS[0], MEMBERS[2]])
    assert app.ledger.get_balance(app.state, TREASURY, "GOV") == 4800


def test_invalid_multisig_below_threshold_is_not_applicable(app: App) -> None:
    tx = app.tx(MEMBERS[0], "transfer", {"to": OTHER.address, "asset": "GOV", "amount": 1},
                sender=TREASURY, signers=MEMBERS[:1])
    app.assert_not_applicable(tx, "unauthorized")
    admission = None
    try:
        app.ledger.check_admission(app.state, tx, expected_nonce=0)
    except Exception as e:
        admission = e
    assert getattr(admission, "code", None) == "unauthorized"


def test_invalid_multisig_with_an_outsider_signature(app: App) -> None:
    tx = app.tx(MEMBERS[0], "transfer", {"to": OTHER.address, "asset": "GOV", "amount": 1},
                sender=TREASURY, signers=[MEMBERS[0], STRANGER])
    app.assert_not_applicable(tx, "unauthorized")


def test_create_and_update_members_needs_threshold(app: App) -> None:
    keys = (STRANGER.public_key, OTHER.public_key)
    result = app.ok(OTHER, "multisig_create", {"threshold": 2, "members": list(keys)})
    address = compute_multisig_address(2, keys)
    assert result.events[0].attributes["address"] == address
    app.assert_fails(OTHER, "multisig_create", {"threshold": 2, "members": list(keys)},
                     "account_exists")
    new = {"threshold": 1, "members": [MEMBERS[0].public_key, MEMBERS[1].public_key]}
    one = app.tx(OTHER, "multisig_update", new, sender=address, signers=[OTHER])
    app.assert_not_applicable(one, "unauthorized")
    app.ok(OTHER, "multisig_update", new, sender=address, signers=[OTHER, STRANGER])
    policy = get_policy(app.state, address)
    assert policy is not None and policy.threshold == 1
    # the old members lost their say; the address did not change
    old = app.tx(OTHER, "multisig_update", new, sender=address, signers=[OTHER, STRANGER])
    app.assert_not_applicable(old, "unauthorized")
    app.ok(MEMBERS[0], "multisig_update", new, sender=address, signers=[MEMBERS[0]])


def test_invalid_multisig_update_from_single_key_account(app: App) -> None:
    app.assert_fails(OTHER, "multisig_update",
                     {"threshold": 1, "members": [OTHER.public_key]}, "not_multisig")


def test_invalid_multisig_policy_fields(app: App) -> None:
    app.assert_fails(OTHER, "multisig_create",
                     {"threshold": 3, "members": [OTHER.public_key, STRANGER.public_key]},
                     "malformed_fields")
    app.assert_fails(OTHER, "multisig_create",
                     {"threshold": 1, "members": [OTHER.public_key, OTHER.public_key]},
                     "malformed_fields")
    app.assert_fails(OTHER, "multisig_create", {"threshold": 1, "members": []},
                     "malformed_fields")
