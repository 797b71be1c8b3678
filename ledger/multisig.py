"""Multisig accounts: an M-of-N policy over member keys, kept beside the account record.

The address is `chain.crypto.compute_multisig_address(threshold, members)` of the
policy it was created with; a later `multisig_update` (itself signed by M members)
changes the policy but never the address. ledger/auth.py reads the policy to decide
who may act for the account. This module verifies no signature itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chain.crypto import PUBLIC_KEY_SIZE, Address, compute_multisig_address
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.accounts import EMPTY_ACCOUNT, get_account_record, put_account_record
from ledger.errors import (
    AccountExistsError,
    CorruptStateError,
    InvalidGenesisStateError,
    MalformedFieldsError,
    NotMultisigError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import get_multisig_key
from ledger.state import Overlay, StateReader, get_value, put_value

MULTISIG_CREATE = "multisig_create"
MULTISIG_UPDATE = "multisig_update"
MAX_MEMBERS = 16
"""Most member keys of one account (a transaction carries at most 32 signatures)."""


@dataclass(frozen=True, slots=True)
class MultisigPolicy:
    """Who may act for a multisig account."""

    threshold: int
    """M: how many distinct member signatures a transaction needs."""
    members: tuple[bytes, ...]
    """The N member public keys, sorted."""

    @property
    def address(self) -> Address:
        return compute_multisig_address(self.threshold, self.members)

    def to_value(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "members": list(self.members)}

    @classmethod
    def from_value(cls, value: Any) -> MultisigPolicy:
        if not isinstance(value, dict) or set(value) != {"threshold", "members"}:
            raise CorruptStateError(f"multisig policy has unexpected form {value!r}")
        return cls(int(value["threshold"]), tuple(value["members"]))


def get_policy(view: StateReader, address: bytes) -> MultisigPolicy | None:
    """The policy of a multisig account, or None for a single-key account."""
    value = get_value(view, get_multisig_key(address), "multisig policy")
    return None if value is None else MultisigPolicy.from_value(value)


def validate_policy_fields(fields: Mapping[str, Any]) -> MultisigPolicy:
    """`threshold` M in [1, N]; `members`: 1 to 16 distinct 32-byte public keys."""
    f.validate_field_names(fields, frozenset({"threshold", "members"}))
    members = fields["members"]
    if not isinstance(members, list | tuple) or not 1 <= len(members) <= MAX_MEMBERS:
        raise MalformedFieldsError("members", f"expected 1 to {MAX_MEMBERS} public keys")
    if not all(isinstance(m, bytes) and len(m) == PUBLIC_KEY_SIZE for m in members):
        raise MalformedFieldsError("members", "every member is a 32-byte public key")
    if len(set(members)) != len(members):
        raise MalformedFieldsError("members", "a key is listed twice")
    threshold = f.expect_int(fields, "threshold", 1, len(members))
    return MultisigPolicy(threshold, tuple(sorted(members)))


def _validate_policy(fields: Mapping[str, Any]) -> None:
    validate_policy_fields(fields)


def apply_create_account(view: Overlay, policy: MultisigPolicy) -> Address:
    """Create the multisig account of `policy`; AccountExistsError if its address is used."""
    address = policy.address
    if get_account_record(view, address) is not None:
        raise AccountExistsError(f"account {address.hex()} exists already")
    put_account_record(view, address, EMPTY_ACCOUNT)
    put_value(view, get_multisig_key(address), policy.to_value())
    return address


def apply_multisig_create(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """Anyone may create a multisig account; it holds nothing until funded."""
    policy = validate_policy_fields(tx.fields)
    address = apply_create_account(view, policy)
    return [Event("multisig_created", {"address": address, "threshold": policy.threshold,
                                       "members": len(policy.members)})]


def apply_multisig_update(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """The account itself (M member signatures, checked by auth) sets a new policy."""
    if get_policy(view, tx.sender) is None:
        raise NotMultisigError(f"account {tx.sender.hex()} is a single-key account")
    policy = validate_policy_fields(tx.fields)
    put_value(view, get_multisig_key(tx.sender), policy.to_value())
    return [Event("multisig_updated", {"address": tx.sender, "threshold": policy.threshold,
                                       "members": len(policy.members)})]


def get_multisig_info(view: StateReader, address: bytes) -> dict[str, Any] | None:
    policy = get_policy(view, address)
    return None if policy is None else policy.to_value()


class MultisigModule:
    """M-of-N accounts for treasuries and issuers."""

    name = "multisig"
    tx_types: Mapping[str, TxHandler] = {
        MULTISIG_CREATE: TxHandler(_validate_policy, apply_multisig_create),
        MULTISIG_UPDATE: TxHandler(_validate_policy, apply_multisig_update),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        """Attach each policy to its address; a funded genesis account keeps its balances."""
        settings = genesis.app_state.get(self.name) or {}
        if not isinstance(settings, dict) or set(settings) - {"accounts"}:
            raise InvalidGenesisStateError('app_state.multisig takes {"accounts": [...]} only')
        for entry in settings.get("accounts", []):
            try:
                policy = validate_policy_fields({
                    "threshold": entry["threshold"],
                    "members": [bytes.fromhex(m) for m in entry["members"]]})
            except (KeyError, TypeError, ValueError, MalformedFieldsError) as e:
                raise InvalidGenesisStateError(f"multisig entry {entry!r}: {e}") from e
            if set(entry) - {"threshold", "members", "address"}:
                raise InvalidGenesisStateError(f"multisig entry {entry!r}: unknown field")
            if "address" in entry and entry["address"] != policy.address.hex():
                raise InvalidGenesisStateError(
                    f"multisig entry address {entry['address']} is not the policy's "
                    f"{policy.address.hex()}")
            if get_policy(view, policy.address) is not None:
                raise InvalidGenesisStateError(f"multisig {policy.address.hex()} listed twice")
            if get_account_record(view, policy.address) is None:
                put_account_record(view, policy.address, EMPTY_ACCOUNT)
            put_value(view, get_multisig_key(policy.address), policy.to_value())
