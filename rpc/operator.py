"""Operator endpoints on the node's HTTP server: /metrics, /ready, /explorer/ (with the
node's genesis document at /explorer/genesis.json) and the loopback-only /admin/snapshot.

Readiness: the node is ready when it is within `max_blocks_behind` blocks of the best
peer it knows of and has at least `ready_min_peers` peers (a node configured with no
peers needs none). These handlers read node state and never change it; the snapshot
copies the database from a LevelDB snapshot in a worker thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from rpc.metrics import NodeMetrics
from rpc.served import ServedNode

EXPLORER_DIR = Path(__file__).parent / "explorer"
SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def compute_readiness(service: ServedNode) -> tuple[bool, dict[str, Any]]:
    """(ready, details) for /ready."""
    config = service.home.config
    head = service.node.store.head_height
    peers = service.network.peer_list()
    best = max([head, *(p.status_height or 0 for p in peers)])
    needed_peers = config.ready_min_peers if config.peers else 0
    reasons = []
    if service.node.upgrade_halt is not None:
        reasons.append(service.node.upgrade_halt.message)
    if best - head > config.max_blocks_behind:
        reasons.append(f"syncing: {best - head} blocks behind the best peer "
                       f"(allowed {config.max_blocks_behind})")
    if len(peers) < needed_peers:
        reasons.append(f"{len(peers)} peers connected, {needed_peers} needed")
    return not reasons, {"ready": not reasons, "height": head, "best_peer_height": best,
                         "peers": len(peers), "reasons": reasons}


def get_snapshot_name(service: ServedNode) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"height-{service.node.store.head_height}-{stamp}"


async def write_snapshot(service: ServedNode, name: str) -> dict[str, Any]:
    """Write HOME/snapshots/NAME from a consistent view of the running node's database."""
    if not SNAPSHOT_NAME.match(name):
        raise ValueError(f"snapshot name {name!r}: use letters, digits, '.', '_' and '-'")
    target = service.home.path / SNAPSHOTS_DIR / name
    if target.exists():
        raise ValueError(f"{target} exists; choose another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    height = service.node.store.head_height
    started = time.monotonic()
    keys = await asyncio.to_thread(service.node.store.write_snapshot, str(target))
    return {"path": str(target), "height_at_start": height, "keys": keys,
            "seconds": round(time.monotonic() - started, 3)}


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def add_operator_routes(app: web.Application, service: ServedNode) -> None:
    """Register /ready, /metrics (if enabled), /explorer/ (if enabled), /admin/snapshot."""
    config = service.home.config

    async def ready(request: web.Request) -> web.Response:
        ok, doc = compute_readiness(service)
        return web.json_response(doc, status=200 if ok else 503)

    async def snapshot(request: web.Request) -> web.Response:
        if not is_loopback(request.remote):
            return web.json_response({"error": "admin endpoints answer loopback only"},
                                     status=403)
        try:
            doc = await request.json() if request.can_read_body else {}
            name = doc.get("name") or get_snapshot_name(service)
            result = await write_snapshot(service, str(name))
        except (ValueError, AttributeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(result)

    app.router.add_get("/ready", ready)
    app.router.add_post("/admin/snapshot", snapshot)
    if config.metrics_enabled:
        metrics = NodeMetrics(service)

        async def scrape(request: web.Request) -> web.Response:
            return web.Response(body=metrics.render().encode(), headers={
                "Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

        app.router.add_get("/metrics", scrape)
    if config.explorer_enabled:
        async def explorer_index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(EXPLORER_DIR / "index.html")

        async def explorer_redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound("/explorer/")

        async def explorer_genesis(request: web.Request) -> web.Response:
            # The genesis this process runs (not the file, which may have been edited
            # since): its hash is the one block 1 names. The page verifies from it, or
            # from a genesis file the reader loads from disk.
            return web.Response(text=service.home.genesis.to_json(),
                                content_type="application/json",
                                headers={"Cache-Control": "no-cache"})

        app.router.add_get("/explorer", explorer_redirect)
        app.router.add_get("/explorer/", explorer_index)
        app.router.add_get("/explorer/genesis.json", explorer_genesis)  # before the static files
        app.router.add_static("/explorer/", EXPLORER_DIR)
