"""The serving side of state sync: a state snapshot every `snapshot_interval` heights,
and the answers to GET_SNAPSHOTS, GET_LIGHT_BLOCKS, GET_MANIFEST and GET_CHUNK.

The driver's commit listener takes a LevelDB view between two commits (no copy); a
worker thread exports it to HOME/state-snapshots and releases it. Answers read those files
and the store off the event loop. It never changes chain state, and a peer's request
can cost only a bounded answer (docs/state-sync.md).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
from typing import Any

from chain.snapshot import CHUNK_TARGET_BYTES, MAX_LIGHT_BLOCK_BYTES, LightBlock
from chain.vote import CommitCertificate
from node.execution import ExecutedBlock
from node.node import Node
from p2p.frames import MAX_LIGHT_BLOCKS_PER_RESPONSE, MAX_SNAPSHOT_OFFERS, MessageType
from storage.chain_store import ChainStore, Head
from storage.errors import StorageError
from storage.kv import SnapshotView
from storage.snapshot import (
    ExportCancelled,
    SnapshotFiles,
    export_state_snapshot,
    list_state_snapshots,
    prune_state_snapshots,
)

log = logging.getLogger("govchain.snapshots")

STATE_SYNC_REQUESTS = frozenset({MessageType.GET_SNAPSHOTS, MessageType.GET_LIGHT_BLOCKS,
                                 MessageType.GET_MANIFEST, MessageType.GET_CHUNK})
LIGHT_ANSWER_BYTES = 4 * 1024 * 1024
"""Light blocks stop being added to an answer past this many bytes (at least one is
sent); the peer asks again from where the answer stops."""

Answer = tuple[MessageType, Any]


class Refusal(Exception):
    """This node cannot answer the request; not the asking peer's fault."""

    code = "unavailable"


class Unavailable(Refusal):
    """It lacks the headers or validator sets asked for (it may have joined by state
    sync after them)."""

    code = "unavailable"


class SnapshotGone(Refusal):
    """It does not hold (or no longer holds) the snapshot asked for."""

    code = "not_found"


class SnapshotServer:
    """Takes state snapshots as the chain grows and serves them to syncing peers."""

    def __init__(self, node: Node) -> None:
        self.store = node.store
        self.genesis_hash = node.genesis.hash
        self.interval = node.home.config.snapshot_interval
        self.root = node.home.state_snapshots_dir
        self.chunk_target_bytes = CHUNK_TARGET_BYTES
        """Where exports cut chunks (tests lower it to get many chunks from a small state)."""
        self._pending: tuple[Head, SnapshotView] | None = None
        self._wakeup = asyncio.Event()
        self._cancel = threading.Event()
        prune_state_snapshots(self.root, self.genesis_hash)
        self.snapshots: list[SnapshotFiles] = list_state_snapshots(self.root, self.genesis_hash)
        """The snapshots served, newest first."""
        if self.interval > 0:
            node.add_commit_listener(self._on_commit)

    # ------------------------------------------------------------------ taking

    def _on_commit(self, executed: ExecutedBlock, certificate: CommitCertificate) -> None:
        """In the driver, right after a commit and before the next: the view taken now
        is exactly the state after this block."""
        height = executed.block.height
        if height % self.interval:
            return
        if self._pending is not None:
            log.warning("state snapshot at height %d skipped: the one before is still being "
                        "written", height)
            return
        head, view = self.store.open_state_view()
        assert head.height == height, "a commit listener runs before the next commit"
        self._pending = (head, view)
        self._wakeup.set()

    async def run(self) -> None:
        """Export each view handed over by the commit listener, one at a time."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if self._pending is None:
                    continue
                head, view = self._pending
                try:
                    await self._export(head, view)
                finally:
                    view.close()
                    self._pending = None
        finally:
            if self._pending is not None:
                self._pending[1].close()
                self._pending = None

    async def _export(self, head: Head, view: SnapshotView) -> None:
        work = functools.partial(export_state_snapshot, view, head.height, head.state_root,
                                 self.root, self.genesis_hash, cancelled=self._cancel,
                                 target_bytes=self.chunk_target_bytes)
        future = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            files = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread reads the view: it must stop before the view (and the
            # database) is closed.
            self._cancel.set()
            await asyncio.gather(future, return_exceptions=True)
            raise
        except ExportCancelled:
            return
        except (StorageError, OSError) as e:
            log.error("state snapshot at height %d failed: %s", head.height, e)
            return
        await asyncio.to_thread(prune_state_snapshots, self.root, self.genesis_hash)
        self.snapshots = list_state_snapshots(self.root, self.genesis_hash)
        log.info("state snapshot at height %d: %d chunks, %s bytes of state, %.2f s",
                 files.height, files.chunk_count, f"{files.state_bytes:,}", files.seconds)

    # ------------------------------------------------------------------ serving

    async def on_request(self, peer_id: str, msg_type: MessageType, payload: Any) -> Answer:
        try:
            if msg_type == MessageType.GET_SNAPSHOTS:
                offers = [s.offer.to_value() for s in self.snapshots[:MAX_SNAPSHOT_OFFERS]]
                return MessageType.SNAPSHOTS, offers
            if msg_type == MessageType.GET_LIGHT_BLOCKS:
                first, last = payload
                items = await asyncio.to_thread(read_light_blocks, self.store, first, last)
                return MessageType.LIGHT_BLOCKS, items
            if msg_type == MessageType.GET_MANIFEST:
                snapshot = self._find(payload[0], payload[1])
                return MessageType.MANIFEST, await asyncio.to_thread(snapshot.read_manifest)
            if msg_type == MessageType.GET_CHUNK:
                snapshot = self._find(payload[0], payload[1])
                data = await asyncio.to_thread(snapshot.read_chunk, payload[2])
                return MessageType.CHUNK, data
        except Refusal as e:
            return MessageType.ERROR, [e.code, str(e)[:256]]
        except (OSError, StorageError):
            # Pruned between the lookup and the read.
            return MessageType.ERROR, ["not_found", "that snapshot is no longer kept here"]
        raise AssertionError(f"{msg_type.name} is not a state-sync request")

    def _find(self, height: int, manifest_hash: bytes) -> SnapshotFiles:
        for snapshot in self.snapshots:
            if snapshot.height == height and snapshot.manifest_hash == manifest_hash:
                return snapshot
        raise SnapshotGone(f"no snapshot of height {height} with that manifest here")


def read_light_blocks(store: ChainStore, first: int, last: int) -> list[bytes]:
    """The light blocks a walk from `first` to `last` needs: the one at each height in
    [first, last) after which the validator set changes, then the one at `last`; no
    more than fit in one answer (the peer asks again from the last one sent)."""
    if last > store.head_height:
        raise Unavailable(f"height {last} is above this node's head {store.head_height}")
    changes = store.iterate_validator_set_changes(first + 1, last)
    heights = [c - 1 for c, _ in itertools.islice(changes, MAX_LIGHT_BLOCKS_PER_RESPONSE)]
    items: list[bytes] = []
    size = 0
    for height in [*heights, last][:MAX_LIGHT_BLOCKS_PER_RESPONSE]:
        data = load_light_block(store, height).encode()
        assert len(data) <= MAX_LIGHT_BLOCK_BYTES, "a light block is bounded by its parts"
        size += len(data)
        if items and size > LIGHT_ANSWER_BYTES:
            break
        items.append(data)
    return items


def load_light_block(store: ChainStore, height: int) -> LightBlock:
    header = store.get_block_header(height)
    certificate = store.get_certificate(height)
    if header is None or certificate is None:
        base = store.base_height
        raise Unavailable(f"no certified header at height {height} here"
                          + (f" (pruned below height {base})" if height < base else ""))
    try:
        validator_set = store.get_validator_set(height)
        following = store.get_validator_set(height + 1)
    except StorageError as e:
        raise Unavailable(f"the validator sets of height {height} are not known here") from e
    if validator_set.hash != header.validator_set_hash:
        raise Unavailable(f"the validator set of height {height} is not known here")
    changes = following.hash != validator_set.hash
    return LightBlock(header, certificate, validator_set, following if changes else None)

