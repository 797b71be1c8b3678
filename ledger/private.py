"""Private registries: records whose payload never enters the replicated state.

A private namespace names its holders (validator keys of the ministries allowed to
keep payloads) and the metadata keys its records may show publicly. Its records hold
a salted commitment (chain/commitment.py), never the payload; the holders' nodes keep
the encrypted payloads off the chain (node/private.py). This module rules what the
chain keeps: records, read grants, lawful erasures and the holders' read-log anchors.
It never sees a payload. Theory of operation: docs/privacy.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chain.commitment import COMMITMENT_SIZE
from chain.crypto import compute_address
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.errors import (
    AnchorOutOfOrderError,
    InvalidGenesisStateError,
    LedgerError,
    MalformedFieldsError,
    MissingRoleError,
    NamespaceExistsError,
    NotValidatorError,
    PrivateNamespaceError,
    RecordErasedError,
    RecordExistsError,
    UnknownGrantError,
    UnknownRecordError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import (
    get_erasure_key,
    get_grant_key,
    get_namespace_key,
    get_read_anchor_head_key,
    get_read_anchor_key,
    get_record_key,
    get_record_version_key,
)
from ledger.registry import (
    ACTIVE,
    MAX_DESCRIPTION,
    MAX_METADATA_TEXT,
    MAX_REASON,
    RECORD_KEY_PATTERN,
    get_existing_namespace,
    get_namespace,
    get_record,
)
from ledger.roles import AUTHORITY, WRITER, has_role, is_validator_account, validate_role
from ledger.state import Overlay, StateReader, get_value, put_value

PRIVATE_PUT = "private_put"
PRIVATE_GRANT = "private_grant"
PRIVATE_REVOKE = "private_revoke"
PRIVATE_ERASE = "private_erase"
PRIVATE_ANCHOR = "private_anchor"
CREATE_PRIVATE_NAMESPACE = "create_private_namespace"
"""The governance action that creates a private namespace."""

MAX_HOLDERS = 16
MAX_METADATA_KEYS = 16
MAX_ANCHOR_ENTRIES = 4096
"""Most read-log entries one anchor commits to."""


# ------------------------------------------------------------------ namespaces


def is_private_namespace(namespace: Mapping[str, Any] | None) -> bool:
    return namespace is not None and "holders" in namespace


def get_private_namespace(view: StateReader, name: str) -> dict[str, Any]:
    """The namespace `name`; PrivateNamespaceError unless it is private."""
    namespace = get_existing_namespace(view, name)
    if not is_private_namespace(namespace):
        raise PrivateNamespaceError(f"namespace {name!r} is public: its records are on "
                                    f"the chain (use record_put)")
    return namespace


def get_holder_addresses(namespace: Mapping[str, Any]) -> tuple[bytes, ...]:
    """The accounts of the validator keys that hold the namespace's payloads."""
    return tuple(compute_address(key) for key in namespace["holders"])


def is_holder_key(namespace: Mapping[str, Any], public_key: bytes) -> bool:
    return is_private_namespace(namespace) and public_key in namespace["holders"]


def validate_create_private_namespace_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names_optional(args, frozenset({"name", "holders"}),
                                    frozenset({"description", "max_value_bytes",
                                               "metadata_keys"}))
    f.expect_name(args, "name")
    if "description" in args:
        f.expect_text(args, "description", MAX_DESCRIPTION)
    holders = args["holders"]
    if (not isinstance(holders, list | tuple) or not 1 <= len(holders) <= MAX_HOLDERS
            or not all(isinstance(k, bytes) and len(k) == 32 for k in holders)
            or len(set(holders)) != len(holders)):
        raise MalformedFieldsError(
            "holders", f"expected 1 to {MAX_HOLDERS} distinct 32-byte validator keys")
    keys = args.get("metadata_keys", [])
    if (not isinstance(keys, list | tuple) or len(keys) > MAX_METADATA_KEYS
            or not all(isinstance(k, str) and 0 < len(k) <= 64 for k in keys)):
        raise MalformedFieldsError(
            "metadata_keys", f"expected at most {MAX_METADATA_KEYS} names of 1 to 64 characters")


def apply_create_private_namespace(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                                   ) -> list[Event]:
    name: str = args["name"]
    if get_namespace(view, name) is not None:
        raise NamespaceExistsError(f"namespace {name!r} exists already")
    put_value(view, get_namespace_key(name), {
        "description": args.get("description", ""), "max_value_bytes": 0, "records": 0,
        "created_height": ctx.height, "holders": sorted(args["holders"]),
        "metadata_keys": sorted(args.get("metadata_keys", []))})
    return [Event("namespace_created", {"namespace": name, "private": 1})]


# ------------------------------------------------------------------ records


def validate_put_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names_optional(fields, frozenset({"namespace", "key", "commitment"}),
                                    frozenset({"subject", "metadata"}))
    f.expect_name(fields, "namespace")
    f.expect_text(fields, "key", 128, pattern=RECORD_KEY_PATTERN)
    f.expect_bytes(fields, "commitment", size=COMMITMENT_SIZE)
    if "subject" in fields:
        f.expect_address(fields, "subject")
    if "metadata" in fields:
        metadata = f.expect_map(fields, "metadata")
        if not all(isinstance(v, str) and len(v) <= MAX_METADATA_TEXT
                   for v in metadata.values()):
            raise MalformedFieldsError(
                "metadata", f"values are text of at most {MAX_METADATA_TEXT} characters")


def apply_private_put(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """A writer records a commitment to a payload its ministry's node will hold."""
    namespace, key = tx.fields["namespace"], tx.fields["key"]
    ns = get_private_namespace(view, namespace)
    validate_role(view, WRITER, namespace, tx.sender)
    metadata = dict(tx.fields.get("metadata", {}))
    unknown = sorted(set(metadata) - set(ns["metadata_keys"]))
    if unknown:
        raise MalformedFieldsError("metadata", f"{unknown[0]!r} is not a public metadata key "
                                   f"of {namespace!r}; it takes {list(ns['metadata_keys'])}")
    if get_record(view, namespace, key) is not None:
        raise RecordExistsError(f"{namespace}/{key} exists already")
    record = {
        "namespace": namespace, "key": key, "version": 1, "value": b"", "doc_hash": b"",
        "metadata": metadata, "status": ACTIVE, "reason": "", "height": ctx.height,
        "timestamp_ms": ctx.timestamp_ms, "signer": tx.sender,
        "commitment": tx.fields["commitment"], "subject": tx.fields.get("subject", b""),
    }
    put_value(view, get_record_key(namespace, key), record)
    put_value(view, get_record_version_key(namespace, key, 1), record)
    put_value(view, get_namespace_key(namespace), {**ns, "records": ns["records"] + 1})
    return [Event("private_record_put", {"namespace": namespace, "key": key,
                                         "commitment": record["commitment"],
                                         "signer": tx.sender})]


def get_private_record(view: StateReader, namespace: str, key: str) -> dict[str, Any]:
    """The record; UnknownRecordError if absent, RecordErasedError if erased."""
    record = get_record(view, namespace, key)
    if record is None or "commitment" not in record:
        raise UnknownRecordError(f"no private record {namespace}/{key}")
    if get_erasure(view, namespace, key) is not None:
        raise RecordErasedError(f"{namespace}/{key} was erased by a lawful order")
    return record


# ------------------------------------------------------------------ grants


def get_grant(view: StateReader, namespace: str, key: str, grantee: bytes
              ) -> dict[str, Any] | None:
    value = get_value(view, get_grant_key(namespace, key, grantee), "grant")
    return None if value is None else dict(value)


def is_grant_active(grant: Mapping[str, Any] | None, now_ms: int) -> bool:
    return grant is not None and not grant["revoked_height"] and now_ms < grant["expires_ms"]


def validate_grantor(view: StateReader, namespace: str, key: str, grantor: bytes) -> None:
    """Raise MissingRoleError unless `grantor` may grant reads of the record: its
    subject, or a writer of its namespace."""
    record = get_private_record(view, namespace, key)
    if record["subject"] != grantor and not has_role(view, WRITER, namespace, grantor):
        raise MissingRoleError(f"account {grantor.hex()} is neither the subject of "
                               f"{namespace}/{key} nor a writer of {namespace!r}")


def validate_grant_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"namespace", "key", "grantee", "expires_ms"}))
    f.expect_name(fields, "namespace")
    f.expect_text(fields, "key", 128, pattern=RECORD_KEY_PATTERN)
    f.expect_address(fields, "grantee")
    f.expect_int(fields, "expires_ms", 1, 2**63 - 1)


def check_grant_state(view: StateReader, tx: Transaction) -> None:
    get_private_namespace(view, tx.fields["namespace"])
    validate_grantor(view, tx.fields["namespace"], tx.fields["key"], tx.sender)


def apply_private_grant(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    namespace, key, grantee = tx.fields["namespace"], tx.fields["key"], tx.fields["grantee"]
    check_grant_state(view, tx)
    if tx.fields["expires_ms"] <= ctx.timestamp_ms:
        raise MalformedFieldsError("expires_ms", "the grant would expire before this block")
    put_value(view, get_grant_key(namespace, key, grantee), {
        "grantor": tx.sender, "expires_ms": tx.fields["expires_ms"], "height": ctx.height,
        "revoked_height": 0})
    return [Event("private_granted", {"namespace": namespace, "key": key, "grantee": grantee,
                                      "expires_ms": tx.fields["expires_ms"],
                                      "grantor": tx.sender})]


def validate_revoke_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"namespace", "key", "grantee"}))
    f.expect_name(fields, "namespace")
    f.expect_text(fields, "key", 128, pattern=RECORD_KEY_PATTERN)
    f.expect_address(fields, "grantee")


def apply_private_revoke(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    namespace, key, grantee = tx.fields["namespace"], tx.fields["key"], tx.fields["grantee"]
    check_grant_state(view, tx)
    grant = get_grant(view, namespace, key, grantee)
    if grant is None or grant["revoked_height"]:
        raise UnknownGrantError(f"{grantee.hex()} holds no grant on {namespace}/{key}")
    put_value(view, get_grant_key(namespace, key, grantee),
              {**grant, "revoked_height": ctx.height})
    return [Event("private_revoked", {"namespace": namespace, "key": key,
                                      "grantee": grantee, "signer": tx.sender})]


# ------------------------------------------------------------------ erasure


def get_erasure(view: StateReader, namespace: str, key: str) -> dict[str, Any] | None:
    value = get_value(view, get_erasure_key(namespace, key), "erasure")
    return None if value is None else dict(value)


def validate_erase_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"namespace", "key", "reason"}))
    f.expect_name(fields, "namespace")
    f.expect_text(fields, "key", 128, pattern=RECORD_KEY_PATTERN)
    f.expect_text(fields, "reason", MAX_REASON)


def check_erase_state(view: StateReader, tx: Transaction) -> None:
    get_private_namespace(view, tx.fields["namespace"])
    validate_role(view, AUTHORITY, tx.fields["namespace"], tx.sender)


def apply_private_erase(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """An authority (a court) orders every holder to delete the payload and its key;
    the record and its commitment stay, so the chain still proves it existed."""
    namespace, key = tx.fields["namespace"], tx.fields["key"]
    check_erase_state(view, tx)
    get_private_record(view, namespace, key)
    put_value(view, get_erasure_key(namespace, key), {
        "height": ctx.height, "timestamp_ms": ctx.timestamp_ms, "authority": tx.sender,
        "reason": tx.fields["reason"]})
    return [Event("private_erased", {"namespace": namespace, "key": key,
                                     "authority": tx.sender})]


# ------------------------------------------------------------------ read-log anchors


def get_anchor_head(view: StateReader, holder: bytes) -> tuple[int, int]:
    """(next batch number, next entry sequence) of `holder`'s read log on the chain."""
    value = get_value(view, get_read_anchor_head_key(holder), "anchor head")
    return (0, 0) if value is None else (int(value[0]), int(value[1]))


def get_anchor(view: StateReader, holder: bytes, batch: int) -> dict[str, Any] | None:
    value = get_value(view, get_read_anchor_key(holder, batch), "anchor")
    return None if value is None else dict(value)


def validate_anchor_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"batch", "first_seq", "count", "root"}))
    f.expect_int(fields, "batch", 0, 2**63 - 1)
    f.expect_int(fields, "first_seq", 0, 2**63 - 1)
    f.expect_int(fields, "count", 1, MAX_ANCHOR_ENTRIES)
    f.expect_bytes(fields, "root", size=32)


def check_anchor_state(view: StateReader, tx: Transaction) -> None:
    if not is_validator_account(view, tx.sender):
        raise NotValidatorError(f"account {tx.sender.hex()} is not a validator's account: "
                                f"read logs are anchored by the holding ministries' nodes")


def apply_private_anchor(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    check_anchor_state(view, tx)
    batch, first_seq = tx.fields["batch"], tx.fields["first_seq"]
    if (batch, first_seq) != get_anchor_head(view, tx.sender):
        raise AnchorOutOfOrderError(
            f"the next anchor of {tx.sender.hex()} is batch {get_anchor_head(view, tx.sender)[0]}"
            f" from entry {get_anchor_head(view, tx.sender)[1]}")
    count = tx.fields["count"]
    put_value(view, get_read_anchor_key(tx.sender, batch), {
        "batch": batch, "first_seq": first_seq, "count": count, "root": tx.fields["root"],
        "height": ctx.height, "timestamp_ms": ctx.timestamp_ms})
    put_value(view, get_read_anchor_head_key(tx.sender), [batch + 1, first_seq + count])
    return [Event("read_log_anchored", {"holder": tx.sender, "batch": batch,
                                        "first_seq": first_seq, "count": count})]


# ------------------------------------------------------------------ module


class PrivateModule:
    """Private namespaces (genesis), records as commitments, grants, erasures, anchors."""

    name = "private"
    tx_types: Mapping[str, TxHandler] = {
        PRIVATE_PUT: TxHandler(validate_put_fields, apply_private_put),
        PRIVATE_GRANT: TxHandler(validate_grant_fields, apply_private_grant,
                                 check_grant_state),
        PRIVATE_REVOKE: TxHandler(validate_revoke_fields, apply_private_revoke,
                                  check_grant_state),
        PRIVATE_ERASE: TxHandler(validate_erase_fields, apply_private_erase, check_erase_state),
        PRIVATE_ANCHOR: TxHandler(validate_anchor_fields, apply_private_anchor,
                                  check_anchor_state),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        settings = genesis.app_state.get(self.name) or {}
        if not isinstance(settings, dict) or set(settings) - {"namespaces"}:
            raise InvalidGenesisStateError('app_state.private takes {"namespaces": [...]} only')
        ctx = BlockContext(genesis.chain_id, 0, genesis.genesis_time_ms, b"")  # type: ignore[arg-type]
        for entry in settings.get("namespaces", []):
            if not isinstance(entry, dict):
                raise InvalidGenesisStateError(f"private namespace entry {entry!r}: not a map")
            try:
                args = {**entry, "holders": [bytes.fromhex(str(k)) for k in
                                             entry.get("holders", [])]}
                validate_create_private_namespace_args(args)
                apply_create_private_namespace(view, ctx, args)
            except ValueError as e:
                raise InvalidGenesisStateError(f"private namespace entry {entry!r}: {e}") from e
            except LedgerError as e:
                raise InvalidGenesisStateError(
                    f"private namespace entry {entry!r}: {e.message}") from e

