"""The key-value backends: batches, read-your-writes, prefix scans, open errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import CorruptionError, DataDirLockedError
from storage.kv import KVStore, MemoryStore, PlyvelStore, WriteBatch, compute_prefix_end


@pytest.fixture(params=["plyvel", "memory"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVStore]:
    store: KVStore = PlyvelStore(str(tmp_path / "db")) if request.param == "plyvel" \
        else MemoryStore()
    yield store
    store.close()


def put_all(kv: KVStore, items: dict[bytes, bytes]) -> None:
    batch = WriteBatch(kv)
    for key, value in items.items():
        batch.put(key, value)
    kv.write(batch)


def test_batch_applies_puts_and_deletes(kv: KVStore) -> None:
    put_all(kv, {b"a": b"1", b"b": b"2"})
    batch = WriteBatch(kv)
    batch.delete(b"a")
    batch.put(b"c", b"3")
    assert kv.get(b"a") == b"1"  # nothing visible before write
    kv.write(batch)
    assert kv.get(b"a") is None
    assert kv.get(b"b") == b"2"
    assert kv.get(b"c") == b"3"


def test_batch_reads_its_own_writes(kv: KVStore) -> None:
    put_all(kv, {b"a": b"1", b"b": b"2"})
    batch = WriteBatch(kv)
    batch.put(b"a", b"new")
    batch.delete(b"b")
    assert batch.get(b"a") == b"new"
    assert batch.get(b"b") is None
    assert batch.get(b"zz") is None
    batch.put(b"b", b"again")
    assert batch.get(b"b") == b"again"
    assert len(batch) == 2


def test_iterate_prefix_in_order(kv: KVStore) -> None:
    put_all(kv, {b"p\x02": b"2", b"p\x01": b"1", b"q": b"x", b"o\xff": b"y", b"p": b"0"})
    assert list(kv.iterate(b"p")) == [(b"p", b"0"), (b"p\x01", b"1"), (b"p\x02", b"2")]
    assert [k for k, _ in kv.iterate(b"p", reverse=True)] == [b"p\x02", b"p\x01", b"p"]
    assert [k for k, _ in kv.iterate(b"")] == [b"o\xff", b"p", b"p\x01", b"p\x02", b"q"]


def test_iterate_from_start(kv: KVStore) -> None:
    put_all(kv, {bytes([7, i]): b"v" for i in (1, 3, 5)} | {b"\x08": b"x", b"\x06": b"y"})
    assert [k[1] for k, _ in kv.iterate(b"\x07", start=b"\x07\x02")] == [3, 5]
    assert [k[1] for k, _ in kv.iterate(b"\x07", start=b"\x07\x03", reverse=True)] == [3, 1]
    assert [k[1] for k, _ in kv.iterate(b"\x07", start=b"\x07\x04", reverse=True)] == [3, 1]
    assert list(kv.iterate(b"\x07", start=b"\x07\x00", reverse=True)) == []
    assert [k[1] for k, _ in kv.iterate(b"\x07", start=b"\x09", reverse=True)] == [5, 3, 1]


def test_iterate_prefix_of_ff_bytes(kv: KVStore) -> None:
    put_all(kv, {b"\xff": b"1", b"\xff\xff": b"2", b"\xfe": b"0"})
    assert [k for k, _ in kv.iterate(b"\xff")] == [b"\xff", b"\xff\xff"]
    assert compute_prefix_end(b"\xff\xff") is None
    assert compute_prefix_end(b"a\xff") == b"b"


@settings(max_examples=30, deadline=None)
@given(keys=st.sets(st.binary(min_size=0, max_size=3), max_size=30),
       prefix=st.binary(max_size=2), start=st.none() | st.binary(max_size=3),
       reverse=st.booleans())
def test_backends_agree(tmp_path_factory: pytest.TempPathFactory, keys: set[bytes],
                        prefix: bytes, start: bytes | None, reverse: bool) -> None:
    items = {k: k[::-1] for k in keys}
    path = tmp_path_factory.mktemp("agree")
    plyvel_store = PlyvelStore(str(path / "db"))
    memory = MemoryStore()
    try:
        put_all(plyvel_store, items)
        put_all(memory, items)
        got = list(plyvel_store.iterate(prefix, start=start, reverse=reverse))
        assert got == list(memory.iterate(prefix, start=start, reverse=reverse))
        # The contract, spelled out independently of both backends.
        expected = sorted((k for k in keys if k.startswith(prefix)), reverse=reverse)
        if start is not None:
            expected = [k for k in expected if (k <= start if reverse else k >= start)]
        assert [k for k, _ in got] == expected
    finally:
        plyvel_store.close()


def test_locked_dir_is_refused(tmp_path: Path) -> None:
    first = PlyvelStore(str(tmp_path / "db"))
    try:
        with pytest.raises(DataDirLockedError) as info:
            PlyvelStore(str(tmp_path / "db"))
        assert info.value.code == "data_dir_locked"
        assert str(tmp_path / "db") in info.value.message
    finally:
        first.close()


def test_corrupt_dir_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = PlyvelStore(str(path))
    put_all(store, {b"k%d" % i: os.urandom(100) for i in range(100)})
    store.close()
    manifest = next(p for p in path.iterdir() if p.name.startswith("MANIFEST"))
    manifest.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(CorruptionError) as info:
        PlyvelStore(str(path))
    assert info.value.code == "corruption"
