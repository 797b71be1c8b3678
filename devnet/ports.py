"""TCP ports of a devnet on 127.0.0.1: node RPC and p2p ports, then one per proxied link.

With a base port P the layout is fixed and easy to remember: node i serves RPC on
P+2i and p2p on P+2i+1, and the link proxy takes the ports after the nodes'. With
base 0 the operating system picks free ports, so parallel test runs never collide.
A fixed layout never lies in the kernel's ephemeral port range: it is refused there.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path

from devnet.errors import DevnetError

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 8545
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESERVED_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


class EphemeralPortsError(DevnetError):
    """Raised when a fixed port layout overlaps the kernel's ephemeral port range."""

    code = "ephemeral_ports"


@dataclass(frozen=True, slots=True)
class PortRange:
    """The ports first..last, both included."""

    first: int
    """The lowest port of the range."""
    last: int
    """The highest port of the range."""

    def overlaps(self, other: PortRange) -> bool:
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class PortPlan:
    """The ports of a devnet of `len(rpc)` nodes."""

    rpc: tuple[int, ...]
    """RPC port of node i."""
    p2p: tuple[int, ...]
    """p2p listening port of node i."""
    links: tuple[int, ...]
    """Proxy port of each directed link, in the order of get_link_pairs()."""


def get_link_pairs(node_count: int) -> list[tuple[int, int]]:
    """Every directed link (i, j), i != j, in a fixed order."""
    return [(i, j) for i in range(node_count) for j in range(node_count) if i != j]


def plan_ports(node_count: int, base_port: int, *,
               ephemeral: PortRange | None = None) -> PortPlan:
    """Choose and check every port of a devnet; DevnetError when one is taken, or when
    the layout overlaps `ephemeral` (by default the kernel's range, read from /proc)."""
    if node_count < 1:
        raise DevnetError("a devnet needs at least one node")
    link_count = len(get_link_pairs(node_count))
    total = 2 * node_count + link_count
    if base_port == 0:
        ports = get_free_ports(total)
    else:
        if not 1024 <= base_port <= 65535 - total + 1:
            raise DevnetError(f"--base-port {base_port}: {total} ports from it must fit "
                              "between 1024 and 65535 (or use 0 for free ports)")
        if ephemeral is None:
            ephemeral = read_ephemeral_range()
        if ephemeral is not None:
            validate_outside_ephemeral_range(base_port, total, ephemeral,
                                             reserved=read_reserved_ports())
        ports = list(range(base_port, base_port + total))
        for port in ports:
            if not is_port_free(port):
                raise DevnetError(f"port {port} on {HOST} is in use: choose another "
                                  "--base-port, or 0 to let the system pick free ports")
    nodes = ports[:2 * node_count]
    return PortPlan(rpc=tuple(nodes[0::2]), p2p=tuple(nodes[1::2]),
                    links=tuple(ports[2 * node_count:]))


def validate_outside_ephemeral_range(base_port: int, count: int, ephemeral: PortRange, *,
                                     reserved: tuple[PortRange, ...]) -> None:
    """Raise EphemeralPortsError unless the ports base_port.. (`count` of them) stay out of
    `ephemeral`, where the kernel picks the source ports of outgoing connections: there,
    a connection of an earlier node may take a later node's port before it binds it
    (seen: node9 of a 16-node devnet at base 35000). Ports in `reserved` (the kernel's
    ip_local_reserved_ports) are never picked, so they do not count."""
    layout = PortRange(base_port, base_port + count - 1)
    exposed = [port for port in range(max(layout.first, ephemeral.first),
                                      min(layout.last, ephemeral.last) + 1)
               if not any(r.first <= port <= r.last for r in reserved)]
    if not exposed:
        return
    suggested = suggest_base_port(count, ephemeral)
    instead = (f"use --base-port {suggested} (outside that range) or 0" if suggested
               else "use --base-port 0")
    raise EphemeralPortsError(
        f"--base-port {base_port}: the devnet's ports {layout} overlap the kernel's "
        f"ephemeral port range {ephemeral} ({EPHEMERAL_RANGE_FILE}), from which outgoing "
        "connections take their source ports, so a node could find its port taken "
        f"(\"address already in use\"); {instead} (free ports chosen by the system), or "
        f"reserve them with sysctl net.ipv4.ip_local_reserved_ports={layout}")


def suggest_base_port(count: int, ephemeral: PortRange) -> int:
    """A round base port for `count` ports just below `ephemeral` (or just above it);
    0 when neither side has room between 1024 and 65535."""
    below = (ephemeral.first - count) // 1000 * 1000
    if below >= 1024:
        return below
    above = -(-(ephemeral.last + 1) // 1000) * 1000
    if above + count - 1 <= 65535:
        return above
    return 0


def read_ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> PortRange | None:
    """The kernel's ephemeral port range, or None where it cannot be read (not Linux)."""
    try:
        first, last = (int(word) for word in path.read_text().split())
    except (OSError, ValueError):
        return None
    return PortRange(first, last)


def read_reserved_ports(path: Path = RESERVED_PORTS_FILE) -> tuple[PortRange, ...]:
    """The ports the kernel never picks as source ports ("8545,35000-35271"), if known."""
    try:
        text = path.read_text().strip()
    except OSError:
        return ()
    ranges = []
    for item in filter(None, text.split(",")):
        first, _, last = item.partition("-")
        try:
            ranges.append(PortRange(int(first), int(last or first)))
        except ValueError:
            return ()  # not the kernel's format: assume nothing is reserved
    return tuple(ranges)


def get_free_ports(count: int) -> list[int]:
    """`count` distinct ports the system hands out now, each reserved for a server.

    A port merely bound and closed is free again at once, and the kernel may give it
    to any outgoing connection as its source port before our server binds it (seen:
    a node's p2p listener failing with "address in use" while its peers dialled).
    So each port is left in TIME_WAIT: for about a minute the kernel neither hands it
    out for bind(0) nor picks it as a source port, while a server that sets
    SO_REUSEADDR (asyncio and aiohttp do) may listen on it.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            listener = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            client = stack.enter_context(socket.create_connection((HOST, port)))
            accepted, _ = listener.accept()
            accepted.close()  # the side that closes first holds TIME_WAIT on `port`
            client.close()
            ports.append(port)
    return ports


def get_free_port() -> int:
    """One port as get_free_ports gives them."""
    return get_free_ports(1)[0]


def is_port_free(port: int) -> bool:
    """True when a server could listen on HOST:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True
