"""The node's side of the p2p network: gossip of transactions, proposals, votes and status.

Handlers decode and check what peers send (signatures, heights, proposer turn, clock
skew) and enqueue consensus events; they never change chain state. Catching up with
peers that are ahead is node/sync.py's work; this module wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from chain import codec
from chain.crypto import compute_hash
from chain.errors import ChainError
from chain.tx import Transaction
from chain.vote import Proposal, Vote
from consensus.core import is_valid_proposal_signature
from consensus.events import ProposalReceived, VoteReceived
from node.admission import PENALTY_UNKNOWN_SENDERS, UnknownSenderAllowance
from node.config import NodeHome
from node.errors import MempoolError
from node.node import Node
from node.private import PrivateSync
from node.rejection import RejectionCode
from node.snapshots import STATE_SYNC_REQUESTS, SnapshotServer
from node.sync import BlockSync, as_bytes
from node.tls import build_p2p_tls, ensure_p2p_certificate
from p2p.frames import MessageType
from p2p.network import MessageHandler, P2PNetwork, PeerConnected, RequestHandler
from p2p.peers import P2PConfig, PeerInfo, Verdict

log = logging.getLogger("govchain.net")

TXS_BATCH = 1024
STATUS_INTERVAL_S = 1.0
GUARD_PROBE_S = 3.0


def build_p2p_network(home: NodeHome, handler: MessageHandler, *,
                      handle_request: RequestHandler,
                      on_peer_connected: PeerConnected | None = None,
                      admission: Callable[[bytes], bool] | None = None) -> P2PNetwork:
    """The p2p network of a node home: its listen address, key, TLS and limits (also the
    state-sync phase's network, which runs before the node is assembled)."""
    config = home.config
    host, port = config.p2p_host_port
    p2p_key = home.node_key
    if config.p2p_closed and home.validator_key is not None:
        # Admission by validator-set membership needs the key the set names.
        p2p_key = home.validator_key
    tls = None
    if config.p2p_tls:
        tls = build_p2p_tls(*ensure_p2p_certificate(home.path, p2p_key.public_key.hex()))
    return P2PNetwork(
        p2p_key, home.genesis.chain_id, home.genesis.hash, host, port,
        list(config.peers), handler, handle_request=handle_request,
        on_peer_connected=on_peer_connected, is_validator=home.validator_public_key is not None,
        config=P2PConfig(peer_exchange=config.peer_exchange,
                         max_peers=config.p2p_max_peers,
                         private_peers=frozenset(k.lower() for k in config.p2p_private_peers),
                         max_inbound_per_host=config.p2p_max_inbound_per_host),
        server_ssl=tls.server if tls else None, client_ssl=tls.client if tls else None,
        tls_fingerprint=tls.fingerprint if tls else None, admission=admission)


class NodeNetwork:
    """Connects a Node to its peers."""

    def __init__(self, node: Node) -> None:
        self.node = node
        config = node.home.config
        self._allowed_peers = frozenset(bytes.fromhex(k) for k in config.p2p_allowed_peers)
        self.p2p = build_p2p_network(
            node.home, self.on_message, handle_request=self._on_request,
            on_peer_connected=self.on_peer_connected,
            admission=self.is_admitted if config.p2p_closed else None)
        node.broadcast_message = self.broadcast_consensus
        node.broadcast_txs = self.broadcast_txs
        node.add_commit_listener(lambda executed, cert: self.broadcast_status())
        self.sync = BlockSync(node, self.p2p)
        self.unknown_senders = UnknownSenderAllowance()
        """What relaying transactions of unknown senders costs each peer."""
        self.snapshots = SnapshotServer(node)
        self.private = PrivateSync(node.private, self.p2p)

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
                asyncio.create_task(self.sync.run(), name="sync"),
                asyncio.create_task(self.snapshots.run(), name="snapshots"),
                asyncio.create_task(self.private.run(), name="private")]

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
                return self._on_vote(Vote.from_value(codec.decode(as_bytes(payload))))
            if msg_type == MessageType.PROPOSAL:
                return await self._on_proposal(Proposal.from_value(
                    codec.decode(as_bytes(payload)), known_txs=self.node.mempool.get))
            if msg_type == MessageType.STATUS:
                if payload[0] > self.node.store.head_height:
                    self.sync.wake()
                return Verdict.ACCEPT
        except (ChainError, ValueError, TypeError, IndexError) as e:
            log.warning("peer %s... sent a bad %s: %s", peer_id[:12], msg_type.name, e)
            return Verdict.REJECT
        return Verdict.IGNORE

    async def _on_txs(self, peer_id: str, payloads: Any) -> Verdict:
        """Admit a batch of gossiped txs and relay the ones admitted (not the batch)."""
        # Peers relay the same transactions: look each up by the hash of its bytes before
        # paying for a decode (which then reuses the hash).
        fresh = []
        for payload in payloads:
            data = as_bytes(payload)
            tx_hash = compute_hash(data)
            if tx_hash in self.node.mempool or self.node.is_recently_seen(tx_hash):
                continue
            fresh.append(self.node.admission.decode_tx(data, tx_hash))
        if not fresh:
            return Verdict.IGNORE
        errors = await self.node.submit_txs(fresh, relay=False)
        if any(e is not None and e.code.is_peer_fault for e in errors):
            return Verdict.REJECT
        self._charge_unknown_senders(peer_id, errors)
        admitted = [tx for tx, e in zip(fresh, errors, strict=True) if e is None]
        if admitted:
            self.broadcast_txs(admitted, exclude=peer_id)
        # The batch itself is not relayed: peers get only what we admitted.
        return Verdict.IGNORE

    def _charge_unknown_senders(self, peer_id: str, errors: list[MempoolError | None]) -> None:
        """A mild, rate-limited penalty for relaying transactions of senders without an
        account beyond the peer's allowance (not a REJECT: an honest peer ahead of us
        relays some; node/admission.py UnknownSenderAllowance)."""
        count = sum(1 for e in errors
                    if e is not None and e.code is RejectionCode.UNKNOWN_ACCOUNT)
        if count and self.unknown_senders.charge(peer_id, count):
            self.p2p.penalize(peer_id, PENALTY_UNKNOWN_SENDERS,
                              f"relayed {count} transactions of senders without an account, "
                              "beyond its allowance")

    def _current_height(self) -> int:
        return self.node.store.head_height + 1

    def _on_vote(self, vote: Vote) -> Verdict:
        height = self._current_height()
        if vote.height != height:
            if vote.height > height:
                self.sync.wake()
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
                self.sync.wake()
            return Verdict.IGNORE
        validator_set = self.node.store.get_validator_set(height)
        if proposal.block.height != proposal.height:
            return Verdict.REJECT
        # Signed by the proposer of (height, round); the block may be an earlier round's,
        # re-proposed, so its header can name another builder.
        if not is_valid_proposal_signature(proposal, validator_set, self.node.chain_id):
            return Verdict.REJECT
        skew_ms = proposal.block.header.timestamp_ms - self.node.clock.now_ms()
        if skew_ms > self.node.params.clock_skew_ms:
            log.warning("proposal %d/%d is %d ms ahead of our clock; ignored",
                        proposal.height, proposal.round, skew_ms)
            return Verdict.IGNORE
        self.node.enqueue(ProposalReceived(proposal))
        return Verdict.ACCEPT

    async def _on_request(self, peer_id: str, msg_type: MessageType,
                          payload: Any) -> tuple[MessageType, Any] | None:
        if msg_type == MessageType.GET_PRIVATE:
            return await self.private.on_request(peer_id, payload)
        if msg_type in STATE_SYNC_REQUESTS:
            return await self.snapshots.on_request(peer_id, msg_type, payload)
        return await self.sync.on_request(peer_id, msg_type, payload)
