"""A failed database read or write stops the node service cleanly (no traceback,
the failure kept for the one error line, every task and the database closed)."""

from __future__ import annotations

import asyncio

import plyvel
import pytest

from chain.crypto import KeyPair
from cli.service import NodeService
from storage.errors import CorruptionError, DiskFullError
from storage.kv import PlyvelStore, WriteBatch
from tests.node.conftest import make_genesis, make_home, wait_for


@pytest.fixture
async def service(tmp_path):
    validator = KeyPair.from_seed(b"\x01" * 32)
    service = NodeService(make_home(tmp_path / "node0", make_genesis([validator]), validator))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def fail_writes(kv: PlyvelStore, error: plyvel.Error) -> None:
    def write(batch: WriteBatch, *, sync: bool = True) -> None:
        raise kv._failed("writing to", error)

    kv.write = write  # type: ignore[method-assign]


async def test_full_disk_in_the_driver_stops_the_service(service, caplog) -> None:
    kv = service.node.store._kv
    await wait_for(lambda: _height_at_least(service, 1), 10, "a first block")
    fail_writes(kv, plyvel.IOError(b"IO error: data/000003.log: No space left on device"))
    await asyncio.wait_for(service.failed.wait(), 10)
    assert isinstance(service.storage_failure, DiskFullError)
    assert "is full" in service.storage_failure.message
    await service.stop()  # does not re-raise the driver's error, closes the database
    assert kv._db.closed
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged


async def test_corrupt_read_from_an_rpc_thread_stops_the_service(service) -> None:
    kv = service.node.store._kv

    def get(key: bytes, verify_checksums: bool = True) -> bytes | None:
        raise plyvel.CorruptionError(b"Corruption: block checksum mismatch: data/000005.ldb")

    real_db = kv._db

    class Broken:
        closed = False

        def __getattr__(self, name: str):
            return get if name == "get" else getattr(real_db, name)

    kv._db = Broken()
    with pytest.raises(CorruptionError):
        await asyncio.to_thread(service.node.store.get_state, b"x")
    await asyncio.wait_for(service.failed.wait(), 10)
    assert isinstance(service.storage_failure, CorruptionError)
    assert "000005.ldb" in service.storage_failure.message
    kv._db = real_db


async def _height_at_least(service: NodeService, height: int) -> bool:
    return service.node.store.head_height >= height
