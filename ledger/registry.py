"""Registries: namespaces of government records (licences, titles, notarised documents).

Governance creates a namespace and grants its writers. A writer puts a record (a
value up to the namespace's size limit, and/or a document hash with metadata),
updates it, and changes its status (active, suspended, revoked; revoked is final).
Every version is kept with its height and signer; the current version sits at one
state key (keys.get_record_key) so a client can prove it against a state root.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chain.crypto import HASH_SIZE
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.errors import (
    CorruptStateError,
    InvalidGenesisStateError,
    MalformedFieldsError,
    NamespaceExistsError,
    PrivateNamespaceError,
    RecordExistsError,
    RecordRevokedError,
    StatusUnchangedError,
    UnknownNamespaceError,
    UnknownRecordError,
    ValueTooLargeError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import get_namespace_key, get_record_key, get_record_version_key
from ledger.roles import WRITER, get_role_holders, validate_role
from ledger.state import Overlay, StateReader, get_value, put_value

RECORD_PUT = "record_put"
RECORD_UPDATE = "record_update"
RECORD_STATUS = "record_status"

ACTIVE, SUSPENDED, REVOKED = "active", "suspended", "revoked"
STATUSES = (ACTIVE, SUSPENDED, REVOKED)

RECORD_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
"""A record key: 1 to 128 ASCII characters (letters, digits and . _ : / @ + -)."""
MAX_VALUE_BYTES_LIMIT = 8192
"""The largest size limit a namespace may set (a transaction is at most 16 KiB)."""
DEFAULT_MAX_VALUE_BYTES = 4096
MAX_METADATA_ENTRIES = 16
MAX_METADATA_TEXT = 256
MAX_DESCRIPTION = 256
MAX_REASON = 256


# ------------------------------------------------------------------ namespaces


def get_namespace(view: StateReader, name: str) -> dict[str, Any] | None:
    value = get_value(view, get_namespace_key(name), "namespace")
    return None if value is None else dict(value)


def get_existing_namespace(view: StateReader, name: str) -> dict[str, Any]:
    namespace = get_namespace(view, name)
    if namespace is None:
        raise UnknownNamespaceError(f"no namespace {name!r}; governance creates namespaces")
    return namespace


def validate_create_namespace_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"name", "description", "max_value_bytes"}))
    f.expect_name(args, "name")
    f.expect_text(args, "description", MAX_DESCRIPTION)
    f.expect_int(args, "max_value_bytes", 1, MAX_VALUE_BYTES_LIMIT)


def apply_create_namespace(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                           ) -> list[Event]:
    name: str = args["name"]
    if get_namespace(view, name) is not None:
        raise NamespaceExistsError(f"namespace {name!r} exists already")
    put_value(view, get_namespace_key(name), {
        "description": args["description"], "max_value_bytes": args["max_value_bytes"],
        "records": 0, "created_height": ctx.height})
    return [Event("namespace_created", {"namespace": name})]


# ------------------------------------------------------------------ records


def get_record(view: StateReader, namespace: str, key: str) -> dict[str, Any] | None:
    """The current version of a record, or None."""
    value = get_value(view, get_record_key(namespace, key), "record")
    return None if value is None else dict(value)


def get_record_history(view: StateReader, namespace: str, key: str, start: int = 1,
                       limit: int = 100) -> list[dict[str, Any]]:
    """Versions `start`... (at most `limit`), oldest first."""
    current = get_record(view, namespace, key)
    if current is None:
        return []
    end = min(current["version"], start + limit - 1)
    versions = []
    for version in range(max(1, start), end + 1):
        value = get_value(view, get_record_version_key(namespace, key, version), "record")
        if value is None:
            raise CorruptStateError(f"version {version} of {namespace}/{key} is missing")
        versions.append(dict(value))
    return versions


def _validate_content_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names_optional(fields, frozenset({"namespace", "key"}),
                                    frozenset({"value", "doc_hash", "metadata"}))
    f.expect_name(fields, "namespace")
    f.expect_text(fields, "key", 128, pattern=RECORD_KEY_PATTERN)
    if "value" not in fields and "doc_hash" not in fields:
        raise MalformedFieldsError("value", "a record needs a value, a doc_hash or both")
    if "value" in fields:
        f.expect_bytes(fields, "value", max_size=MAX_VALUE_BYTES_LIMIT)
    if "doc_hash" in fields:
        f.expect_bytes(fields, "doc_hash", size=HASH_SIZE)
    if "metadata" in fields:
        metadata = f.expect_map(fields, "metadata")
        if len(metadata) > MAX_METADATA_ENTRIES or not all(
                len(k) <= 64 and isinstance(v, str) and len(v) <= MAX_METADATA_TEXT
                for k, v in metadata.items()):
            raise MalformedFieldsError(
                "metadata", f"at most {MAX_METADATA_ENTRIES} entries of text (keys up to 64, "
                f"values up to {MAX_METADATA_TEXT} characters)")


def _write_version(view: Overlay, namespace: str, key: str, record: dict[str, Any]) -> None:
    put_value(view, get_record_key(namespace, key), record)
    put_value(view, get_record_version_key(namespace, key, record["version"]), record)


def _apply_content(view: Overlay, ctx: BlockContext, tx: Transaction, *, create: bool
                   ) -> dict[str, Any]:
    namespace, key = tx.fields["namespace"], tx.fields["key"]
    ns = get_existing_namespace(view, namespace)
    if "holders" in ns:  # ledger/private.py: a private payload never goes on the chain
        raise PrivateNamespaceError(f"namespace {namespace!r} is private: its records hold "
                                    f"only a commitment (use private_put)")
    validate_role(view, WRITER, namespace, tx.sender)
    value: bytes = tx.fields.get("value", b"")
    if len(value) > ns["max_value_bytes"]:
        raise ValueTooLargeError(f"value of {len(value)} bytes exceeds the limit of "
                                 f"{ns['max_value_bytes']} in namespace {namespace!r}")
    current = get_record(view, namespace, key)
    if create and current is not None:
        raise RecordExistsError(f"{namespace}/{key} exists; use record_update")
    if not create:
        if current is None:
            raise UnknownRecordError(f"no record {namespace}/{key}; use record_put")
        if current["status"] == REVOKED:
            raise RecordRevokedError(f"{namespace}/{key} is revoked; revocation is final")
    record = {
        "namespace": namespace, "key": key,
        "version": 1 if current is None else current["version"] + 1,
        "value": value, "doc_hash": tx.fields.get("doc_hash", b""),
        "metadata": dict(tx.fields.get("metadata", {})),
        "status": ACTIVE if current is None else current["status"], "reason": "",
        "height": ctx.height, "timestamp_ms": ctx.timestamp_ms, "signer": tx.sender,
    }
    _write_version(view, namespace, key, record)
    if create:
        put_value(view, get_namespace_key(namespace), {**ns, "records": ns["records"] + 1})
    return record


def apply_record_put(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    record = _apply_content(view, ctx, tx, create=True)
    return [Event("record_put", {"namespace": record["namespace"], "key": record["key"],
                                 "version": 1, "signer": tx.sender})]


def apply_record_update(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    record = _apply_content(view, ctx, tx, create=False)
    return [Event("record_updated", {"namespace": record["namespace"], "key": record["key"],
                                     "version": record["version"], "signer": tx.sender})]


def validate_status_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names_optional(fields, frozenset({"namespace", "key", "status"}),
                                    frozenset({"reason"}))
    f.expect_name(fields, "namespace")
    f.expect_text(fields, "key", 128, pattern=RECORD_KEY_PATTERN)
    status = f.expect_text(fields, "status", 16)
    if status not in STATUSES:
        raise MalformedFieldsError("status", f"expected one of {list(STATUSES)}")
    if "reason" in fields:
        f.expect_text(fields, "reason", MAX_REASON)


def apply_record_status(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """A writer suspends, reinstates or revokes a record: a new version, same content."""
    namespace, key, status = tx.fields["namespace"], tx.fields["key"], tx.fields["status"]
    get_existing_namespace(view, namespace)
    validate_role(view, WRITER, namespace, tx.sender)
    current = get_record(view, namespace, key)
    if current is None:
        raise UnknownRecordError(f"no record {namespace}/{key}")
    if current["status"] == REVOKED:
        raise RecordRevokedError(f"{namespace}/{key} is revoked; revocation is final")
    if current["status"] == status:
        raise StatusUnchangedError(f"{namespace}/{key} is {status} already")
    record = {**current, "version": current["version"] + 1, "status": status,
              "reason": tx.fields.get("reason", ""), "height": ctx.height,
              "timestamp_ms": ctx.timestamp_ms, "signer": tx.sender}
    _write_version(view, namespace, key, record)
    return [Event("record_status", {"namespace": namespace, "key": key,
                                    "version": record["version"], "status": status,
                                    "signer": tx.sender})]


def get_namespace_info(view: StateReader, name: str) -> dict[str, Any]:
    namespace = get_existing_namespace(view, name)
    return {"name": name, **namespace, "writers": list(get_role_holders(view, WRITER, name))}


class RegistryModule:
    """Namespaces and their versioned records."""

    name = "registry"
    tx_types: Mapping[str, TxHandler] = {
        RECORD_PUT: TxHandler(_validate_content_fields, apply_record_put),
        RECORD_UPDATE: TxHandler(_validate_content_fields, apply_record_update),
        RECORD_STATUS: TxHandler(validate_status_fields, apply_record_status),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        settings = genesis.app_state.get(self.name) or {}
        if not isinstance(settings, dict) or set(settings) - {"namespaces"}:
            raise InvalidGenesisStateError(
                'app_state.registry takes {"namespaces": [...]} only')
        ctx = BlockContext(genesis.chain_id, 0, genesis.genesis_time_ms, b"")  # type: ignore[arg-type]
        for entry in settings.get("namespaces", []):
            args = {"description": "", "max_value_bytes": DEFAULT_MAX_VALUE_BYTES,
                    **(entry if isinstance(entry, dict) else {})}
            try:
                validate_create_namespace_args(args)
                apply_create_namespace(view, ctx, args)
            except (MalformedFieldsError, NamespaceExistsError) as e:
                raise InvalidGenesisStateError(f"namespace entry {entry!r}: {e.message}") from e
