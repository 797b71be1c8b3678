"""TCP ports of a devnet on 127.0.0.1: node RPC and p2p ports, then one per proxied link.

With a base port P the layout is fixed and easy to remember: node i serves RPC on
P+2i and p2p on P+2i+1, and the link proxy takes the ports after the nodes'. With
base 0 the operating system picks free ports, so parallel test runs never collide.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

from devnet.errors import DevnetError

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 8545


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


def plan_ports(node_count: int, base_port: int) -> PortPlan:
    """Choose and check every port of a devnet; DevnetError when one is taken."""
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
        ports = list(range(base_port, base_port + total))
        for port in ports:
            if not is_port_free(port):
                raise DevnetError(f"port {port} on {HOST} is in use: choose another "
                                  "--base-port, or 0 to let the system pick free ports")
    nodes = ports[:2 * node_count]
    return PortPlan(rpc=tuple(nodes[0::2]), p2p=tuple(nodes[1::2]),
                    links=tuple(ports[2 * node_count:]))


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
