"""The link proxy: every directed p2p link of a devnet passes through it, so links can be cut.

Node i dials 127.0.0.1:port(i->j) instead of node j; the proxy forwards the bytes
both ways. The partition file (DIR/partition.json) lists cut node pairs: a cut pair
has its open connections aborted and new ones refused until healed. After applying
each version the proxy writes DIR/partition.applied.json, so commands can wait for
the cut to be effective. The shape file (DIR/shape.json, see devnet/shaping.py) gives
directions delay, jitter, loss and a bandwidth cap; it is applied the same way and
echoed in DIR/shape.applied.json. Run as `python -m devnet.links DIR`; it stops on
SIGTERM or SIGINT, or by itself when DIR/devnet.json disappears.

It must stay boring: bounded buffers (at most `max_queued_bytes` held per direction
of a connection while they wait out their delay), a deadline on every connect and
write, an idle timeout on every read, a cap on connections per link, and no busy loops.
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
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devnet.manifest import get_manifest_path, read_manifest, write_json_atomically
from devnet.shaping import (
    SHAPE_APPLIED_FILE,
    SHAPE_FILE,
    DeliverySchedule,
    ShapeError,
    ShapeKey,
    ShapeSet,
    get_rng,
    parse_shape_file,
    render_shape_file,
)

PARTITION_FILE = "partition.json"
APPLIED_FILE = "partition.applied.json"
STATS_FILE = "links.stats.json"
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
    """Most bytes read at once."""
    max_queued_bytes: int = 1024 * 1024
    """Most bytes one direction of one connection holds while they wait out their delay
    or the bandwidth cap; reading stops until there is room for another chunk (the
    sender then meets TCP flow control). Like a TCP window, it caps a direction's
    throughput at max_queued_bytes / delay (3.3 MiB/s at 300 ms)."""
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

    def __post_init__(self) -> None:
        if self.max_queued_bytes < self.chunk_bytes:
            raise ValueError(f"max_queued_bytes ({self.max_queued_bytes}) must hold at least "
                             f"one chunk ({self.chunk_bytes} bytes)")


@dataclass(slots=True)
class _LinkState:
    link: Link
    server: asyncio.Server | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    accepted: int = 0
    """Connections accepted so far: numbers them for their random draws."""
    directions: set[_Direction] = field(default_factory=set)
    counters: dict[ShapeKey, _Counters] = field(default_factory=dict)
    """Since the proxy started, per direction (src, dst) of the link's connections."""


@dataclass(slots=True)
class _Counters:
    delivered_bytes: int = 0
    lost_segments: int = 0


@dataclass(eq=False, slots=True)
class _Direction:
    """The bytes that `key[0]` sends to `key[1]` over one connection, waiting for delivery."""

    key: ShapeKey
    schedule: DeliverySchedule
    counters: _Counters
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    queued_bytes: int = 0
    ended: bool = False
    """The sender closed: deliver what is queued, then stop."""
    error: BaseException | None = None


class LinkProxy:
    """Forwards every link; `apply_cuts` cuts and heals them."""

    def __init__(self, links: Iterable[Link], limits: ProxyLimits | None = None) -> None:
        self.limits = limits or ProxyLimits()
        self._links = {link.name: _LinkState(link) for link in links}
        self._cuts: frozenset[CutPair] = frozenset()
        self._shapes = ShapeSet()

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

    @property
    def shapes(self) -> ShapeSet:
        return self._shapes

    def apply_shapes(self, shapes: ShapeSet) -> None:
        """Shape from now on: bytes read later follow the new shapes; bytes already
        queued keep the delivery time they were given."""
        self._shapes = shapes

    def count_queued_bytes(self, name: str) -> int:
        """Bytes the link's connections hold, both directions."""
        return sum(d.queued_bytes for d in self._links[name].directions)

    def count_lost_segments(self, name: str) -> int:
        """Segments lost on the link since the start, both directions (a lost
        retransmission counts again)."""
        return sum(c.lost_segments for c in self._links[name].counters.values())

    def get_stats(self) -> dict[str, Any]:
        """Per link: open connections, bytes held, and per direction the bytes delivered
        and segments lost since the proxy started."""
        return {name: {"connections": len(state.connections),
                       "queued_bytes": sum(d.queued_bytes for d in state.directions),
                       "directions": {f"{src}->{dst}": {"delivered_bytes": c.delivered_bytes,
                                                         "lost_segments": c.lost_segments}
                                      for (src, dst), c in sorted(state.counters.items())}}
                for name, state in self._links.items()}

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
            await self._forward(state, reader, writer, up_reader, up_writer)
        except (OSError, TimeoutError) as e:
            log.debug("%s: %s", link.name, e or type(e).__name__)
        finally:
            state.connections.discard(task)
            writer.transport.abort()
            if upstream is not None:
                upstream.transport.abort()

    async def _forward(self, state: _LinkState, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                       upstream: asyncio.StreamWriter) -> None:
        """Pump both directions until either side closes (or the task is cancelled)."""
        link = state.link
        number = state.accepted
        state.accepted += 1
        seed = self._shapes.seed
        out, back = (_Direction(key, DeliverySchedule(get_rng(seed, key, number)),
                                state.counters.setdefault(key, _Counters()))
                     for key in ((link.src, link.dst), (link.dst, link.src)))
        state.directions.update((out, back))
        pumps = [asyncio.create_task(self._pump(reader, upstream, out)),
                 asyncio.create_task(self._pump(up_reader, writer, back))]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.debug("%s: %s", link.name, task.exception())
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.wait(pumps, timeout=self.limits.close_timeout_s)
            state.directions.difference_update((out, back))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: _Direction) -> None:
        """Read into the direction's queue and deliver from it, each byte at its time."""
        feeder = asyncio.create_task(self._feed(reader, direction))
        try:
            await self._deliver(writer, direction)
        finally:
            feeder.cancel()
            await asyncio.wait([feeder], timeout=self.limits.close_timeout_s)

    async def _feed(self, reader: asyncio.StreamReader, direction: _Direction) -> None:
        limits = self.limits
        loop = asyncio.get_running_loop()
        changed = direction.changed
        try:
            while True:
                async with changed:
                    await changed.wait_for(lambda: direction.queued_bytes + limits.chunk_bytes
                                           <= limits.max_queued_bytes)
                data = await asyncio.wait_for(reader.read(limits.chunk_bytes),
                                              limits.idle_timeout_s)
                if not data:
                    direction.ended = True
                    break
                shape = self._shapes.get(*direction.key)
                rtt_s = (shape.delay_ms + self._shapes.get(*reversed(direction.key)).delay_ms
                         ) / 1000
                offset = 0
                lost_before = direction.schedule.lost_segments
                for deliver_at, size in direction.schedule.plan(loop.time(), len(data),
                                                                shape, rtt_s):
                    direction.queue.append((deliver_at, data[offset:offset + size]))
                    offset += size
                direction.counters.lost_segments += direction.schedule.lost_segments - lost_before
                direction.queued_bytes += len(data)
                async with changed:
                    changed.notify_all()
        except (OSError, TimeoutError) as e:
            direction.error = e
        async with changed:
            changed.notify_all()

    async def _deliver(self, writer: asyncio.StreamWriter, direction: _Direction) -> None:
        """Write each queued piece once its time has come; return after the sender's end."""
        loop = asyncio.get_running_loop()
        changed = direction.changed
        queue = direction.queue
        while True:
            async with changed:
                await changed.wait_for(lambda: bool(queue) or direction.ended
                                       or direction.error is not None)
            if direction.error is not None:
                raise direction.error
            if not queue:
                return
            wait_s = queue[0][0] - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            now = loop.time()
            parts = []
            while queue and queue[0][0] <= now:
                parts.append(queue.popleft()[1])
            data = b"".join(parts)
            direction.queued_bytes -= len(data)
            direction.counters.delivered_bytes += len(data)
            async with changed:
                changed.notify_all()
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)


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
                          poll_s: float = 0.1, stats_interval_s: float = 1.0) -> None:
    """Apply DIR/partition.json and DIR/shape.json whenever they change, and write
    DIR/links.stats.json every `stats_interval_s`, until `stop` or the devnet is gone.
    Shapes are applied first, so that the applied partition file (what `devnet up`
    waits for) also means the shapes in force."""
    watched = [(devnet_dir / SHAPE_FILE, _apply_shape_file),
               (devnet_dir / PARTITION_FILE, _apply_partition_file)]
    seen: dict[Path, Any] = {}
    loop = asyncio.get_running_loop()
    stats_due = loop.time()
    while not stop.is_set():
        if not get_manifest_path(devnet_dir).exists():
            log.info("%s is gone: stopping", get_manifest_path(devnet_dir))
            return
        if loop.time() >= stats_due:
            stats_due = loop.time() + stats_interval_s
            try:
                write_json_atomically(devnet_dir / STATS_FILE,
                                      json.dumps(proxy.get_stats(), indent=1) + "\n")
            except OSError as e:
                log.warning("cannot write %s: %s", STATS_FILE, e)
        for control, apply in watched:
            try:
                st = control.stat()
                key: Any = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                key = None
            if control not in seen or key != seen[control]:
                seen[control] = key
                apply(proxy, devnet_dir)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)


def _apply_shape_file(proxy: LinkProxy, devnet_dir: Path) -> None:
    control = devnet_dir / SHAPE_FILE
    try:
        shapes = parse_shape_file(control.read_text())
    except FileNotFoundError:
        shapes = ShapeSet()
    except (OSError, ShapeError) as e:  # keep the shapes as they are until it is fixed
        log.warning("%s: ignored: %s", control, e)
        return
    if shapes != proxy.shapes:
        log.info("shape version %d (seed %d): %s", shapes.version, shapes.seed,
                 "; ".join(f"{src}->{dst} {shape.describe()}"
                           for (src, dst), shape in shapes.items()) or "every link clear")
    proxy.apply_shapes(shapes)
    write_json_atomically(devnet_dir / SHAPE_APPLIED_FILE, render_shape_file(shapes))


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
