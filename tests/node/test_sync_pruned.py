"""A node that pruned old blocks answers GET_BLOCKS below its base with "pruned"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from node.sync import PRUNED, BlockSync
from p2p.frames import MessageType
from storage import history
from storage.chain_store import ChainStore
from tests.storage.storage_builders import commit, make_genesis, make_txs, make_validator_set


def test_get_blocks_below_the_base_is_refused_as_pruned(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)
    store = ChainStore.open(str(tmp_path), make_genesis(), retain_blocks=3)
    store.commit_genesis({b"k": b"0"}, make_validator_set())
    for height in range(1, 11):
        commit(store, {b"k": str(height).encode()}, make_txs(1, nonce_base=height))
    store.prune(10 - 3 + 1)
    assert store.base_height == 5
    sync = BlockSync(SimpleNamespace(store=store), None)  # type: ignore[arg-type]
    try:
        kind, payload = asyncio.run(sync.on_request("peer", MessageType.GET_BLOCKS, [2, 64]))
        assert kind == MessageType.ERROR and payload == [PRUNED, "pruned below height 5"]
        kind, payload = asyncio.run(sync.on_request("peer", MessageType.GET_BLOCKS, [5, 64]))
        assert kind == MessageType.BLOCKS and len(payload) == 6
    finally:
        store.close()
