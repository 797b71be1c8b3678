"""The node's callbacks as the p2p layer calls them: the message handler, the request
handler and the peer connected/disconnected notices.

A callback that raises is a node bug: it is logged with its traceback and never ends
a session or a task of the network. Nothing here reads or changes node state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from p2p.frames import EXPECTED_RESPONSE, MessageType
from p2p.peers import PeerInfo, Verdict

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, MessageType, Any], Awaitable[Verdict]]
"""`handle(peer_id, msg_type, payload) -> Verdict` for gossip (TX, PROPOSAL, VOTE) and
direct messages (STATUS); the verdict of a direct message only matters if REJECT."""
RequestHandler = Callable[[str, MessageType, Any], Awaitable[tuple[MessageType, Any] | None]]
"""`handle_request(peer_id, msg_type, payload) -> (type, payload) | None` answers
GET_STATUS, GET_BLOCKS and GET_VOTES; None answers ERROR "unavailable"."""
PeerConnected = Callable[[PeerInfo], Awaitable[None]]
PeerDisconnected = Callable[[str, str], Awaitable[None]]
"""`on_peer_disconnected(peer_id, reason)`."""


@dataclass
class NodeCallbacks:
    """The node's side of the network; each may be replaced while the network runs."""

    handler: MessageHandler
    """Gossip and direct messages."""
    handle_request: RequestHandler | None = None
    """Requests other than PING and PEERS_REQUEST; None answers them "unsupported"."""
    on_peer_connected: PeerConnected | None = None
    on_peer_disconnected: PeerDisconnected | None = None

    async def deliver(self, peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        """The handler's verdict; IGNORE when the handler fails."""
        try:
            verdict = await self.handler(peer_id, msg_type, payload)
        except Exception:
            log.exception("message handler failed on %s from %s", msg_type.name, peer_id[:16])
            return Verdict.IGNORE
        assert isinstance(verdict, Verdict), f"handler returned {verdict!r}, not a Verdict"
        return verdict

    async def answer(self, peer_id: str, msg_type: MessageType,
                     payload: Any) -> tuple[MessageType, Any]:
        """The request handler's answer, or the ERROR that stands for it."""
        assert self.handle_request is not None
        try:
            answer = await self.handle_request(peer_id, msg_type, payload)
        except Exception:
            log.exception("request handler failed on %s from %s", msg_type.name,
                          peer_id[:16])
            return MessageType.ERROR, ["internal", "the node failed to answer"]
        if answer is None:
            return MessageType.ERROR, ["unavailable", f"no answer to {msg_type.name}"]
        if answer[0] not in (EXPECTED_RESPONSE[msg_type], MessageType.ERROR):
            log.error("request handler answered %s with %s; sending ERROR",
                      msg_type.name, answer[0].name)
            return MessageType.ERROR, ["internal", "bad answer type"]
        return answer

    @staticmethod
    async def notify(awaitable: Awaitable[None]) -> None:
        """Await a connected/disconnected notice; log it if it fails."""
        try:
            await awaitable
        except Exception:
            log.exception("p2p peer callback failed")
