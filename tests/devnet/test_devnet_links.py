"""The link proxy over real sockets on 127.0.0.1: forwarding, cuts, heals, the process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devnet.links import (
    APPLIED_FILE,
    PARTITION_FILE,
    Link,
    LinkProxy,
    ProxyLimits,
    parse_partition,
    render_partition,
    watch_partition,
)
from devnet.manifest import LinkEntry, LinksEntry, Manifest, NodeEntry, write_manifest
from devnet.ports import get_free_port

HOST = "127.0.0.1"
DEADLINE_S = 5.0
GREETING = b"hello from the node\n"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A stand-in node: greets first (node -> dialler), then echoes (dialler -> node)."""
    try:
        writer.write(GREETING)
        await writer.drain()
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    server = await asyncio.start_server(_serve, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), DEADLINE_S)


@contextlib.asynccontextmanager
async def running_proxy(links: list[Link],
                        limits: ProxyLimits | None = None) -> AsyncIterator[LinkProxy]:
    proxy = LinkProxy(links, limits)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port), DEADLINE_S)


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), DEADLINE_S)


async def is_closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True when the other end closes (EOF or reset) before the deadline."""
    try:
        data = await asyncio.wait_for(reader.read(65536), DEADLINE_S)
    except ConnectionError:
        return True
    return data == b""


async def poll_until(predicate: object, timeout_s: float = DEADLINE_S) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def test_forwards_bytes_both_ways() -> None:
    async with echo_server() as node_port, running_proxy([Link("a", "b", 0, node_port)]) as proxy:
        reader, writer = await connect(proxy.ports["a->b"])
        assert await read_exactly(reader, len(GREETING)) == GREETING
        payload = os.urandom(1024 * 1024)  # many chunks: exercises the bounded pumps
        writer.write(payload)
        echoed = await read_exactly(reader, len(payload))
        assert echoed == payload
        writer.close()


async def test_cut_closes_open_connections_and_refuses_new_ones() -> None:
    links = [Link("a", "b", 0, 0), Link("b", "a", 0, 0), Link("b", "c", 0, 0)]
    async with echo_server() as node_port:
        links = [Link(k.src, k.dst, 0, node_port) for k in links]
        async with running_proxy(links) as proxy:
            open_ab = await connect(proxy.ports["a->b"])
            open_bc = await connect(proxy.ports["b->c"])
            for reader, _ in (open_ab, open_bc):
                assert await read_exactly(reader, len(GREETING)) == GREETING

            proxy.apply_cuts({frozenset(("a", "b"))})

            assert await is_closed_by_peer(open_ab[0])
            for name in ("a->b", "b->a"):  # both directions of the pair are cut
                reader, _ = await connect(proxy.ports[name])
                assert await is_closed_by_peer(reader)
            # the b|c link is untouched
            open_bc[1].write(b"still here")
            assert await read_exactly(open_bc[0], 10) == b"still here"
            await poll_until(lambda: proxy.count_connections("a->b") == 0)

            proxy.apply_cuts(set())

            reader, writer = await connect(proxy.ports["a->b"])
            assert await read_exactly(reader, len(GREETING)) == GREETING
            writer.write(b"healed")
            assert await read_exactly(reader, 6) == b"healed"
            for _, w in (open_ab, open_bc, (reader, writer)):
                w.close()


async def test_unreachable_target_closes_the_connection() -> None:
    async with echo_server() as node_port:
        pass  # the port is free again: nobody listens there
    limits = ProxyLimits(connect_timeout_s=1.0)
    async with running_proxy([Link("a", "b", 0, node_port)], limits) as proxy:
        reader, writer = await connect(proxy.ports["a->b"])
        assert await is_closed_by_peer(reader)
        writer.close()


async def test_connections_per_link_are_capped() -> None:
    limits = ProxyLimits(max_connections_per_link=2)
    async with echo_server() as node_port, \
            running_proxy([Link("a", "b", 0, node_port)], limits) as proxy:
        kept = [await connect(proxy.ports["a->b"]) for _ in range(2)]
        for reader, _ in kept:
            assert await read_exactly(reader, len(GREETING)) == GREETING
        reader, writer = await connect(proxy.ports["a->b"])
        assert await is_closed_by_peer(reader)
        for _, w in [*kept, (reader, writer)]:
            w.close()


async def test_close_aborts_connections() -> None:
    async with echo_server() as node_port:
        proxy = LinkProxy([Link("a", "b", 0, node_port)])
        await proxy.start()
        reader, writer = await connect(proxy.ports["a->b"])
        assert await read_exactly(reader, len(GREETING)) == GREETING
        await asyncio.wait_for(proxy.close(), DEADLINE_S)
        assert await is_closed_by_peer(reader)
        writer.close()


# ------------------------------------------------------------------ the partition file


def test_partition_file_round_trip() -> None:
    cuts = {frozenset(("node1", "node0")), frozenset(("node2", "node3"))}
    text = render_partition(7, cuts)
    assert json.loads(text) == {"version": 7, "cut": [["node0", "node1"], ["node2", "node3"]]}
    assert parse_partition(text) == (7, frozenset(cuts))


@pytest.mark.parametrize("text", ['[]', '{"cut": [["a"]]}', '{"cut": [["a", "a"]]}',
                                  '{"cut": [["a", 1]]}', '{"cut": {}}', '{"version": "x"}',
                                  "not json"])
def test_invalid_partition_file_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_partition(text)


def _write_stub_manifest(root: Path, links: list[LinkEntry], p2p_ports: dict[str, int]) -> None:
    nodes = [NodeEntry(name=name, rpc_url="http://127.0.0.1:1", rpc_port=1, p2p_port=port,
                       home=str(root / name), log=str(root / name / "node.log"), validator=True)
             for name, port in p2p_ports.items()]
    write_manifest(Manifest(chain_id="test", genesis_hash="00" * 32, dir=str(root), nodes=nodes,
                            accounts=[], links=LinksEntry(links=links, log=str(root / "links.log"),
                                                          control=str(root / PARTITION_FILE))))


async def test_watch_partition_applies_the_file_and_stops_without_manifest(
        tmp_path: Path) -> None:
    _write_stub_manifest(tmp_path, [], {})
    async with echo_server() as node_port, running_proxy([Link("a", "b", 0, node_port)]) as proxy:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_partition(proxy, tmp_path, stop, poll_s=0.01))
        applied = tmp_path / APPLIED_FILE
        await poll_until(applied.exists)
        assert parse_partition(applied.read_text()) == (0, frozenset())

        (tmp_path / PARTITION_FILE).write_text(render_partition(1, [frozenset(("a", "b"))]))
        await poll_until(lambda: parse_partition(applied.read_text())[0] == 1)
        assert proxy.cuts == {frozenset(("a", "b"))}

        (tmp_path / PARTITION_FILE).write_text("{broken")  # ignored: the cut stays
        await asyncio.sleep(0.05)
        assert proxy.cuts == {frozenset(("a", "b"))}

        (tmp_path / "devnet.json").unlink()
        await asyncio.wait_for(watcher, DEADLINE_S)


# ------------------------------------------------------------------ the process


def _start_proxy_process(root: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()),
                                                       os.environ.get("PYTHONPATH", "")]))
    log = open(root / "links.log", "ab")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([sys.executable, "-m", "devnet.links", str(root)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    log.close()
    return proc


async def test_proxy_process_forwards_cuts_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with echo_server() as node_port:
        link_port = get_free_port()
        _write_stub_manifest(tmp_path, [LinkEntry("node0", "node1", link_port)],
                             {"node0": get_free_port(), "node1": node_port})
        proc = _start_proxy_process(tmp_path)
        try:
            await poll_until((tmp_path / APPLIED_FILE).exists, timeout_s=15)
            reader, writer = await connect(link_port)
            assert await read_exactly(reader, len(GREETING)) == GREETING

            (tmp_path / PARTITION_FILE).write_text(
                render_partition(1, [frozenset(("node0", "node1"))]))
            assert await is_closed_by_peer(reader)
            writer.close()

            proc.send_signal(signal.SIGTERM)
            for _ in range(500):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            assert proc.returncode == 0, (tmp_path / "links.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=DEADLINE_S)
