"""The history segments: crash order, damage found at open, pruning and archive mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import history, schema
from storage.chain_store import ChainStore
from storage.history import HistoryDamagedError, segment_name
from tests.storage.storage_builders import (
    KEYS,
    commit,
    make_block,
    make_genesis,
    make_txs,
    make_validator_set,
)

GENESIS = make_genesis()


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> int:
    """Segments of 4 heights, so a test reaches several of them."""
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)
    return 4


def build(path: Path, blocks: int, *, retain_blocks: int = 0, txs_per_block: int = 3
          ) -> tuple[ChainStore, list[bytes]]:
    store = ChainStore.open(str(path), GENESIS, retain_blocks=retain_blocks)
    store.commit_genesis({b"k": b"0"}, make_validator_set())
    hashes = []
    for height in range(1, blocks + 1):
        txs = make_txs(txs_per_block, nonce_base=height * 100)
        commit(store, {b"k": str(height).encode()}, txs)
        hashes += [tx.hash for tx in txs]
    return store, hashes


def segment_path(path: Path, segment: int) -> Path:
    return path / "history" / segment_name(segment)


def test_blocks_and_txs_read_back_after_reopen(tmp_path: Path, small_segments: int) -> None:
    store, hashes = build(tmp_path, 10)
    blocks = [store.get_block(h) for h in range(1, 11)]
    store.close()
    store = ChainStore.open(str(tmp_path), GENESIS)
    assert [store.get_block(h) for h in range(1, 11)] == blocks
    assert store.get_block_bytes(7) == blocks[6].encoded
    assert store.get_certificate(9).block_hash == blocks[8].hash
    record = store.get_tx(hashes[17])
    assert record is not None and (record.height, record.index) == (6, 2)
    assert store.get_tx(bytes(32)) is None
    assert sorted(os.listdir(tmp_path / "history")) == [segment_name(n) for n in range(3)]
    store.close()


def test_a_block_appended_whose_batch_never_landed_is_cut_off(tmp_path: Path,
                                                            small_segments: int) -> None:
    store, _ = build(tmp_path, 6)
    size = segment_path(tmp_path, 1).stat().st_size
    store.close()
    with open(segment_path(tmp_path, 1), "ab") as f:
        f.write(b"\x00\x00\x01\x00half a block")  # a crash after the append, before the batch
    with open(segment_path(tmp_path, 2), "wb") as f:
        f.write(b"a new segment no head names")
    store = ChainStore.open(str(tmp_path), GENESIS)
    assert store.head_height == 6
    assert segment_path(tmp_path, 1).stat().st_size == size
    assert not segment_path(tmp_path, 2).exists()
    commit(store, {b"k": b"7"}, make_txs(2, nonce_base=7000))
    assert store.get_block(7) is not None
    store.close()


def test_invalid_segment_cut_short_is_refused_at_open_naming_it(tmp_path: Path,
                                                               small_segments: int) -> None:
    store, _ = build(tmp_path, 10)
    store.close()
    path = segment_path(tmp_path, 0)
    os.truncate(path, path.stat().st_size - 5)
    with pytest.raises(HistoryDamagedError) as raised:
        ChainStore.open(str(tmp_path), GENESIS)
    assert str(path) in raised.value.message and raised.value.code == "history_damaged"


def test_invalid_flipped_byte_in_a_segment_is_damaged_naming_it(tmp_path: Path,
                                                               small_segments: int) -> None:
    store, _ = build(tmp_path, 10)
    store.close()
    path = segment_path(tmp_path, 0)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    store = ChainStore.open(str(tmp_path), GENESIS)  # only the newest block is read at open
    with pytest.raises(HistoryDamagedError) as raised:
        for height in range(1, 5):
            store.get_block(height)
    assert str(path) in raised.value.message
    store.close()


def test_a_flipped_byte_in_the_head_block_is_refused_at_open(tmp_path: Path,
                                                           small_segments: int) -> None:
    store, _ = build(tmp_path, 6)
    store.close()
    path = segment_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(HistoryDamagedError, match=str(path)):
        ChainStore.open(str(tmp_path), GENESIS)


def test_pruning_keeps_the_window_and_frees_whole_segments(tmp_path: Path,
                                                          small_segments: int) -> None:
    store, hashes = build(tmp_path, 14, retain_blocks=5)
    store.prune(14 - 5 + 1)  # what the background pruner does, awaited here
    assert store.base_height == 9  # segments 0 and 1 (heights 1-8) are gone
    assert store.get_block(8) is None and store.get_block(9) is not None
    assert store.get_tx(hashes[0]) is None and store.get_tx(hashes[-1]) is not None
    assert not segment_path(tmp_path, 1).exists() and segment_path(tmp_path, 2).exists()
    left = [key for key, _ in store._kv.iterate(schema.TX_INDEX)]
    assert len(left) == 3 * 6  # heights 9-14
    store.close()
    store = ChainStore.open(str(tmp_path), GENESIS, retain_blocks=5)
    assert store.base_height == 9 and store.head_height == 14
    store.close()


def test_an_archive_node_keeps_everything(tmp_path: Path, small_segments: int) -> None:
    store, hashes = build(tmp_path, 14, retain_blocks=0)
    assert store.base_height == 1 and store.get_tx(hashes[0]) is not None
    store.close()


def test_the_audits_open_leaves_a_tail_as_it_is(tmp_path: Path, small_segments: int) -> None:
    store, _ = build(tmp_path, 6)
    store.close()
    with open(segment_path(tmp_path, 1), "ab") as f:
        f.write(b"an unacknowledged block")
    before = segment_path(tmp_path, 1).read_bytes()
    store = ChainStore.open(str(tmp_path), GENESIS, create=False, check_tree=False)
    assert store.get_block(6) is not None
    store.close()
    assert segment_path(tmp_path, 1).read_bytes() == before


def test_a_read_racing_the_pruner_is_not_damage(tmp_path: Path, small_segments: int) -> None:
    # A reader took block 2's location; the pruner then deleted its segment.
    store, _ = build(tmp_path, 14)
    location = store._get_location(2)
    assert location is not None
    failures: list[Exception] = []
    store.set_failure_listener(failures.append)
    store.prune(10)
    assert store._read_frame(2, location.offset, location.end) is None
    assert failures == []
    store.close()


def test_pruning_keeps_the_trust_chain_as_proven_headers(tmp_path: Path,
                                                         small_segments: int) -> None:
    # The validator set changes from height 6 on (block 5 names the next set).
    store = ChainStore.open(str(tmp_path), GENESIS)
    store.commit_genesis({b"k": b"0"}, make_validator_set())
    smaller = make_validator_set(KEYS[:3])
    for height in range(1, 15):
        changes = {b"k": str(height).encode()}
        following = smaller if height == 5 else None
        block, cert, prepared = make_block(store, changes, next_validator_set=following)
        store.commit_block(block, cert, changes, [], following, prepared)
    headers = {h: store.get_block_header(h) for h in range(1, 15)}
    certificates = {h: store.get_certificate(h) for h in range(1, 15)}
    assert store.prune(5) == 5  # segment 0 (heights 1-4)
    assert store.get_block_header(4) == headers[4]  # the base's parent
    assert store.prune(10) == 9  # segment 1 (heights 5-8)
    assert store.get_block(5) is None and store.get_block(8) is None
    # Kept: the header after which the set changes, and the new base's parent.
    for height in (5, 8):
        assert store.get_block_header(height) == headers[height]
        assert store.get_certificate(height) == certificates[height]
    for height in (1, 2, 3, 4, 6, 7):
        assert store.get_block_header(height) is None
    assert [key for key, _ in store._kv.iterate(schema.PROVEN_HEADER)] == [
        schema.proven_header_key(5), schema.proven_header_key(8)]
    assert store.get_validator_set(9) == smaller
    store.close()
