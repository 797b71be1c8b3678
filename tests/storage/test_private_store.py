"""A holder's private store on a real LevelDB: sealed payloads, erasure, the read log."""

from __future__ import annotations

from pathlib import Path

from storage.private_store import PrivateStore

MARKER = b"MARKER-store-51c2"
SALT = bytes(range(32))


def files_holding(path: Path, needle: bytes) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_payload_is_sealed_at_rest_and_erasure_removes_its_key(tmp_path: Path) -> None:
    store = PrivateStore(str(tmp_path))
    try:
        assert store.get_payload("drivers", "lic-1") is None
        store.put_payload("drivers", "lic-1", SALT, b"licence " + MARKER)
        store.put_payload("drivers", "lic-2", SALT, b"other " + MARKER)
        assert store.get_payload("drivers", "lic-1") == (SALT, b"licence " + MARKER)
        assert store.has_payload("drivers", "lic-1")
        assert files_holding(tmp_path, MARKER) == []  # sealed, never in clear
        box_key = store.get_key_path("drivers", "lic-1").read_bytes()
        assert store.erase_payload("drivers", "lic-1")
        assert not store.erase_payload("drivers", "lic-1")
        assert store.get_payload("drivers", "lic-1") is None
        assert not store.has_payload("drivers", "lic-1")
        assert store.get_payload("drivers", "lic-2") == (SALT, b"other " + MARKER)
        assert files_holding(tmp_path, box_key) == []
    finally:
        store.close()


def test_read_log_survives_a_restart_in_order(tmp_path: Path) -> None:
    store = PrivateStore(str(tmp_path))
    for i in range(3):
        key = "lic-1" if i != 1 else "lic-2"
        assert store.append_read("drivers", key, {"reader": bytes(20), "outcome": "ok",
                                                  "n": i}) == i
    store.close()
    store = PrivateStore(str(tmp_path))
    try:
        assert store.next_seq == 3
        assert list(store.iterate_record_reads("drivers", "lic-1")) == [0, 2]
        assert list(store.iterate_record_reads("drivers", "lic-1", start_seq=1)) == [2]
        assert store.get_read(1) == {"reader": bytes(20), "outcome": "ok", "n": 1, "seq": 1}
        assert store.append_read("drivers", "lic-1", {"n": 3}) == 3
    finally:
        store.close()
