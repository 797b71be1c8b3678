"""Block sync: a node that is behind fetches blocks with their commit certificates from
the peers ahead of it, and serves the blocks it has to peers that ask.

Each fetched block goes to the driver, which verifies its certificate against the
validator set of that height before it applies it; this module never changes chain
state itself, and a peer that sends a bad block is penalized and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from chain.block import Block
from chain.errors import ChainError
from chain.vote import CommitCertificate
from node.node import Node, SyncedBlock
from p2p.errors import RequestRefusedError
from p2p.frames import MessageType
from p2p.network import P2PNetwork
from p2p.peers import PENALTY_BAD_BLOCK, PENALTY_WITHHELD_BLOCKS
from storage.chain_store import ChainStore

log = logging.getLogger("govchain.sync")

SYNC_BATCH = 64
SYNC_ANSWER_BYTES = 8 * 1024 * 1024
"""Blocks stop being added to a BLOCKS answer past this many bytes (at least one block
is always sent; a block is at most max_block_bytes plus its header and certificate),
so that an answer stays under the 16 MiB BLOCKS frame limit."""
PRUNED = "pruned"
"""The ERROR code of a GET_BLOCKS answer from a node that no longer holds the blocks
asked for: its message says "pruned below height H"; the asker tries another peer."""
SYNC_POLL_S = 0.2
SYNC_TIMEOUT_S = 10.0


class BlockSync:
    """Fetches the blocks this node lacks from peers ahead of it; answers peers' requests."""

    def __init__(self, node: Node, p2p: P2PNetwork) -> None:
        self.node = node
        self.p2p = p2p
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A peer is ahead of us: start a sync pass now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), SYNC_POLL_S * 5)
            self._wakeup.clear()
            await self._sync_once()

    async def _sync_once(self) -> None:
        """Fetch blocks from peers ahead of us, highest first; a peer that fails (times
        out, answers nothing although it claimed to be ahead, sends a bad block) is
        penalized and skipped for this pass, and the next peer ahead is asked."""
        failed: set[str] = set()
        while self.node.upgrade_halt is None:  # halted: no block past it is wanted
            head = self.node.store.head_height
            ahead = sorted((p for p in self.p2p.peers()
                            if (p.status_height or 0) > head and p.node_id not in failed),
                           key=lambda p: p.status_height or 0, reverse=True)
            if not ahead:
                return
            peer_id = ahead[0].node_id
            if not await self._sync_from(peer_id, head):
                failed.add(peer_id)

    async def _sync_from(self, peer_id: str, head: int) -> bool:
        """GET_BLOCKS from `peer_id` until it has no more for us or fails, one answer
        ahead: the next answer is asked for as soon as one arrives, so the peer reads and
        sends it while this node applies the last. True if our head moved forward."""
        request: asyncio.Task[tuple[MessageType, Any]] | None = \
            self._request_blocks(peer_id, head + 1)
        try:
            while request is not None:
                try:
                    _, items = await request
                except RequestRefusedError as e:
                    if e.remote_code == PRUNED:  # no fault of the peer: it keeps a window
                        log.info("peer %s... %s; syncing from another peer", peer_id[:12],
                                 e.remote_message)
                    else:
                        log.info("sync from %s... refused: %s", peer_id[:12], e)
                    break
                except Exception as e:  # a peer failing a request is that peer's problem
                    log.info("sync from %s... failed: %s", peer_id[:12], e)
                    break
                request = None
                if not items:
                    if self.node.store.head_height == head:
                        self.p2p.penalize(peer_id, PENALTY_WITHHELD_BLOCKS,
                                          f"claimed to be ahead of {head} but sent no block")
                    break
                blocks, complete = self._decode_blocks(peer_id, items)
                if complete and blocks and blocks[-1][0].height < self._peer_height(peer_id):
                    request = self._request_blocks(peer_id, blocks[-1][0].height + 1)
                if not await self._apply_blocks(peer_id, blocks) or not complete:
                    break
        finally:
            if request is not None:
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
        return self.node.store.head_height > head

    def _request_blocks(self, peer_id: str, start: int
                        ) -> asyncio.Task[tuple[MessageType, Any]]:
        return asyncio.ensure_future(self.p2p.request(
            peer_id, MessageType.GET_BLOCKS, [start, SYNC_BATCH], timeout_s=SYNC_TIMEOUT_S))

    def _peer_height(self, peer_id: str) -> int:
        return max((p.status_height or 0 for p in self.p2p.peers() if p.node_id == peer_id),
                   default=0)

    def _decode_blocks(self, peer_id: str, items: Any
                       ) -> tuple[list[tuple[Block, CommitCertificate]], bool]:
        """The blocks of a BLOCKS answer, and whether all of them decoded (a peer that
        sent a malformed one is penalized; the blocks before it are still applied)."""
        blocks: list[tuple[Block, CommitCertificate]] = []
        for block_bytes, cert_bytes in items:
            try:
                blocks.append((Block.decode(as_bytes(block_bytes)),
                               CommitCertificate.decode(as_bytes(cert_bytes))))
            except (ChainError, TypeError, ValueError) as e:
                self.p2p.penalize(peer_id, PENALTY_BAD_BLOCK, f"sent a malformed block: {e}")
                return blocks, False
        return blocks, True

    async def _apply_blocks(self, peer_id: str,
                            blocks: list[tuple[Block, CommitCertificate]]) -> bool:
        """Apply `blocks` in order; False once one is rejected (the peer is penalized)."""
        blocks = [b for b in blocks if b[0].height > self.node.store.head_height]
        # Every block's signatures go to the verifier now, so the workers check the next
        # blocks while this one executes.
        verdicts = [asyncio.ensure_future(self.node.verifier.verify(block.txs))
                    for block, _ in blocks]
        try:
            for (block, cert), block_verdicts in zip(blocks, verdicts, strict=True):
                if block.height <= self.node.store.head_height:
                    continue
                done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                self.node.enqueue(SyncedBlock(block, cert, done, block_verdicts))
                if not await done:
                    self.p2p.penalize(peer_id, PENALTY_BAD_BLOCK,
                                      f"sent block {block.height} that fails its certificate")
                    return False
        finally:
            for pending in verdicts:
                pending.cancel()  # no-op for those done
            await asyncio.gather(*verdicts, return_exceptions=True)
        return True


    async def on_request(self, peer_id: str, msg_type: MessageType,
                         payload: Any) -> tuple[MessageType, Any] | None:
        store = self.node.store
        if msg_type == MessageType.GET_BLOCKS:
            start, count = int(payload[0]), min(int(payload[1]), SYNC_BATCH)
            base = store.base_height
            if max(start, 1) < base:
                return MessageType.ERROR, [PRUNED, f"pruned below height {base}"]
            # Read off the event loop: an answer can be megabytes of blocks.
            items = await asyncio.to_thread(read_blocks_answer, store, start, count)
            return MessageType.BLOCKS, items
        if msg_type == MessageType.GET_VOTES:
            votes = [v.encoded for v in self.node.core.votes_for_height()]
            return MessageType.VOTES, votes
        if msg_type == MessageType.GET_STATUS:
            return MessageType.STATUS, [store.head_height, self.node.core.round]
        return None


def read_blocks_answer(store: ChainStore, start: int, count: int) -> list[list[bytes]]:
    """[block, certificate] encodings from `start`, at most `count` of them and, past
    the first, no more than SYNC_ANSWER_BYTES in all."""
    items: list[list[bytes]] = []
    size = 0
    for height in range(max(start, 1), min(start + count, store.head_height + 1)):
        block, cert = store.get_block_bytes(height), store.get_certificate(height)
        if block is None or cert is None:
            break
        size += len(block) + len(cert.encoded)
        if items and size > SYNC_ANSWER_BYTES:
            break  # the frame limit: the peer asks again from where this stops
        items.append([block, cert.encoded])
    return items


def as_bytes(payload: Any) -> bytes:
    if not isinstance(payload, bytes):
        raise TypeError("expected bytes")
    return payload
