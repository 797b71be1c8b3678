"""State snapshots on real LevelDB: export at a committed height, restore into an empty
data directory, and a restore killed in the middle (detected at open, started over)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from storage_builders import KEYS, commit, make_block, make_genesis, make_validator_set

from chain.crypto import Hash32
from chain.snapshot import LightBlock, SnapshotChunk, SnapshotManifest, verify_chunk
from chain.state_proof import compute_state_root
from chain.vote import ValidatorSet
from storage import history
from storage.chain_store import ChainStore
from storage.errors import CorruptionError
from storage.snapshot import (
    DataDirStatus,
    RestoredChain,
    RestoreError,
    SnapshotExportError,
    StateRestore,
    discard_restore,
    export_state_snapshot,
    get_data_dir_status,
    list_state_snapshots,
    prune_state_snapshots,
)

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("restore_writer.py")
GENESIS = make_genesis()
GENESIS_STATE = {b"acct/%05d" % i: b"funds %d" % i for i in range(5000)}
TARGET_BYTES = 32 * 1024


def build_store(path: Path, blocks: int = 3) -> ChainStore:
    store = ChainStore.open(str(path), GENESIS)
    store.commit_genesis(GENESIS_STATE, make_validator_set())
    for h in range(1, blocks + 1):
        commit(store, {b"acct/%05d" % (h * 7): b"changed at %d" % h, b"acct/%05d" % h: None})
    return store


def export(store: ChainStore, root: Path, target_bytes: int = TARGET_BYTES):
    head, view = store.open_state_view()
    try:
        return export_state_snapshot(view, head.height, head.state_root, root, GENESIS.hash,
                                     target_bytes=target_bytes)
    finally:
        view.close()


def light_block(store: ChainStore, height: int) -> LightBlock:
    header = store.get_block_header(height)
    certificate = store.get_certificate(height)
    assert header is not None and certificate is not None
    return LightBlock(header, certificate, store.get_validator_set(height), None)


def read_snapshot(path: Path) -> tuple[SnapshotManifest, list[SnapshotChunk]]:
    manifest = SnapshotManifest.decode((path / "manifest.bin").read_bytes())
    chunks = [SnapshotChunk.decode((path / f"chunk-{i:05d}.bin").read_bytes())
              for i in range(manifest.chunk_count)]
    return manifest, chunks


def restore(path: Path, manifest: SnapshotManifest, chunks: list[SnapshotChunk],
            chain: RestoredChain) -> None:
    writer = StateRestore.begin(path, manifest)
    try:
        for index, chunk in enumerate(chunks):
            writer.write_chunk(index, verify_chunk(manifest, index, chunk))
        writer.finish(chain)
    finally:
        writer.close()


def restored_chain(source: ChainStore) -> RestoredChain:
    return RestoredChain(GENESIS.hash, Hash32(compute_state_root(GENESIS_STATE.items())),
                         (light_block(source, source.head_height),),
                         ((0, make_validator_set()),))


def test_export_cuts_the_head_state_into_verifiable_chunks(tmp_path):
    store = build_store(tmp_path / "db")
    try:
        files = export(store, tmp_path / "snapshots")
        manifest, chunks = read_snapshot(files.path)
        assert manifest.hash == files.manifest_hash and files.height == store.head_height
        assert manifest.state_root == store.head_state_root
        assert manifest.compute_root() == store.head_state_root
        assert len(chunks) == files.chunk_count > 3
        assert all(len(c.encode()) <= TARGET_BYTES + 1024 for c in chunks)
        entries = [e for i, c in enumerate(chunks) for e in verify_chunk(manifest, i, c)
                   .chunk.entries]
        assert dict(entries) == dict(store.iterate_state(b""))
    finally:
        store.close()


def test_export_is_the_state_at_the_view_even_after_more_commits(tmp_path):
    store = build_store(tmp_path / "db")
    try:
        head, view = store.open_state_view()
        commit(store, {b"acct/00042": b"after the view"})
        files = export_state_snapshot(view, head.height, head.state_root,
                                      tmp_path / "snapshots", GENESIS.hash,
                                      target_bytes=TARGET_BYTES)
        view.close()
        manifest, chunks = read_snapshot(files.path)
        assert manifest.height == head.height and manifest.state_root == head.state_root
        assert (b"acct/00042", b"after the view") not in [e for c in chunks for e in c.entries]
    finally:
        store.close()


def test_snapshots_are_listed_newest_first_and_pruned_to_two(tmp_path):
    store = build_store(tmp_path / "db", blocks=1)
    root = tmp_path / "snapshots"
    try:
        heights = []
        for _ in range(3):
            heights.append(export(store, root).height)
            commit(store, {b"acct/00001": b"%d" % store.head_height})
        (root / "99.part").mkdir()
        prune_state_snapshots(root, GENESIS.hash)
        assert [s.height for s in list_state_snapshots(root, GENESIS.hash)] == heights[:0:-1]
        assert not (root / "99.part").exists()
        assert list_state_snapshots(root, b"\x00" * 32) == []  # another chain's
    finally:
        store.close()


def test_restore_gives_a_store_at_the_snapshot_height(tmp_path):
    source = build_store(tmp_path / "db")
    try:
        files = export(source, tmp_path / "snapshots")
        manifest, chunks = read_snapshot(files.path)
        restore(tmp_path / "restored", manifest, chunks, restored_chain(source))
        restored = ChainStore.open(str(tmp_path / "restored"), GENESIS)
        try:
            assert restored.head == source.head
            # Its first block will be the one after the snapshot's: the base height a
            # pruned store has too, with the snapshot's header kept as a proven one.
            assert restored.base_height == source.head_height + 1
            assert restored.get_block(source.head_height) is None
            assert restored.get_block_header(source.head_height) == source.get_block_header(
                source.head_height)
            assert restored.get_certificate(source.head_height) == source.get_certificate(
                source.head_height)
            assert dict(restored.iterate_state(b"")) == dict(source.iterate_state(b""))
            assert restored.get_validator_set(restored.head_height + 1) == make_validator_set()
            # It follows blocks from the base on like any store.
            block, cert, _ = make_block(source, {b"acct/00003": b"next"})
            restored.commit_block(block, cert, {b"acct/00003": b"next"}, [], None)
            assert restored.head_height == source.head_height + 1
            assert restored.get_block(restored.head_height) == block
        finally:
            restored.close()
        restored = ChainStore.open(str(tmp_path / "restored"), GENESIS)  # finds its segment
        try:
            assert restored.get_block(source.head_height + 1) == block
            assert restored.base_height == source.head_height + 1
        finally:
            restored.close()
    finally:
        source.close()


def test_a_state_synced_store_with_retain_blocks_prunes_like_any_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "SEGMENT_HEIGHTS", 4)  # heights 1-4, 5-8, 9-12, ...
    source = build_store(tmp_path / "db")  # head 3
    try:
        files = export(source, tmp_path / "snapshots")
        manifest, chunks = read_snapshot(files.path)
        restore(tmp_path / "restored", manifest, chunks, restored_chain(source))
        restored = ChainStore.open(str(tmp_path / "restored"), GENESIS, retain_blocks=3)
        try:
            for h in range(4, 15):  # blocks 4-14 on both
                changes = {b"acct/%05d" % (h * 11): b"at %d" % h}
                commit(source, changes)
                block = source.get_block(h)
                assert block is not None
                restored.commit_block(block, source.get_certificate(h), changes, [], None)
            assert restored.prune(14 - 3 + 1) == 9  # heights 4-8 (two segments) go
            assert restored.base_height == 9 and restored.get_block(8) is None
            assert [restored.get_block(h) for h in range(9, 15)] == \
                [source.get_block(h) for h in range(9, 15)]
            assert not (tmp_path / "restored" / "history" / "000001.seg").exists()
            # The snapshot's proven header gave way to the new base's parent.
            assert restored.get_block_header(3) is None
            assert restored.get_block_header(8) == source.get_block_header(8)
            assert restored.get_certificate(8) == source.get_certificate(8)
        finally:
            restored.close()
        restored = ChainStore.open(str(tmp_path / "restored"), GENESIS, retain_blocks=3)
        try:
            assert restored.base_height == 9 and restored.head_height == 14
        finally:
            restored.close()
    finally:
        source.close()


def test_restore_refuses_a_directory_that_holds_a_chain(tmp_path):
    source = build_store(tmp_path / "db")
    source.close()
    assert get_data_dir_status(tmp_path / "db") is DataDirStatus.IN_USE
    manifest = SnapshotManifest(1, Hash32(b"\0" * 32), b"", (0,))
    with pytest.raises(RestoreError, match="holds a chain"):
        StateRestore.begin(tmp_path / "db", manifest)
    with pytest.raises(RestoreError):
        discard_restore(tmp_path / "db")


def test_invalid_restore_finish_without_every_chunk_or_with_another_root(tmp_path):
    source = build_store(tmp_path / "db")
    try:
        manifest, chunks = read_snapshot(export(source, tmp_path / "snapshots").path)
        writer = StateRestore.begin(tmp_path / "restored", manifest)
        for index, chunk in enumerate(chunks[:-1]):
            writer.write_chunk(index, verify_chunk(manifest, index, chunk))
        with pytest.raises(RestoreError, match="never written"):
            writer.finish(restored_chain(source))
        writer.written.add(len(chunks) - 1)  # pretend: the root check still catches it
        with pytest.raises(RestoreError, match="state root"):
            writer.finish(restored_chain(source))
        writer.close()
        assert get_data_dir_status(tmp_path / "restored") is DataDirStatus.RESTORING
    finally:
        source.close()


def test_invalid_export_of_a_bucket_too_big_for_one_chunk(tmp_path):
    store = ChainStore.open(str(tmp_path / "db"), GENESIS)
    big = {}
    for n in range(1_000_000):  # 9 values of 1 MiB whose keys all fall in bucket 0
        key = b"blob/%d" % n
        if hashlib.sha256(key).digest()[:2] == b"\0\0":
            big[key] = os.urandom(1024 * 1024)
            if len(big) == 9:
                break
    store.commit_genesis(big, make_validator_set())
    try:
        with pytest.raises(SnapshotExportError, match="bucket 0 holds"):
            export(store, tmp_path / "snapshots")
        assert list((tmp_path / "snapshots").iterdir()) == []
    finally:
        store.close()


def test_a_restore_killed_midway_is_detected_and_started_over(tmp_path):
    source = build_store(tmp_path / "db")
    try:
        files = export(source, tmp_path / "snapshots", target_bytes=16 * 1024)
        target = tmp_path / "restored"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, str(WRITER), str(files.path), str(target)],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "begun"
        assert proc.stdout.readline().strip() == "0"
        time.sleep(0.1)  # somewhere in the next chunks
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()

        assert get_data_dir_status(target) is DataDirStatus.RESTORING
        with pytest.raises(CorruptionError, match="no genesis hash"):
            ChainStore.open(str(target), GENESIS)  # never mistaken for a chain store
        discard_restore(target)
        assert get_data_dir_status(target) is DataDirStatus.EMPTY
        manifest, chunks = read_snapshot(files.path)
        restore(target, manifest, chunks, restored_chain(source))
        restored = ChainStore.open(str(target), GENESIS)
        try:
            assert restored.head_state_root == source.head_state_root
            assert dict(restored.iterate_state(b"")) == dict(source.iterate_state(b""))
        finally:
            restored.close()
    finally:
        source.close()


def test_validator_set_changes_are_listed_by_height(tmp_path):
    store = build_store(tmp_path / "db", blocks=0)
    try:
        new_set = ValidatorSet(make_validator_set().validators[:3])
        block, cert, prepared = make_block(store, {b"x": b"1"}, next_validator_set=new_set)
        store.commit_block(block, cert, {b"x": b"1"}, [], new_set, prepared)
        assert [(h, s.size) for h, s in store.iterate_validator_set_changes(0, 10)] == \
            [(0, 4), (2, 3)]
        assert list(store.iterate_validator_set_changes(1, 1)) == []
        assert KEYS  # the set's keys are the builders'
    finally:
        store.close()
