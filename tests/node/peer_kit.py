"""Outside peers for node tests: a P2PNetwork with its own TLS certificate (nodes run
TLS by default), and a raw WebSocket client that completes the handshake and then
sends whatever frames a test wants (a hostile peer)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from chain.crypto import KeyPair
from node.tls import build_p2p_tls, create_self_signed_certificate
from p2p.frames import MessageType, decode_frame, encode_frame
from p2p.handshake import Hello, build_hello, compute_certificate_binding, run_handshake
from p2p.network import P2PNetwork
from p2p.peers import P2PConfig, Verdict
from tests.node.conftest import CHAIN_ID

_CERT_DIR = Path(tempfile.mkdtemp(prefix="govchain-test-tls-"))
_CERT, _KEY = _CERT_DIR / "cert.pem", _CERT_DIR / "key.pem"
create_self_signed_certificate(_CERT, _KEY, "govchain test peer")
TEST_TLS = build_p2p_tls(_CERT, _KEY)


def make_peer(genesis_hash: bytes, *, key: KeyPair | None = None, chain_id: str = CHAIN_ID,
              tls: bool = True, handler: Any = None, handle_request: Any = None,
              config: P2PConfig | None = None, listen_port: int = 0,
              static_peers: list[str] | None = None) -> tuple[P2PNetwork, list[Any]]:
    """A P2PNetwork outside any node; records what it is sent (IGNORE verdict)."""
    received: list[Any] = []

    async def record(peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        received.append((msg_type, payload))
        return Verdict.IGNORE

    network = P2PNetwork(
        key or KeyPair.generate(), chain_id, genesis_hash, "127.0.0.1", listen_port,
        static_peers or [], handler or record, handle_request=handle_request,
        config=config or P2PConfig(peer_exchange=False),
        server_ssl=TEST_TLS.server if tls else None, client_ssl=TEST_TLS.client if tls else None,
        tls_fingerprint=TEST_TLS.fingerprint if tls else None)
    return network, received


class RawPeer:
    """A WebSocket client that passes the handshake, then sends raw frames."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                 hello: Hello) -> None:
        self.session = session
        self.ws = ws
        self.peer_hello = hello
        self._request_ids = itertools.count(1)

    @classmethod
    async def connect(cls, port: int, genesis_hash: bytes,
                      key: KeyPair | None = None, chain_id: str = CHAIN_ID) -> RawPeer:
        key = key or KeyPair.generate()
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(f"wss://127.0.0.1:{port}/p2p", ssl=TEST_TLS.client,
                                          max_msg_size=32 * 1024 * 1024)
            binding = compute_certificate_binding(ws.get_extra_info("ssl_object"))
            local = build_hello(key, chain_id, genesis_hash, "", False)
            channel = _Channel(ws)
            hello = await run_handshake(channel, key, local, lambda h: None, 5.0,
                                        channel_binding=binding)
        except BaseException:
            await session.close()
            raise
        return cls(session, ws, hello)

    async def send_frame(self, msg_type: MessageType, payload: Any, request_id: int = 0) -> None:
        await self.ws.send_bytes(encode_frame(msg_type, request_id, payload))

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def ping(self, timeout_s: float = 10.0) -> None:
        """Send a PING and read frames until its PONG. The node handles one connection's
        frames in order, so by then it has handled every frame sent before the PING."""
        nonce = secrets.token_bytes(8)
        await self.send_frame(MessageType.PING, nonce, request_id=next(self._request_ids))
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.BINARY:
                    raise AssertionError(f"connection closed before the PONG ({msg.type.name})")
                frame = decode_frame(msg.data)
                if frame.msg_type == MessageType.PONG and frame.payload == nonce:
                    return

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


class _Channel:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def receive(self) -> bytes:
        from p2p.errors import ConnectionClosedError

        msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise ConnectionClosedError(f"connection closed ({msg.type.name})")
        data: bytes = msg.data
        return data
