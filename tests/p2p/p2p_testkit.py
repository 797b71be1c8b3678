"""Test kit for p2p tests: networks on 127.0.0.1 with OS-chosen ports, always stopped,
and a check that no task is left behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest

from chain.crypto import KeyPair
from p2p.errors import ConnectionClosedError
from p2p.frames import Frame, MessageType, decode_frame, encode_frame
from p2p.handshake import Hello, build_hello, run_handshake
from p2p.network import P2PNetwork
from p2p.peers import P2PConfig, PeerInfo, Verdict

CHAIN_ID = "govchain-test"
GENESIS_HASH = bytes(range(32))

# Short timings so the tests stay fast; every wait is bounded.
FAST_CONFIG = P2PConfig(
    handshake_timeout_s=2.0, connect_timeout_s=2.0, send_timeout_s=2.0,
    close_timeout_s=1.0, request_timeout_s=2.0, backoff_min_s=0.05, backoff_max_s=0.3,
    peer_exchange=False, peer_exchange_interval_s=0.1, ban_duration_s=60.0)


@dataclass
class Recorder:
    """A node stand-in: records what the network delivers and answers with a verdict."""

    verdict: Verdict = Verdict.ACCEPT
    verdicts: dict[Any, Verdict] = field(default_factory=dict)
    """Verdicts for particular payloads, over `verdict`."""
    received: list[tuple[str, MessageType, Any]] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    disconnected: list[tuple[str, str]] = field(default_factory=list)
    answers: dict[MessageType, tuple[MessageType, Any] | None] = field(default_factory=dict)
    answer_delay_s: float = 0.0

    async def handle(self, peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        self.received.append((peer_id, msg_type, payload))
        return self.verdicts.get(payload, self.verdict)

    async def handle_request(self, peer_id: str, msg_type: MessageType,
                             payload: Any) -> tuple[MessageType, Any] | None:
        if self.answer_delay_s:
            await asyncio.sleep(self.answer_delay_s)
        return self.answers.get(msg_type)

    async def on_connected(self, info: PeerInfo) -> None:
        self.connected.append(info.node_id)

    async def on_disconnected(self, peer_id: str, reason: str) -> None:
        self.disconnected.append((peer_id, reason))

    def payloads(self, msg_type: MessageType) -> list[Any]:
        return [payload for _, t, payload in self.received if t == msg_type]


@dataclass
class Node:
    network: P2PNetwork
    recorder: Recorder
    key: KeyPair

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.network.bound_port}"

    @property
    def node_id(self) -> str:
        return self.network.node_id


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node() -> AsyncIterator[NodeFactory]:
    started: list[P2PNetwork] = []

    async def factory(static_peers: list[str] | None = None, *, key: KeyPair | None = None,
                      chain_id: str = CHAIN_ID, genesis_hash: bytes = GENESIS_HASH,
                      port: int = 0, **config: Any) -> Node:
        recorder = Recorder()
        key = key or KeyPair.generate()
        network = P2PNetwork(
            key, chain_id, genesis_hash, "127.0.0.1", port, static_peers or [],
            recorder.handle, handle_request=recorder.handle_request,
            on_peer_connected=recorder.on_connected,
            on_peer_disconnected=recorder.on_disconnected,
            config=replace(FAST_CONFIG, **config))
        await network.start()
        started.append(network)
        return Node(network, recorder, key)

    yield factory
    for network in started:
        await network.stop()
    for network in started:
        assert not network._tasks, f"tasks left behind: {network._tasks}"
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"tasks left behind: {leftover}"


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0,
                   what: str = "condition") -> None:
    """Poll `predicate` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def peer_ids(node: Node) -> set[str]:
    return {info.node_id for info in node.network.peers()}


class _ClientChannel:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def receive(self) -> bytes:
        msg = await self.ws.receive(timeout=5.0)
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise ConnectionClosedError(f"closed ({msg.type.name})")
        data: bytes = msg.data
        return data


class RawPeer:
    """A hand-driven peer over a real socket: the real handshake (or a forged one),
    then whatever bytes a test wants to send."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                 key: KeyPair) -> None:
        self.session, self.ws, self.key = session, ws, key
        self.channel = _ClientChannel(ws)

    @property
    def node_id(self) -> str:
        return self.key.public_key.hex()

    @classmethod
    async def open(cls, address: str, key: KeyPair | None = None) -> RawPeer:
        session = aiohttp.ClientSession()
        try:
            ws = await asyncio.wait_for(session.ws_connect(f"ws://{address}/p2p"), 5.0)
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, key or KeyPair.generate())

    def hello(self, **changes: Any) -> Hello:
        hello = build_hello(self.key, CHAIN_ID, GENESIS_HASH, "", is_validator=False)
        return replace(hello, **changes)

    async def handshake(self) -> Hello:
        return await run_handshake(self.channel, self.key, self.hello(), lambda h: None, 5.0)

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def send(self, msg_type: MessageType, payload: Any, request_id: int = 0) -> None:
        await self.send_raw(encode_frame(msg_type, request_id, payload))

    async def receive(self, timeout_s: float = 5.0) -> Frame | None:
        """The next frame, or None once the node has closed the connection."""
        msg = await self.ws.receive(timeout=timeout_s)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return None
        return decode_frame(msg.data)

    async def wait_closed(self, timeout_s: float = 5.0) -> None:
        """Read until the node closes the connection (bounded in time)."""
        async with asyncio.timeout(timeout_s):
            while await self.receive(timeout_s) is not None:
                pass

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
