"""The node process: logging, the HTTP server, p2p, the driver, and clean shutdown.

`run_node` is what `govchain run` calls. SIGTERM and SIGINT stop the node: tasks are
cancelled and awaited, the servers closed, and the database closed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from node.api import NodeApi
from node.config import NodeHome
from node.errors import NodeError
from node.node import Node
from node.rpc import RpcDispatcher, make_rpc_handler
from storage.errors import StorageError

log = logging.getLogger("govchain")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def build_http_app(node: Node, api: NodeApi) -> web.Application:
    config = node.home.config
    dispatcher = RpcDispatcher(max_batch=config.rpc_max_batch)
    api.register(dispatcher)
    app = web.Application(client_max_size=config.rpc_max_body_bytes)
    app.router.add_post("/rpc", make_rpc_handler(dispatcher, config.rpc_max_body_bytes))

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "height": node.store.head_height})

    app.router.add_get("/health", health)
    app["dispatcher"] = dispatcher
    return app


async def serve(home: NodeHome, stop: asyncio.Event) -> None:
    node = Node(home)
    runner: web.AppRunner | None = None
    network = None
    try:
        from node.network import NodeNetwork

        network = NodeNetwork(node)
        api = NodeApi(node, peers=network.peer_list, max_batch=home.config.rpc_max_batch)
        app = build_http_app(node, api)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = home.config.rpc_host_port
        site = web.TCPSite(runner, host, port)
        await site.start()
        await network.start()
        log.info("node %s up: chain %s, height %d, rpc http://%s:%d, p2p %s, validator %s",
                 home.config.moniker, node.chain_id, node.store.head_height, host, port,
                 home.config.p2p_listen, node.core.is_validator)
        await network.prepare_consensus()
        async with asyncio.TaskGroup() as group:
            driver = group.create_task(node.run(), name="driver")
            network_tasks = network.create_tasks(group)
            await stop.wait()
            log.info("stopping")
            driver.cancel()
            for task in network_tasks:
                task.cancel()
    finally:
        if network is not None:
            await network.stop()
        if runner is not None:
            await runner.cleanup()
        node.close()
        log.info("stopped")


def run_node(home_path: Path) -> int:
    home = NodeHome.load(home_path)
    setup_logging(home.config.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(home, stop)

    try:
        asyncio.run(main())
    except (NodeError, StorageError) as e:
        log.error("%s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0
