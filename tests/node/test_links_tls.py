"""Encrypted, authenticated links: TLS between nodes bound to node keys, a man in the
middle refused, a closed network refusing strangers, and the RPC over https."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiohttp
import pytest

from chain.crypto import KeyPair
from cli.service import NodeService
from node.tls import build_p2p_tls, create_self_signed_certificate
from p2p.errors import BadHandshakeSignatureError, HandshakeError, PeerNotAllowedError
from tests.node.conftest import (
    make_genesis,
    make_home,
    start_network,
    stop_network,
    wait_for,
)
from tests.node.peer_kit import RawPeer, make_peer


async def _finalizing(nodes, height: int) -> bool:
    return min(n.node.store.head_height for n in nodes) >= height


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Proxy:
    """Forwards connections to `port`; with `tls` it terminates TLS with its own
    certificate and opens its own TLS link to the target (a man in the middle)."""

    def __init__(self, port: int, tls=None) -> None:
        self.port = port
        self.tls = tls
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.tls.server if self.tls else None)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.tls.client if self.tls else None)
        for task in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
            t = asyncio.create_task(task)
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_tls_link_and_a_byte_forwarding_proxy_work(network4):
    target = network4[0]
    port = target.service.network.p2p.bound_port
    await wait_for(lambda: _finalizing(network4, 2), 30, "two blocks over TLS links")
    raw = await RawPeer.connect(port, target.node.genesis.hash)
    try:
        ssl_object = raw.ws.get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.3"
    finally:
        await raw.close()
    # A proxy that forwards bytes (the devnet's partition proxy) does not break TLS.
    proxy = Proxy(port)
    proxy_port = await proxy.start()
    peer, _ = make_peer(target.node.genesis.hash)
    await peer.start()
    try:
        peer_id = await peer.connect(f"127.0.0.1:{proxy_port}")
        assert peer_id == target.service.network.p2p.node_id
    finally:
        await peer.stop()
        await proxy.stop()


async def test_invalid_man_in_the_middle_refused(network4, tmp_path):
    target = network4[0]
    create_self_signed_certificate(tmp_path / "mitm.pem", tmp_path / "mitm.key", "mitm")
    mitm = Proxy(target.service.network.p2p.bound_port,
                 tls=build_p2p_tls(tmp_path / "mitm.pem", tmp_path / "mitm.key"))
    mitm_port = await mitm.start()
    peer, _ = make_peer(target.node.genesis.hash)
    await peer.start()
    try:
        with pytest.raises(HandshakeError) as refused:
            await peer.connect(f"127.0.0.1:{mitm_port}")
        # Each end signed the certificate it saw: ours refuses the node's AUTH, or the
        # node refuses ours first and says so.
        assert isinstance(refused.value, BadHandshakeSignatureError) \
            or "signature" in str(refused.value)
        assert mitm.connections == 1
        assert peer.node_id not in {p.node_id for p in target.service.network.p2p.peers()}
    finally:
        await peer.stop()
        await mitm.stop()


async def test_invalid_stranger_refused_by_a_closed_network(tmp_path):
    invited = KeyPair.generate()
    nodes = await start_network(tmp_path, 4, p2p_closed=True,
                                p2p_allowed_peers=[invited.public_key.hex()])
    try:
        await wait_for(lambda: _finalizing(nodes, 3), 30, "a closed network finalizing")
        target = nodes[0]
        genesis_hash = target.node.genesis.hash
        address = f"127.0.0.1:{target.service.network.p2p.bound_port}"
        stranger, _ = make_peer(genesis_hash)
        guest, _ = make_peer(genesis_hash, key=invited)
        await stranger.start()
        await guest.start()
        try:
            with pytest.raises(HandshakeError) as refused:
                await stranger.connect(address)
            assert isinstance(refused.value, PeerNotAllowedError) \
                or "(not_allowed)" in str(refused.value)
            # In a closed network a validator's p2p identity is its validator key.
            assert target.service.network.p2p.node_id \
                == target.service.home.validator_key.public_key.hex()
            assert await guest.connect(address) == target.service.network.p2p.node_id
        finally:
            await stranger.stop()
            await guest.stop()
    finally:
        await stop_network(nodes)


async def test_rpc_over_https(tmp_path):
    validator = KeyPair.from_seed(b"\x01" * 32)
    home_path = tmp_path / "node0"
    home = make_home(home_path, make_genesis([validator]), validator,
                     rpc_tls_cert="rpc.pem", rpc_tls_key="rpc.key")
    create_self_signed_certificate(home_path / "rpc.pem", home_path / "rpc.key",
                                   "127.0.0.1", ip_addresses=("127.0.0.1",))
    service = NodeService(home)
    await service.start()
    try:
        assert service.rpc_url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(home_path / "rpc.pem"))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{service.rpc_url}/rpc", ssl=trust, json={
                    "jsonrpc": "2.0", "id": 1, "method": "node_status", "params": {}}) as r:
                answer = await r.json()
            assert answer["result"]["chain_id"] == home.genesis.chain_id
            # Plain http on the https port gets no answer.
            plain = service.rpc_url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"{plain}/rpc", json={}) as r:
                    await r.read()
    finally:
        await service.stop()
