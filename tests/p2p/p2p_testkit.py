"""Test kit for p2p tests: networks on 127.0.0.1 with OS-chosen ports, always stopped,
and a check that no task is left behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from chain.crypto import KeyPair
from p2p.frames import MessageType
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
    received: list[tuple[str, MessageType, Any]] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    disconnected: list[tuple[str, str]] = field(default_factory=list)
    answers: dict[MessageType, tuple[MessageType, Any] | None] = field(default_factory=dict)
    answer_delay_s: float = 0.0

    async def handle(self, peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        self.received.append((peer_id, msg_type, payload))
        return self.verdict

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
