"""The node's side of the p2p network: gossip handlers, catch-up and block sync.

Handlers decode and check what peers send (signatures, heights, proposer turn, clock
skew) and enqueue consensus events; they never change chain state. A node that is
behind fetches blocks with their commit certificates and hands each to the driver,
which verifies the certificate against the validator set of that height.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from chain import codec
from chain.block import Block
from chain.crypto import compute_hash
from chain.errors import ChainError
from chain.tx import Transaction
from chain.vote import CommitCertificate, Proposal, Vote
from consensus.core import is_valid_proposal_signature
from consensus.events import ProposalReceived, VoteReceived
from node.clock import now_ms
from node.node import Node, SyncedBlock
from node.tls import build_p2p_tls, ensure_p2p_certificate
from p2p.frames import MessageType
from p2p.network import P2PNetwork
from p2p.peers import (
    PENALTY_BAD_BLOCK,
    PENALTY_WITHHELD_BLOCKS,
    P2PConfig,
    PeerInfo,
    Verdict,
)
from storage.chain_store import ChainStore

log = logging.getLogger("govchain.net")

# Admission errors that only a faulty or hostile peer can cause (an honest peer relays
# only what it admitted, and these do not depend on state).
PEER_FAULTS = frozenset({"bad_signature", "malformed", "wrong_chain", "too_large"})

SYNC_BATCH = 64
SYNC_ANSWER_BYTES = 8 * 1024 * 1024
"""Blocks stop being added to a BLOCKS answer past this many bytes (at least one block
is always sent; a block is at most max_block_bytes plus its header and certificate),
so that an answer stays under the 16 MiB BLOCKS frame limit."""
TXS_BATCH = 1024
STATUS_INTERVAL_S = 1.0
SYNC_POLL_S = 0.2
GUARD_PROBE_S = 3.0
SYNC_TIMEOUT_S = 10.0


class NodeNetwork:
    """Connects a Node to its peers."""

    def __init__(self, node: Node) -> None:
        self.node = node
        config = node.home.config
        host, port = config.p2p_host_port
        p2p_key = node.home.node_key
        if config.p2p_closed and node.home.validator_key is not None:
            # Admission by validator-set membership needs the key the set names.
            p2p_key = node.home.validator_key
        tls = None
        if config.p2p_tls:
            tls = build_p2p_tls(*ensure_p2p_certificate(node.home.path,
                                                        p2p_key.public_key.hex()))
        self._allowed_peers = frozenset(bytes.fromhex(k) for k in config.p2p_allowed_peers)
        self.p2p = P2PNetwork(
            p2p_key, node.chain_id, node.genesis.hash, host, port,
            list(config.peers), self.on_message, handle_request=self.on_request,
            on_peer_connected=self.on_peer_connected,
            is_validator=node.home.validator_key is not None,
            config=P2PConfig(peer_exchange=config.peer_exchange,
                             max_peers=config.p2p_max_peers,
                             max_inbound_per_host=config.p2p_max_inbound_per_host),
            server_ssl=tls.server if tls else None, client_ssl=tls.client if tls else None,
            tls_fingerprint=tls.fingerprint if tls else None,
            admission=self.is_admitted if config.p2p_closed else None)
        node.broadcast_message = self.broadcast_consensus
        node.broadcast_txs = self.broadcast_txs
        node.add_commit_listener(lambda executed, cert: self.broadcast_status())
        self._sync_wakeup = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.p2p.start()

    async def stop(self) -> None:
        await self.p2p.stop()

    def peer_list(self) -> list[PeerInfo]:
        return self.p2p.peers()

    def is_admitted(self, node_key: bytes) -> bool:
        """Closed network: a key of the next height's validator set or of the allow-list."""
        if node_key in self._allowed_peers:
            return True
        validator_set = self.node.store.get_validator_set(self.node.store.head_height + 1)
        return any(v.public_key == node_key for v in validator_set.validators)

    async def prepare_consensus(self) -> None:
        """Before the driver starts: catch up, and arm the double-sign guard if needed."""
        if not self.node.needs_double_sign_guard() or not self.node.home.config.peers:
            return
        deadline = time.monotonic() + GUARD_PROBE_S
        while time.monotonic() < deadline:
            heights = [p.status_height for p in self.p2p.peers() if p.status_height is not None]
            if heights:
                if max(heights) > 0:
                    self.node.arm_double_sign_guard(max(heights))
                return
            await asyncio.sleep(0.1)

    def create_tasks(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._status_loop(), name="status"),
                asyncio.create_task(self._sync_loop(), name="sync")]

    # ------------------------------------------------------------------ outbound

    def broadcast_consensus(self, message: Proposal | Vote) -> None:
        if not self.p2p.peer_count:
            return  # a single validator: encoding its proposals (whole blocks) for no one
        if isinstance(message, Vote):
            self.p2p.broadcast(MessageType.VOTE, message.encoded)
        else:
            self.p2p.broadcast(MessageType.PROPOSAL, codec.encode(message.to_value()))

    def broadcast_txs(self, txs: list[Transaction], exclude: str | None = None) -> None:
        """Relay admitted transactions in batches (one frame per TXS_BATCH)."""
        for i in range(0, len(txs), TXS_BATCH):
            self.p2p.broadcast(MessageType.TXS, [tx.encoded for tx in txs[i:i + TXS_BATCH]],
                               exclude=exclude)

    def broadcast_status(self) -> None:
        self.p2p.broadcast(MessageType.STATUS, [self.node.store.head_height,
                                                self.node.core.round])

    async def _status_loop(self) -> None:
        while True:
            self.broadcast_status()
            await asyncio.sleep(STATUS_INTERVAL_S)

    # ------------------------------------------------------------------ inbound

    async def on_peer_connected(self, peer: PeerInfo) -> None:
        """Tell a new peer where we are and re-send our votes of the current height."""
        with contextlib.suppress(Exception):
            self.p2p.send(peer.node_id, MessageType.STATUS,
                          [self.node.store.head_height, self.node.core.round])
            for message in self.node.core.own_votes_for_height():
                payload = (message.encoded if isinstance(message, Vote)
                           else codec.encode(message.to_value()))
                msg_type = MessageType.VOTE if isinstance(message, Vote) else \
                    MessageType.PROPOSAL
                self.p2p.send(peer.node_id, msg_type, payload)

    async def on_message(self, peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        try:
            if msg_type == MessageType.TX:
                return await self._on_txs(peer_id, (payload,))
            if msg_type == MessageType.TXS:
                return await self._on_txs(peer_id, payload)
            if msg_type == MessageType.VOTE:
                return self._on_vote(Vote.from_value(codec.decode(_as_bytes(payload))))
            if msg_type == MessageType.PROPOSAL:
                return await self._on_proposal(Proposal.from_value(
                    codec.decode(_as_bytes(payload)), known_txs=self.node.mempool.get))
            if msg_type == MessageType.STATUS:
                if payload[0] > self.node.store.head_height:
                    self._sync_wakeup.set()
                return Verdict.ACCEPT
        except (ChainError, ValueError, TypeError, IndexError) as e:
            log.warning("peer %s... sent a bad %s: %s", peer_id[:12], msg_type.name, e)
            return Verdict.REJECT
        return Verdict.IGNORE

    async def _on_txs(self, peer_id: str, payloads: Any) -> Verdict:
        """Admit a batch of gossiped txs and relay the ones admitted (not the batch)."""
        max_size = self.node.params.max_tx_bytes
        # Peers relay the same transactions: look each up by the hash of its bytes before
        # paying for a decode.
        fresh = []
        for payload in payloads:
            data = _as_bytes(payload)
            tx_hash = compute_hash(data)
            if tx_hash in self.node.mempool or self.node.is_recently_seen(tx_hash):
                continue
            fresh.append(Transaction.decode(data, max_size=max_size))
        if not fresh:
            return Verdict.IGNORE
        errors = await self.node.submit_txs(fresh, relay=False)
        if any(e is not None and e.code in PEER_FAULTS for e in errors):
            return Verdict.REJECT
        admitted = [tx for tx, e in zip(fresh, errors, strict=True) if e is None]
        if admitted:
            self.broadcast_txs(admitted, exclude=peer_id)
        # The batch itself is not relayed: peers get only what we admitted.
        return Verdict.IGNORE

    def _current_height(self) -> int:
        return self.node.store.head_height + 1

    def _on_vote(self, vote: Vote) -> Verdict:
        height = self._current_height()
        if vote.height != height:
            if vote.height > height:
                self._sync_wakeup.set()
            return Verdict.IGNORE
        validator_set = self.node.store.get_validator_set(height)
        if not validator_set.is_member(vote.validator):
            return Verdict.REJECT
        if not vote.is_signature_valid(self.node.chain_id):
            return Verdict.REJECT
        self.node.enqueue(VoteReceived(vote))
        return Verdict.ACCEPT

    async def _on_proposal(self, proposal: Proposal) -> Verdict:
        height = self._current_height()
        if proposal.height != height:
            if proposal.height > height:
                self._sync_wakeup.set()
            return Verdict.IGNORE
        validator_set = self.node.store.get_validator_set(height)
        if proposal.block.height != proposal.height:
            return Verdict.REJECT
        # Signed by the proposer of (height, round); the block may be an earlier round's,
        # re-proposed, so its header can name another builder.
        if not is_valid_proposal_signature(proposal, validator_set, self.node.chain_id):
            return Verdict.REJECT
        skew_ms = proposal.block.header.timestamp_ms - now_ms()
        if skew_ms > self.node.params.clock_skew_ms:
            log.warning("proposal %d/%d is %d ms ahead of our clock; ignored",
                        proposal.height, proposal.round, skew_ms)
            return Verdict.IGNORE
        self.node.enqueue(ProposalReceived(proposal))
        return Verdict.ACCEPT

    async def on_request(self, peer_id: str, msg_type: MessageType,
                         payload: Any) -> tuple[MessageType, Any] | None:
        store = self.node.store
        if msg_type == MessageType.GET_BLOCKS:
            start, count = int(payload[0]), min(int(payload[1]), SYNC_BATCH)
            # Read off the event loop: an answer can be megabytes of blocks.
            items = await asyncio.to_thread(read_blocks_answer, store, start, count)
            return MessageType.BLOCKS, items
        if msg_type == MessageType.GET_VOTES:
            votes = [v.encoded for v in self.node.core.votes_for_height()]
            return MessageType.VOTES, votes
        if msg_type == MessageType.GET_STATUS:
            return MessageType.STATUS, [store.head_height, self.node.core.round]
        return None

    # ------------------------------------------------------------------ sync

    async def _sync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_wakeup.wait(), SYNC_POLL_S * 5)
            self._sync_wakeup.clear()
            await self._sync_once()

    async def _sync_once(self) -> None:
        """Fetch blocks from peers ahead of us, highest first; a peer that fails (times
        out, answers nothing although it claimed to be ahead, sends a bad block) is
        penalized and skipped for this pass, and the next peer ahead is asked."""
        failed: set[str] = set()
        while True:
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
                blocks.append((Block.decode(_as_bytes(block_bytes)),
                               CommitCertificate.decode(_as_bytes(cert_bytes))))
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


def _as_bytes(payload: Any) -> bytes:
    if not isinstance(payload, bytes):
        raise TypeError("expected bytes")
    return payload
