"""The link proxy: every directed p2p link of a devnet passes through it, so links can be cut.

Node i dials 127.0.0.1:port(i->j) instead of node j; the proxy forwards the bytes
both ways. The partition file (DIR/partition.json) lists cut node pairs: a cut pair
has its open connections aborted and new ones refused until healed. After applying
each version the proxy writes DIR/partition.applied.json, so commands can wait for
the cut to be effective. Run as `python -m devnet.links DIR`; it stops on SIGTERM or
SIGINT, or by itself when DIR/devnet.json disappears.

It must stay boring: bounded buffers (one chunk in flight per direction), a
deadline on every connect and write, an idle timeout on every read, a cap on
connections per link, and no busy loops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devnet.manifest import get_manifest_path, read_manifest, write_json_atomically

PARTITION_FILE = "partition.json"
APPLIED_FILE = "partition.applied.json"
HOST = "127.0.0.1"

log = logging.getLogger("devnet.links")

CutPair = frozenset[str]
"""An unordered pair of node names whose links (both directions) are cut."""


@dataclass(frozen=True, slots=True)
class Link:
    """A directed link: `src` connects to `listen_port`, the proxy dials `target_port`."""

    src: str
    """Name of the dialling node."""
    dst: str
    """Name of the node dialled."""
    listen_port: int
    """Proxy port on 127.0.0.1 (0 lets the system choose; see LinkProxy.ports)."""
    target_port: int
    """p2p port of `dst` on 127.0.0.1."""

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"

    @property
    def pair(self) -> CutPair:
        return frozenset((self.src, self.dst))


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    """Bounds on what the proxy waits for and holds."""

    chunk_bytes: int = 64 * 1024
    """Most bytes read at once; with the writer's drain, the data in flight per direction."""
    connect_timeout_s: float = 3.0
    """Deadline to reach the target node."""
    write_timeout_s: float = 10.0
    """Deadline for a receiver to take a chunk; a stuck receiver loses the connection."""
    idle_timeout_s: float = 600.0
    """A connection without a byte either way for this long is closed."""
    close_timeout_s: float = 2.0
    """Deadline to close a connection or a server."""
    max_connections_per_link: int = 16
    """Connections beyond this on one link are refused."""


@dataclass(slots=True)
class _LinkState:
    link: Link
    server: asyncio.Server | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)


class LinkProxy:
    """Forwards every link; `apply_cuts` cuts and heals them."""

    def __init__(self, links: Iterable[Link], limits: ProxyLimits | None = None) -> None:
        self.limits = limits or ProxyLimits()
        self._links = {link.name: _LinkState(link) for link in links}
        self._cuts: frozenset[CutPair] = frozenset()

    @property
    def ports(self) -> dict[str, int]:
        """Link name to the port it listens on (after start)."""
        result = {}
        for name, state in self._links.items():
            assert state.server is not None, "start() first"
            result[name] = state.server.sockets[0].getsockname()[1]
        return result

    @property
    def cuts(self) -> frozenset[CutPair]:
        return self._cuts

    def is_cut(self, link: Link) -> bool:
        return link.pair in self._cuts

    def count_connections(self, name: str) -> int:
        return len(self._links[name].connections)

    async def start(self) -> None:
        """Listen on every link's port; OSError if one is taken (nothing left open)."""
        try:
            for state in self._links.values():
                state.server = await asyncio.start_server(
                    functools.partial(self._on_connect, state),
                    HOST, state.link.listen_port, limit=self.limits.chunk_bytes)
        except BaseException:
            await self.close()
            raise

    def apply_cuts(self, cuts: Iterable[CutPair]) -> None:
        """Make `cuts` the set of cut pairs: abort connections of newly cut links."""
        self._cuts = frozenset(cuts)
        for state in self._links.values():
            if self.is_cut(state.link):
                for task in list(state.connections):
                    task.cancel()

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        tasks: list[asyncio.Task[None]] = []
        for state in self._links.values():
            if state.server is not None:
                state.server.close()
            tasks.extend(state.connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.limits.close_timeout_s)
        for state in self._links.values():
            if state.server is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.server.wait_closed(),
                                           self.limits.close_timeout_s)
                state.server = None

    async def _on_connect(self, state: _LinkState, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        link = state.link
        if self.is_cut(link) or len(state.connections) >= self.limits.max_connections_per_link:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        state.connections.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, link.target_port, limit=self.limits.chunk_bytes),
                self.limits.connect_timeout_s)
            upstream = up_writer
            log.debug("%s: connected", link.name)
            await self._forward(link, reader, writer, up_reader, up_writer)
        except (OSError, TimeoutError) as e:
            log.debug("%s: %s", link.name, e or type(e).__name__)
        finally:
            state.connections.discard(task)
            writer.transport.abort()
            if upstream is not None:
                upstream.transport.abort()

    async def _forward(self, link: Link, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                       upstream: asyncio.StreamWriter) -> None:
        """Pump both directions until either side closes (or the task is cancelled)."""
        pumps = [asyncio.create_task(self._pump(reader, upstream)),
                 asyncio.create_task(self._pump(up_reader, writer))]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.debug("%s: %s", link.name, task.exception())
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.wait(pumps, timeout=self.limits.close_timeout_s)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        while True:
            data = await asyncio.wait_for(reader.read(limits.chunk_bytes), limits.idle_timeout_s)
            if not data:
                return
            writer.write(data)
            await asyncio.wait_for(writer.drain(), limits.write_timeout_s)


# ------------------------------------------------------------------ the partition file


def parse_partition(text: str) -> tuple[int, frozenset[CutPair]]:
    """(version, cut pairs) of a partition file: {"version": n, "cut": [[a, b], ...]}."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("cut", []), list):
        raise ValueError('expected {"version": n, "cut": [["node0", "node1"], ...]}')
    cuts = set()
    for pair in doc.get("cut", []):
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(name, str) for name in pair) and pair[0] != pair[1]):
            raise ValueError(f"a cut is a pair of two node names, not {pair!r}")
        cuts.add(frozenset(pair))
    version = doc.get("version", 0)
    if not isinstance(version, int):
        raise ValueError("version must be an integer")
    return version, frozenset(cuts)


def render_partition(version: int, cuts: Iterable[CutPair]) -> str:
    pairs = sorted(sorted(pair) for pair in cuts)
    return json.dumps({"version": version, "cut": pairs}, indent=2) + "\n"


async def watch_partition(proxy: LinkProxy, devnet_dir: Path, stop: asyncio.Event,
                          poll_s: float = 0.1) -> None:
    """Apply DIR/partition.json whenever it changes, until `stop` or the devnet is gone."""
    control = devnet_dir / PARTITION_FILE
    seen: Any = ()
    while not stop.is_set():
        if not get_manifest_path(devnet_dir).exists():
            log.info("%s is gone: stopping", get_manifest_path(devnet_dir))
            return
        try:
            st = control.stat()
            key: Any = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key != seen:
            seen = key
            _apply_partition_file(proxy, devnet_dir)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)


def _apply_partition_file(proxy: LinkProxy, devnet_dir: Path) -> None:
    control = devnet_dir / PARTITION_FILE
    try:
        version, cuts = parse_partition(control.read_text())
    except FileNotFoundError:
        version, cuts = 0, frozenset()
    except (OSError, ValueError) as e:  # keep the links as they are until it is fixed
        log.warning("%s: ignored: %s", control, e)
        return
    if cuts != proxy.cuts:
        log.info("partition version %d: cut %s", version,
                 ", ".join("|".join(sorted(p)) for p in sorted(cuts, key=sorted)) or "nothing")
    proxy.apply_cuts(cuts)
    write_json_atomically(devnet_dir / APPLIED_FILE, render_partition(version, cuts))


# ------------------------------------------------------------------ the process


def get_links_from_manifest(devnet_dir: Path) -> list[Link]:
    manifest = read_manifest(devnet_dir)
    p2p_ports = {node.name: node.p2p_port for node in manifest.nodes}
    return [Link(entry.src, entry.dst, entry.port, p2p_ports[entry.dst])
            for entry in manifest.links.links]


async def run_proxy(devnet_dir: Path) -> int:
    proxy = LinkProxy(get_links_from_manifest(devnet_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await proxy.start()
    except OSError as e:
        log.error("cannot listen: %s", e)
        return 1
    log.info("forwarding %d links for %s", len(proxy.ports), devnet_dir)
    try:
        await watch_partition(proxy, devnet_dir, stop)
    finally:
        await proxy.close()
        log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.links", description=__doc__)
    parser.add_argument("dir", help="the devnet directory (holds devnet.json)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_proxy(Path(args.dir).resolve()))


if __name__ == "__main__":
    raise SystemExit(main())
