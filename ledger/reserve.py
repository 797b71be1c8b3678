"""Gold reserve policy: attestations that expire, name the gold and carry the auditor's signature.

Governance sets an asset's reserve policy (set_reserve_policy: how long an attestation
stays good, how many asset units one milligram of fine gold backs) and registers each
audit firm's report-signing keys (register_auditor_key). Once an asset has a policy,
its attestations must carry the bar-list Merkle root, the fine weight, the bar count
and the audit report's own Ed25519 signature, and a mint under an attestation older
than the maximum age is refused. Pure: the block header's time only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chain.crypto import (
    DOMAIN_RESERVE_REPORT,
    HASH_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    is_valid_signature,
    signing_bytes,
)
from ledger import fields as f
from ledger.errors import (
    AttestationExpiredError,
    AttestationIncompleteError,
    BadReportSignatureError,
    MissingRoleError,
    NotReserveBackedError,
    ReserveWeightMismatchError,
    TooManyError,
    UnknownAssetError,
    UnregisteredAuditorKeyError,
)
from ledger.interface import BlockContext, Event
from ledger.keys import get_asset_key, get_auditor_key_key, get_reserve_policy_key
from ledger.roles import AUDITOR, has_role
from ledger.state import Overlay, StateReader, get_value, put_value

SET_RESERVE_POLICY = "set_reserve_policy"
REGISTER_AUDITOR_KEY = "register_auditor_key"
GOLD_FIELDS = frozenset({"bar_root", "fine_weight_mg", "bar_count", "report_key",
                         "report_signature"})
"""The attest fields that name the gold; all or none, and all once a policy exists."""
MAX_AUDITOR_KEYS = 8
"""Most report-signing keys one auditor has registered for one asset."""


def get_reserve_policy(view: StateReader, symbol: str) -> dict[str, int] | None:
    """{"max_age_ms", "units_per_fine_mg"} or None (then attestations never expire)."""
    value = get_value(view, get_reserve_policy_key(symbol), "reserve policy")
    return None if value is None else {k: int(v) for k, v in value.items()}


def get_auditor_keys(view: StateReader, symbol: str, auditor: bytes) -> tuple[bytes, ...]:
    value = get_value(view, get_auditor_key_key(symbol, auditor), "auditor keys")
    return () if value is None else tuple(value)


def get_report_payload(symbol: str, fields: Mapping[str, Any]) -> list[Any]:
    """What the audit firm signs: the asset and every figure of the attestation."""
    return [symbol, fields["reserve"], fields["fine_weight_mg"], fields["bar_count"],
            fields["bar_root"], fields["report_hash"], fields["timestamp_ms"]]


def validate_gold_fields(fields: Mapping[str, Any]) -> None:
    """Stateless: the gold fields are all present or all absent, each well-formed."""
    present = GOLD_FIELDS & set(fields)
    if not present:
        return
    for name in sorted(GOLD_FIELDS - present):
        raise AttestationIncompleteError(f"an attestation naming the gold needs {name}")
    f.expect_bytes(fields, "bar_root", size=HASH_SIZE)
    f.expect_int(fields, "fine_weight_mg", 0, f.MAX_AMOUNT)
    f.expect_int(fields, "bar_count", 0, 2**32 - 1)
    f.expect_bytes(fields, "report_key", size=PUBLIC_KEY_SIZE)
    f.expect_bytes(fields, "report_signature", size=SIGNATURE_SIZE)


def validate_gold_attestation(view: StateReader, ctx: BlockContext, symbol: str,
                              auditor: bytes, fields: Mapping[str, Any]) -> None:
    """At execution: a policy demands the gold fields; the key is the auditor's; it signed."""
    policy = get_reserve_policy(view, symbol)
    if "bar_root" not in fields:
        if policy is not None:
            raise AttestationIncompleteError(
                f"asset {symbol!r} has a reserve policy: its attestations carry bar_root, "
                f"fine_weight_mg, bar_count, report_key and report_signature")
        return
    if fields["report_key"] not in get_auditor_keys(view, symbol, auditor):
        raise UnregisteredAuditorKeyError(
            f"key {fields['report_key'].hex()} is not registered for auditor "
            f"{auditor.hex()} of {symbol}; governance registers report keys")
    message = signing_bytes(DOMAIN_RESERVE_REPORT, ctx.chain_id,
                            get_report_payload(symbol, fields))
    if not is_valid_signature(fields["report_key"], message, fields["report_signature"]):
        raise BadReportSignatureError(
            "the report signature does not verify over the attestation's figures")
    if policy is not None and fields["reserve"] != fields["fine_weight_mg"] * policy[
            "units_per_fine_mg"]:
        raise ReserveWeightMismatchError(
            f"reserve {fields['reserve']} is not fine weight {fields['fine_weight_mg']} mg x "
            f"{policy['units_per_fine_mg']} units per mg")


def validate_attestation_fresh(view: StateReader, ctx: BlockContext, symbol: str,
                               latest: Mapping[str, Any] | None) -> None:
    """Refuse a mint when the latest attestation is older than the policy's maximum age."""
    policy = get_reserve_policy(view, symbol)
    if policy is None:
        return
    if latest is None:
        raise AttestationExpiredError(f"asset {symbol!r} has no attestation")
    age_ms = ctx.timestamp_ms - int(latest["timestamp_ms"])
    if age_ms > policy["max_age_ms"]:
        raise AttestationExpiredError(
            f"the latest attestation of {symbol} is {age_ms} ms old, above the maximum "
            f"{policy['max_age_ms']} ms: minting resumes under a new attestation")


def is_attestation_expired(view: StateReader, symbol: str, latest: Mapping[str, Any] | None,
                           now_ms: int) -> bool | None:
    """True/False for an asset with a policy (at time `now_ms`), None without one."""
    policy = get_reserve_policy(view, symbol)
    if policy is None:
        return None
    return latest is None or now_ms - int(latest["timestamp_ms"]) > policy["max_age_ms"]


# ------------------------------------------------------------------ governance actions


def validate_set_reserve_policy_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"asset", "max_age_ms", "units_per_fine_mg"}))
    f.expect_asset(args, "asset")
    f.expect_int(args, "max_age_ms", 1, f.MAX_AMOUNT)
    f.expect_int(args, "units_per_fine_mg", 1, f.MAX_AMOUNT)


def _validate_backed_asset(view: StateReader, symbol: str) -> None:
    record = get_value(view, get_asset_key(symbol), "asset record")
    if record is None:
        raise UnknownAssetError(f"no asset {symbol!r}; governance creates assets")
    if not record["reserve_backed"]:
        raise NotReserveBackedError(f"asset {symbol!r} is not reserve-backed")


def apply_set_reserve_policy(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                             ) -> list[Event]:
    symbol = args["asset"]
    _validate_backed_asset(view, symbol)
    put_value(view, get_reserve_policy_key(symbol), {"max_age_ms": args["max_age_ms"],
                                                     "units_per_fine_mg": args[
                                                         "units_per_fine_mg"]})
    return [Event("reserve_policy_set", {"asset": symbol, "max_age_ms": args["max_age_ms"],
                                         "units_per_fine_mg": args["units_per_fine_mg"]})]


def validate_register_auditor_key_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"asset", "auditor", "public_key", "registered"}))
    f.expect_asset(args, "asset")
    f.expect_address(args, "auditor")
    f.expect_public_key(args, "public_key")
    f.expect_bool(args, "registered")


def apply_register_auditor_key(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                               ) -> list[Event]:
    """Register (registered=true) or withdraw an auditor's report-signing key."""
    symbol, auditor, key = args["asset"], args["auditor"], args["public_key"]
    _validate_backed_asset(view, symbol)
    if not has_role(view, AUDITOR, symbol, auditor):
        raise MissingRoleError(f"account {auditor.hex()} is not auditor of {symbol!r}")
    keys = set(get_auditor_keys(view, symbol, auditor))
    if args["registered"]:
        keys.add(key)
    else:
        keys.discard(key)
    if len(keys) > MAX_AUDITOR_KEYS:
        raise TooManyError(f"an auditor registers at most {MAX_AUDITOR_KEYS} keys per asset")
    state_key = get_auditor_key_key(symbol, auditor)
    if keys:
        put_value(view, state_key, sorted(keys))
    else:
        view.delete(state_key)
    return [Event("auditor_key_set", {"asset": symbol, "auditor": auditor,
                                      "public_key": key, "registered": int(args["registered"])})]


GOVERNANCE_ACTIONS = {
    SET_RESERVE_POLICY: (validate_set_reserve_policy_args, apply_set_reserve_policy),
    REGISTER_AUDITOR_KEY: (validate_register_auditor_key_args, apply_register_auditor_key),
}
