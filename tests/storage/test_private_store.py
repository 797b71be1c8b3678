"""A holder's private store on a real LevelDB: sealed payloads, erasure, the read log."""

from __future__ import annotations

from pathlib import Path

from storage.private_store import KEY_SLOT_BYTES, PrivateStore

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
        box_key = store.get_box_key("drivers", "lic-1")
        assert box_key is not None and len(box_key) == 32
        assert store.erase_payload("drivers", "lic-1")
        assert not store.erase_payload("drivers", "lic-1")
        assert store.get_payload("drivers", "lic-1") is None
        assert not store.has_payload("drivers", "lic-1")
        assert store.get_payload("drivers", "lic-2") == (SALT, b"other " + MARKER)
        assert files_holding(tmp_path, box_key) == []
    finally:
        store.close()


def test_a_batch_shares_one_key_file_and_erasure_rewrites_it_without_the_key(
        tmp_path: Path) -> None:
    store = PrivateStore(str(tmp_path))
    try:
        records = [("drivers", f"lic-{i}", SALT, f"licence {i} ".encode() + MARKER)
                   for i in range(3)]
        assert store.put_payloads(records) == 3
        assert store.put_payloads(records[:1]) == 0  # held already: left as it is
        key_files = list((tmp_path / "keys").iterdir())
        assert len(key_files) == 1 and key_files[0].stat().st_size == 3 * KEY_SLOT_BYTES
        box_keys = [store.get_box_key("drivers", f"lic-{i}") for i in range(3)]
        assert len({k for k in box_keys if k is not None}) == 3
        assert files_holding(tmp_path, MARKER) == []
        assert store.erase_payload("drivers", "lic-1")
        assert store.get_payload("drivers", "lic-1") is None
        assert files_holding(tmp_path, box_keys[1]) == []  # gone from every file
        assert [store.get_payload("drivers", f"lic-{i}") for i in (0, 2)] == [
            (SALT, b"licence 0 " + MARKER), (SALT, b"licence 2 " + MARKER)]
        assert store.erase_payload("drivers", "lic-0") and store.erase_payload("drivers", "lic-2")
        assert list((tmp_path / "keys").iterdir()) == []  # no key left: the file unlinked
        assert all(files_holding(tmp_path, k) == [] for k in box_keys if k is not None)
    finally:
        store.close()


def test_a_record_whose_key_file_a_crash_lost_is_not_held_and_is_written_again(
        tmp_path: Path) -> None:
    store = PrivateStore(str(tmp_path))
    store.put_payload("drivers", "lic-1", SALT, b"licence")
    for key_file in (tmp_path / "keys").iterdir():
        # as if the crash came after the LevelDB write, before the key file's rename
        key_file.rename(key_file.with_name(key_file.name + ".partial"))
    store.close()
    store = PrivateStore(str(tmp_path))
    try:
        assert list((tmp_path / "keys").iterdir()) == []  # the interrupted file removed
        assert not store.has_payload("drivers", "lic-1")
        assert store.get_payload("drivers", "lic-1") is None
        assert store.put_payloads([("drivers", "lic-1", SALT, b"licence")]) == 1
        assert store.get_payload("drivers", "lic-1") == (SALT, b"licence")
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
