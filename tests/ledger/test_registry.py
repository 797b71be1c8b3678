"""Registries: put, update, status, every version kept, writers only, size limits."""

from __future__ import annotations

from ledger.registry import get_namespace_info, get_record, get_record_history
from tests.ledger.app_fixtures import OTHER, REPORT, WRITER, App

LICENSE = {"namespace": "licenses", "key": "vasp/0001", "value": b"Crypto Exchange LLC",
           "doc_hash": REPORT, "metadata": {"holder": "Crypto Exchange LLC", "class": "A"}}


def test_put_update_status_keep_every_version(app: App) -> None:
    result = app.ok(WRITER, "record_put", LICENSE)
    assert result.events[0].kind == "record_put"
    app.ok(WRITER, "record_update", {**LICENSE, "value": b"Crypto Exchange JSC"})
    app.ok(WRITER, "record_status", {"namespace": "licenses", "key": "vasp/0001",
                                     "status": "suspended", "reason": "audit pending"})
    current = get_record(app.state, "licenses", "vasp/0001")
    assert current is not None
    assert (current["version"], current["status"], current["value"]) == (
        3, "suspended", b"Crypto Exchange JSC")
    history = get_record_history(app.state, "licenses", "vasp/0001")
    assert [(v["version"], v["status"], v["height"]) for v in history] == [
        (1, "active", 1), (2, "active", 2), (3, "suspended", 3)]
    assert all(v["signer"] == WRITER.address for v in history)
    assert get_namespace_info(app.state, "licenses")["records"] == 1


def test_revocation_is_final(app: App) -> None:
    app.ok(WRITER, "record_put", LICENSE)
    app.ok(WRITER, "record_status", {"namespace": "licenses", "key": "vasp/0001",
                                     "status": "revoked"})
    app.assert_fails(WRITER, "record_status", {"namespace": "licenses", "key": "vasp/0001",
                                               "status": "active"}, "record_revoked")
    app.assert_fails(WRITER, "record_update", LICENSE, "record_revoked")


def test_invalid_record_rejections(app: App) -> None:
    app.assert_fails(OTHER, "record_put", LICENSE, "missing_role")
    app.assert_fails(WRITER, "record_put", {**LICENSE, "namespace": "titles"},
                     "unknown_namespace")
    app.assert_fails(WRITER, "record_put", {**LICENSE, "value": b"x" * 65}, "value_too_large")
    app.assert_fails(WRITER, "record_update", LICENSE, "unknown_record")
    app.assert_fails(WRITER, "record_status", {"namespace": "licenses", "key": "nope",
                                               "status": "active"}, "unknown_record")
    app.ok(WRITER, "record_put", LICENSE)
    app.assert_fails(WRITER, "record_put", LICENSE, "record_exists")
    app.assert_fails(WRITER, "record_status", {"namespace": "licenses", "key": "vasp/0001",
                                               "status": "active"}, "status_unchanged")
    app.assert_fails(WRITER, "record_put", {"namespace": "licenses", "key": "k"},
                     "malformed_fields")
    app.assert_fails(WRITER, "record_put", {"namespace": "licenses", "key": "bad\x00key",
                                            "value": b""}, "malformed_fields")
    app.assert_fails(WRITER, "record_status", {"namespace": "licenses", "key": "vasp/0001",
                                               "status": "lost"}, "malformed_fields")


def test_document_anchor_without_value(app: App) -> None:
    app.ok(WRITER, "record_put", {"namespace": "licenses", "key": "doc-1",
                                  "doc_hash": REPORT, "metadata": {"title": "Decree 7"}})
    record = get_record(app.state, "licenses", "doc-1")
    assert record is not None and record["doc_hash"] == REPORT and record["value"] == b""
