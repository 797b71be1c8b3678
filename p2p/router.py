"""Routing of the frames a session reads: gossip to the gossip layer, direct messages
(STATUS, PEERS) to the node or the address book, requests to the request server,
answers to the request waiting for them, protocol faults to the peer's score.

It never decodes a payload beyond the frame's shape check and never holds the read
loop longer than the node's handler takes.
"""

from __future__ import annotations

from typing import Any

from p2p.callbacks import NodeCallbacks
from p2p.frames import (
    DIRECT_TYPES,
    GOSSIP_TYPES,
    HANDSHAKE_TYPES,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    Frame,
    MessageType,
)
from p2p.gossip import Gossip
from p2p.peers import (
    PENALTY_MALFORMED_FRAME,
    PENALTY_REJECTED_MESSAGE,
    AddressBook,
    P2PConfig,
    Verdict,
)
from p2p.session import PeerSession, PeerTable
from p2p.tasks import Spawn


class Router:
    """Sends each frame of a session to whoever handles its kind (a FrameRouter)."""

    def __init__(self, gossip: Gossip, requests: RequestServer, callbacks: NodeCallbacks,
                 book: AddressBook) -> None:
        self._gossip = gossip
        self._requests = requests
        self._callbacks = callbacks
        self._book = book

    async def route(self, session: PeerSession, frame: Frame, data: bytes) -> None:
        msg_type, request_id = frame.msg_type, frame.request_id
        if msg_type in HANDSHAKE_TYPES and request_id == 0:
            self._on_handshake_frame(session, frame)
        elif request_id == 0:
            await self._on_unsolicited(session, frame, data)
        elif msg_type in REQUEST_TYPES:
            self._requests.on_request(session, frame)
        elif msg_type in RESPONSE_TYPES:
            # False for a late answer to a request that timed out: already penalized.
            session.requests.resolve(request_id, (msg_type, frame.payload))
        else:
            session.penalize(PENALTY_MALFORMED_FRAME, f"{msg_type.name} with a request id")

    def _on_handshake_frame(self, session: PeerSession, frame: Frame) -> None:
        if frame.msg_type == MessageType.ERROR:
            code, message = frame.payload
            session.close(f"peer closed the session ({code}): {message}")
        else:
            session.penalize(PENALTY_MALFORMED_FRAME, f"{frame.msg_type.name} after the handshake")

    async def _on_unsolicited(self, session: PeerSession, frame: Frame, data: bytes) -> None:
        if frame.msg_type in GOSSIP_TYPES:
            await self._gossip.on_gossip(session, frame, data)
        elif frame.msg_type in DIRECT_TYPES:
            await self._on_direct(session, frame.msg_type, frame.payload)
        else:
            session.penalize(PENALTY_MALFORMED_FRAME,
                             f"{frame.msg_type.name} without a request id")

    async def _on_direct(self, session: PeerSession, msg_type: MessageType,
                         payload: Any) -> None:
        if msg_type == MessageType.PEERS:
            for address in payload:
                self._book.add(address)
            return
        if msg_type == MessageType.STATUS:
            session.status = (payload[0], payload[1])
        verdict = await self._callbacks.deliver(session.peer_id, msg_type, payload)
        if verdict is Verdict.REJECT:
            session.penalize(PENALTY_REJECTED_MESSAGE, f"sent an invalid {msg_type.name}")


class RequestServer:
    """Answers a peer's requests: PING and PEERS_REQUEST here, the others by the node's
    request handler in tasks of their own, at most `max_inbound_requests` per peer."""

    def __init__(self, config: P2PConfig, callbacks: NodeCallbacks, table: PeerTable,
                 spawn: Spawn) -> None:
        self._config = config
        self._callbacks = callbacks
        self._table = table
        self._spawn = spawn

    def on_request(self, session: PeerSession, frame: Frame) -> None:
        msg_type, request_id = frame.msg_type, frame.request_id
        limit = self._config.max_inbound_requests
        if msg_type == MessageType.PING:
            session.answer(MessageType.PONG, request_id, frame.payload)
        elif msg_type == MessageType.PEERS_REQUEST:
            session.answer(MessageType.PEERS, request_id,
                           self._table.get_listen_addresses(
                               exclude=session, private=self._config.private_peers))
        elif self._callbacks.handle_request is None:
            session.answer(MessageType.ERROR, request_id,
                           ["unsupported", f"{msg_type.name} is not served by this node"])
        elif session.inbound_requests >= limit:
            session.answer(MessageType.ERROR, request_id,
                           ["busy", f"more than {limit} requests in flight"])
        else:
            session.inbound_requests += 1
            self._spawn(self._serve(session, frame), f"request {msg_type.name}")

    async def _serve(self, session: PeerSession, frame: Frame) -> None:
        try:
            answer_type, payload = await self._callbacks.answer(
                session.peer_id, frame.msg_type, frame.payload)
        finally:
            session.inbound_requests -= 1
        session.answer(answer_type, frame.request_id, payload)
