"""One authenticated peer connection: its send queue and writer, its read loop (idle
PINGs, the inbound rate limit, the tx lane), its requests in flight; and the table of
the sessions of one network.

It never decides what a frame means (the router does) and never reads chain objects;
a peer's fault costs the peer score or its session, never an exception out of a loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from p2p.errors import (
    ConnectionClosedError,
    FrameError,
    MalformedFrameError,
    PeerNotConnectedError,
    RequestRefusedError,
    RequestTimeoutError,
)
from p2p.frames import (
    EXPECTED_RESPONSE,
    MAX_PEER_ADDRESSES,
    Frame,
    MessageType,
    decode_frame,
    encode_frame,
)
from p2p.handshake import Hello
from p2p.peers import (
    PENALTY_BAD_RESPONSE,
    PENALTY_RATE_LIMITED,
    PENALTY_REQUEST_TIMEOUT,
    Direction,
    P2PConfig,
    PeerInfo,
    TokenBucket,
)
from p2p.scoring import Scoring, get_frame_error_penalty
from p2p.tasks import Spawn
from p2p.transport import NETWORK_ERRORS, WebSocketChannel

log = logging.getLogger(__name__)

# Transaction gossip frames of one peer waiting for admission (its own lane, so that
# its votes and proposals overtake them); a full lane stops reading from that peer.
TX_LANE_FRAMES = 16
_TX_GOSSIP = frozenset({MessageType.TX, MessageType.TXS})

Answer = tuple[MessageType, Any]


class FrameRouter(Protocol):
    """Where a session hands each frame it read: `data` is the frame as received."""

    async def route(self, session: PeerSession, frame: Frame, data: bytes) -> None: ...


@dataclass
class Traffic:
    """Traffic totals of one network since start."""

    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: Counter[str] = field(default_factory=Counter)
    messages_out: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class SessionContext:
    """What all the sessions of one network share."""

    config: P2PConfig
    table: PeerTable
    scoring: Scoring
    traffic: Traffic
    spawn: Spawn


class PendingRequests:
    """Our requests in flight on one connection, matched to answers by request id."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._futures: dict[int, asyncio.Future[Answer]] = {}

    def next_id(self) -> int:
        return next(self._ids)

    def open(self, request_id: int) -> asyncio.Future[Answer]:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        return future

    def resolve(self, request_id: int, answer: Answer) -> bool:
        """Hand `answer` to its request; False for a late or unknown id."""
        future = self._futures.get(request_id)
        if future is None or future.done():
            return False
        future.set_result(answer)
        return True

    def discard(self, request_id: int) -> None:
        self._futures.pop(request_id, None)

    def fail_all(self, message: str) -> None:
        """End every waiting request with PeerNotConnectedError(`message`)."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(PeerNotConnectedError(message))

    def __len__(self) -> int:
        return len(self._futures)


class PeerSession:
    """The live state of one authenticated connection, from handshake to close."""

    def __init__(self, hello: Hello, channel: WebSocketChannel, direction: Direction,
                 address: str, listen_address: str, context: SessionContext) -> None:
        config = context.config
        self.peer_id = hello.node_key.hex()
        self.hello = hello
        self.channel = channel
        self.direction = direction
        self.address = address
        self.listen_address = listen_address
        self._context = context
        self.bucket = TokenBucket(config.rate_limit_per_s, config.rate_limit_burst,
                                  time.monotonic())
        self.send_queue: asyncio.Queue[tuple[MessageType, bytes]] = \
            asyncio.Queue(maxsize=config.send_queue_frames)
        self.tx_lane: asyncio.Queue[tuple[Frame, bytes]] = asyncio.Queue(maxsize=TX_LANE_FRAMES)
        """TX and TXS gossip from this peer, handed on in order by its own task."""
        self.requests = PendingRequests()
        self.connected_since_ms = int(time.time() * 1000)
        self.bytes_in = 0
        self.bytes_out = 0
        self.status: tuple[int, int] | None = None
        self.closing_reason: str | None = None
        """Why the session ends; set once, and then nothing more is sent."""
        self.inbound_requests = 0

    @property
    def short_id(self) -> str:
        return self.peer_id[:16]

    def get_info(self, score: float) -> PeerInfo:
        return PeerInfo(
            node_id=self.peer_id, address=self.address, listen_address=self.listen_address,
            direction=self.direction, is_validator=self.hello.is_validator, score=score,
            bytes_in=self.bytes_in, bytes_out=self.bytes_out,
            connected_since_ms=self.connected_since_ms,
            status_height=self.status[0] if self.status else None,
            status_round=self.status[1] if self.status else None)

    def penalize(self, points: float, reason: str) -> None:
        self._context.scoring.penalize(self, points, reason)

    def close(self, reason: str) -> None:
        """Ask the session to end; the read loop sees the close and cleans up."""
        if self.closing_reason is not None:
            return
        self.closing_reason = reason
        self._context.spawn(self.channel.close(self._context.config.close_timeout_s),
                            f"close {self.short_id}")

    # ------------------------------------------------------------ sending

    def enqueue(self, msg_type: MessageType, data: bytes) -> bool:
        """Queue one encoded frame; False (and the session ends) if the queue is full."""
        if self.closing_reason is not None:
            return False
        try:
            self.send_queue.put_nowait((msg_type, data))
        except asyncio.QueueFull:
            log.warning("dropping peer %s: its send queue is full (%d frames; too slow)",
                        self.short_id, self._context.config.send_queue_frames)
            self.close("send queue full")
            return False
        return True

    def answer(self, msg_type: MessageType, request_id: int, payload: Any) -> None:
        """Queue the answer to one of the peer's requests (ERROR if it cannot be sent)."""
        try:
            data = encode_frame(msg_type, request_id, payload)
        except FrameError as e:
            log.error("cannot encode %s answer for %s: %s", msg_type.name, self.short_id, e)
            data = encode_frame(MessageType.ERROR, request_id,
                                ["internal", "answer exceeds protocol limits"])
            msg_type = MessageType.ERROR
        self.enqueue(msg_type, data)

    async def request(self, msg_type: MessageType, payload: Any, timeout_s: float) -> Answer:
        """Send a request and await its answer; see P2PNetwork.request."""
        request_id = self.requests.next_id()
        data = encode_frame(msg_type, request_id, payload)
        future = self.requests.open(request_id)
        try:
            self.enqueue(msg_type, data)
            async with asyncio.timeout(timeout_s):
                answer_type, answer = await future
        except TimeoutError:
            self.penalize(PENALTY_REQUEST_TIMEOUT,
                          f"no answer to {msg_type.name} within {timeout_s} s")
            raise RequestTimeoutError(
                f"peer {self.short_id} did not answer {msg_type.name} within {timeout_s} s"
            ) from None
        finally:
            self.requests.discard(request_id)
        return self._check_answer(msg_type, answer_type, answer)

    def _check_answer(self, msg_type: MessageType, answer_type: MessageType,
                      answer: Any) -> Answer:
        if answer_type == MessageType.ERROR:
            raise RequestRefusedError(answer[0], answer[1])
        if answer_type != EXPECTED_RESPONSE[msg_type]:
            self.penalize(PENALTY_BAD_RESPONSE,
                          f"answered {msg_type.name} with {answer_type.name}")
            raise MalformedFrameError(
                f"peer {self.short_id} answered {msg_type.name} with {answer_type.name}")
        return answer_type, answer

    # ------------------------------------------------------------ loops

    async def run(self, router: FrameRouter) -> None:
        """Serve the session until it ends; it leaves the table before anything else."""
        log.info("peer %s connected (%s, %s)", self.short_id, self.direction.value,
                 self.address)
        spawn = self._context.spawn
        writer = spawn(self._write_loop(), f"writer {self.short_id}")
        tx_lane = spawn(self._tx_lane_loop(router), f"tx lane {self.short_id}")
        try:
            await self._read_loop(router)
        finally:
            reason = self.closing_reason = self.closing_reason or "connection closed"
            self._context.table.remove(self)
            writer.cancel()
            tx_lane.cancel()
            self.requests.fail_all(f"peer {self.short_id} disconnected: {reason}")
            await self.channel.close(self._context.config.close_timeout_s)
            log.info("peer %s disconnected: %s", self.short_id, reason)

    async def _read_loop(self, router: FrameRouter) -> None:
        idle_periods = 0
        while self.closing_reason is None:
            try:
                data = await self.channel.receive(self._context.config.idle_timeout_s)
            except TimeoutError:
                idle_periods += 1
                if idle_periods >= 2:
                    self.closing_reason = "idle: no frame and no PONG"
                    return
                self._ping()
                continue
            except ConnectionClosedError as e:
                self.closing_reason = self.closing_reason or f"closed by peer ({e})"
                return
            except FrameError as e:
                self.penalize(get_frame_error_penalty(e), f"{e.code}: {e}")
                self.closing_reason = self.closing_reason or f"{e.code}: {e}"
                return
            idle_periods = 0
            await self._on_data(data, router)

    def _ping(self) -> None:
        request_id = self.requests.next_id()
        self.enqueue(MessageType.PING,
                     encode_frame(MessageType.PING, request_id, secrets.token_bytes(8)))

    async def _on_data(self, data: bytes, router: FrameRouter) -> None:
        traffic = self._context.traffic
        self.bytes_in += len(data)
        traffic.bytes_in += len(data)
        try:
            frame = decode_frame(data)
        except FrameError as e:
            self.penalize(get_frame_error_penalty(e), f"{e.code}: {e}")
            return
        traffic.messages_in[frame.msg_type.name] += 1
        if not self.bucket.take(time.monotonic()):
            self.penalize(PENALTY_RATE_LIMITED, "inbound rate limit exceeded")
            return
        if frame.msg_type in _TX_GOSSIP and frame.request_id == 0:
            # Admitting transactions waits for their signatures to be verified: in
            # the read loop it held up the peer's votes and proposals behind it.
            await self.tx_lane.put((frame, data))
            return
        await router.route(self, frame, data)

    async def _tx_lane_loop(self, router: FrameRouter) -> None:
        """Hand on the peer's transaction gossip in arrival order, beside its read loop."""
        while True:
            frame, data = await self.tx_lane.get()
            await router.route(self, frame, data)

    async def _write_loop(self) -> None:
        traffic = self._context.traffic
        while True:
            msg_type, data = await self.send_queue.get()
            try:
                await self.channel.send(data)
            except (TimeoutError, *NETWORK_ERRORS) as e:
                self.close(f"send failed: {e!r}")
                return
            self.bytes_out += len(data)
            traffic.bytes_out += len(data)
            traffic.messages_out[msg_type.name] += 1


class PeerTable:
    """The registered sessions of one network by peer id: at most one per node key."""

    def __init__(self) -> None:
        self._sessions: dict[str, PeerSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._sessions))

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._sessions

    def __getitem__(self, peer_id: str) -> PeerSession:
        return self._sessions[peer_id]

    def get(self, peer_id: str) -> PeerSession | None:
        return self._sessions.get(peer_id)

    def values(self) -> list[PeerSession]:
        return list(self._sessions.values())

    def add(self, session: PeerSession) -> None:
        assert session.peer_id not in self._sessions, "admission let a duplicate in"
        self._sessions[session.peer_id] = session

    def remove(self, session: PeerSession) -> None:
        """Unregister `session`, unless another one has taken its place."""
        if self._sessions.get(session.peer_id) is session:
            del self._sessions[session.peer_id]

    def get_open(self, peer_id: str) -> PeerSession:
        """The peer's session, if it is not ending; raises PeerNotConnectedError."""
        session = self._sessions.get(peer_id)
        if session is None or session.closing_reason is not None:
            raise PeerNotConnectedError(f"peer {peer_id[:16]} is not connected")
        return session

    def has_peer_besides(self, exclude: str | None) -> bool:
        return any(peer_id != exclude for peer_id in self._sessions)

    def send_to_all(self, msg_type: MessageType, data: bytes, exclude: str | None) -> int:
        """Queue one encoded frame for every peer but `exclude`; return for how many."""
        count = 0
        for session in list(self._sessions.values()):
            if session.peer_id != exclude and session.enqueue(msg_type, data):
                count += 1
        return count

    def get_listen_addresses(self, exclude: PeerSession | None = None,
                             private: frozenset[str] = frozenset()) -> list[str]:
        """Where our peers (but `exclude` and the `private` node ids) can be dialed: a
        PEERS answer."""
        return [session.listen_address for session in self._sessions.values()
                if session is not exclude and session.listen_address
                and session.peer_id not in private][:MAX_PEER_ADDRESSES]
