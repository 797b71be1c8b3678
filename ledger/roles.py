"""Roles and permissions: which account may issue, audit, police an asset or write a registry.

A role is (role, scope, account): "issuer", "auditor", "compliance" and "kyc" are scoped to
an asset symbol, "writer" to a registry namespace. Only governance grants and revokes
them (genesis may seed them). Every permissioned handler calls `validate_role` at
execution time, never at admission only. The validator role is not stored here: it
is membership of the validator set (see ledger/governance.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from chain.crypto import ADDRESS_SIZE, compute_address
from chain.genesis import Genesis
from ledger.errors import (
    InvalidGenesisStateError,
    MissingRoleError,
    RoleExistsError,
    RoleNotHeldError,
    TooManyError,
    UnknownAssetError,
    UnknownNamespaceError,
)
from ledger.fields import is_valid_asset
from ledger.interface import TxHandler
from ledger.keys import (
    VALIDATOR_SET_KEY,
    get_account_roles_key,
    get_asset_key,
    get_namespace_key,
    get_role_key,
)
from ledger.state import Overlay, StateReader, get_value, put_value

ISSUER = "issuer"
AUDITOR = "auditor"
COMPLIANCE = "compliance"
WRITER = "writer"
AUTHORITY = "authority"
"""Of a private namespace: may order the erasure of a record's payload (a court)."""
KYC = "kyc"
VALIDATOR = "validator"

ASSET_ROLES = frozenset({ISSUER, AUDITOR, COMPLIANCE, KYC})
"""KYC: a licensed provider that assigns identity tiers (ledger/tiers.py)."""
NAMESPACE_ROLES = frozenset({WRITER, AUTHORITY})
GRANTABLE_ROLES = ASSET_ROLES | NAMESPACE_ROLES
"""Roles governance grants with grant_role; validators change with add/remove_validator."""

MAX_ROLE_HOLDERS = 64
"""Most accounts holding one role in one scope."""


def get_role_holders(view: StateReader, role: str, scope: str) -> tuple[bytes, ...]:
    """The addresses holding `role` in `scope`, sorted."""
    value = get_value(view, get_role_key(role, scope), "role holders")
    return () if value is None else tuple(value)


def has_role(view: StateReader, role: str, scope: str, address: bytes) -> bool:
    return address in get_role_holders(view, role, scope)


def validate_role(view: StateReader, role: str, scope: str, address: bytes) -> None:
    """Raise MissingRoleError unless `address` holds `role` in `scope`."""
    if not has_role(view, role, scope, address):
        raise MissingRoleError(
            f"account {address.hex()} is not {role} of {scope!r}; governance grants roles")


def validate_scope(view: StateReader, role: str, scope: str) -> None:
    """Raise unless `role` is grantable and `scope` exists (an asset or a namespace)."""
    if not is_valid_asset(scope):
        raise UnknownAssetError(f"{scope!r} names no asset or namespace")
    if role in ASSET_ROLES:
        if view.get(get_asset_key(scope)) is None:
            raise UnknownAssetError(f"no asset {scope!r}: create it before granting {role}")
    elif role in NAMESPACE_ROLES:
        if view.get(get_namespace_key(scope)) is None:
            raise UnknownNamespaceError(f"no namespace {scope!r}: create it first")
    else:
        raise MissingRoleError(f"{role!r} is not a grantable role; "
                               f"roles are {sorted(GRANTABLE_ROLES)}")


def get_account_roles(view: StateReader, address: bytes) -> list[tuple[str, str]]:
    """The (role, scope) pairs `address` holds, sorted; the validator role not included."""
    value = get_value(view, get_account_roles_key(address), "account roles")
    return [] if value is None else [(str(r), str(s)) for r, s in value]


def apply_grant_role(view: Overlay, role: str, scope: str, address: bytes) -> None:
    """Give `address` the role; RoleExistsError if it holds it already."""
    validate_scope(view, role, scope)
    holders = list(get_role_holders(view, role, scope))
    if address in holders:
        raise RoleExistsError(f"account {address.hex()} is already {role} of {scope!r}")
    if len(holders) >= MAX_ROLE_HOLDERS:
        raise TooManyError(f"{role} of {scope!r} has {MAX_ROLE_HOLDERS} holders, the most")
    bisect.insort(holders, address)
    put_value(view, get_role_key(role, scope), holders)
    pairs = get_account_roles(view, address)
    bisect.insort(pairs, (role, scope))
    put_value(view, get_account_roles_key(address), [list(p) for p in pairs])


def apply_revoke_role(view: Overlay, role: str, scope: str, address: bytes) -> None:
    """Take the role from `address`; RoleNotHeldError if it does not hold it."""
    holders = list(get_role_holders(view, role, scope))
    if address not in holders:
        raise RoleNotHeldError(f"account {address.hex()} is not {role} of {scope!r}")
    holders.remove(address)
    key = get_role_key(role, scope)
    if holders:
        put_value(view, key, holders)
    else:
        view.delete(key)
    pairs = [p for p in get_account_roles(view, address) if p != (role, scope)]
    roles_key = get_account_roles_key(address)
    if pairs:
        put_value(view, roles_key, [list(p) for p in pairs])
    else:
        view.delete(roles_key)


def is_validator_account(view: StateReader, address: bytes) -> bool:
    """True when `address` is the account of a key in the validator set in force."""
    value = get_value(view, VALIDATOR_SET_KEY, "validator set") or ()
    return any(compute_address(key) == address for key, _name in value)


def parse_genesis_address(text: Any, what: str) -> bytes:
    """A 20-byte address from genesis JSON hex text."""
    try:
        address = bytes.fromhex(str(text).removeprefix("0x"))
    except ValueError as e:
        raise InvalidGenesisStateError(f"{what}: {text!r} is not hex") from e
    if len(address) != ADDRESS_SIZE:
        raise InvalidGenesisStateError(f"{what}: {text!r} is not a 20-byte address")
    return address


class RolesModule:
    """Role grants seeded at genesis; later grants and revocations come from governance."""

    name = "roles"
    tx_types: Mapping[str, TxHandler] = {}

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        settings = genesis.app_state.get(self.name) or {}
        if not isinstance(settings, dict) or set(settings) - {"grants"}:
            raise InvalidGenesisStateError('app_state.roles takes {"grants": [...]} only')
        for grant in settings.get("grants", []):
            if not isinstance(grant, dict) or set(grant) != {"role", "scope", "address"}:
                raise InvalidGenesisStateError(
                    f"role grant {grant!r}: expected role, scope and address")
            address = parse_genesis_address(grant["address"], "role grant")
            try:
                apply_grant_role(view, str(grant["role"]), str(grant["scope"]), address)
            except (MissingRoleError, UnknownAssetError, UnknownNamespaceError,
                    RoleExistsError, TooManyError) as e:
                raise InvalidGenesisStateError(f"role grant {grant!r}: {e.message}") from e
