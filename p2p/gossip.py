"""Gossip: de-duplication of TX, TXS, PROPOSAL and VOTE frames, delivery to the node,
and relay to every other peer of what the node accepts; also our own broadcasts.

It never decodes a payload and never encodes a received frame again: the id is the
hash of the bytes received and the relay sends those bytes. The node's verdict alone
decides relay, forgetting or penalty.
"""

from __future__ import annotations

from typing import Any

from p2p.callbacks import NodeCallbacks
from p2p.frames import (
    DIRECT_TYPES,
    GOSSIP_TYPES,
    Frame,
    MessageType,
    compute_gossip_id,
    encode_frame,
)
from p2p.peers import PENALTY_REJECTED_MESSAGE, SeenCache, Verdict
from p2p.session import PeerSession, PeerTable


class Gossip:
    """The seen set of one network and what it decides about each gossip frame."""

    def __init__(self, table: PeerTable, callbacks: NodeCallbacks, seen_cache_size: int) -> None:
        self._table = table
        self._callbacks = callbacks
        self._seen = SeenCache(seen_cache_size)
        self.duplicates = 0
        """Gossip frames dropped because their id was already seen."""

    def broadcast(self, msg_type: MessageType, payload: Any, exclude: str | None) -> int:
        """Send a gossip or direct message to every peer but `exclude`; see
        P2PNetwork.broadcast."""
        if msg_type not in GOSSIP_TYPES and msg_type not in DIRECT_TYPES:
            raise ValueError(f"{msg_type.name} cannot be broadcast")
        if not self._table.has_peer_besides(exclude):
            # Nobody to tell (a single node): skip the encoding. Nothing we did not send
            # can come back to us as our own gossip.
            return 0
        data = encode_frame(msg_type, 0, payload)
        if msg_type in GOSSIP_TYPES:
            self.mark_sent(data)
        return self._table.send_to_all(msg_type, data, exclude)

    def mark_sent(self, data: bytes) -> None:
        """Remember a gossip frame we send, so that it is not delivered back to our
        handler when a peer relays it."""
        self._seen.add(compute_gossip_id(data))

    async def on_gossip(self, session: PeerSession, frame: Frame, data: bytes) -> None:
        """Deliver a gossip frame from `session` once, and relay its bytes if accepted."""
        gossip_id = compute_gossip_id(data)
        if not self._seen.add(gossip_id):
            self.duplicates += 1
            return
        verdict = await self._callbacks.deliver(session.peer_id, frame.msg_type, frame.payload)
        if verdict is Verdict.ACCEPT:
            # `data` is canonical, so it is exactly what encoding the frame would give.
            self._table.send_to_all(frame.msg_type, data, exclude=session.peer_id)
        elif verdict is Verdict.IGNORE:
            # Not useful now, maybe later (a vote for a future round): let it in again.
            self._seen.discard(gossip_id)
        else:
            session.penalize(PENALTY_REJECTED_MESSAGE, f"sent an invalid {frame.msg_type.name}")
