"""The node process: logging, the HTTP server, p2p, the driver, and clean shutdown.

`run_node` is what `govchain run` calls. SIGTERM and SIGINT stop the node: tasks are
cancelled and awaited, the servers closed, and the database closed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from chain.errors import ChainError
from node import logs
from node.config import NodeHome
from node.errors import NodeError
from node.gossip import NodeNetwork
from node.keystore import PassphraseSource
from node.node import Node
from node.statesync import StateSyncResult, run_state_sync, should_state_sync
from node.tls import build_rpc_ssl_context
from node.upgrades import EXIT_HALTED_FOR_UPGRADE, HaltedForUpgradeError
from p2p.network import P2PNetwork
from rpc.dispatcher import RpcDispatcher, make_rpc_handler
from rpc.methods.chain import NodeApi
from rpc.operator import add_operator_routes
from rpc.server import Gateway
from storage.errors import StorageError

log = logging.getLogger("govchain")
DISPATCHER_KEY = web.AppKey("dispatcher", RpcDispatcher)
GATEWAY_KEY = web.AppKey("gateway", Gateway)


def setup_logging(level: str, log_format: str = "human") -> None:
    logs.setup_logging(level, log_format)


def build_http_app(node: Node, api: NodeApi, p2p: P2PNetwork | None = None) -> web.Application:
    config = node.home.config
    dispatcher = RpcDispatcher(max_batch=config.rpc_max_batch)
    api.register(dispatcher)
    gateway = Gateway(node, dispatcher, p2p)  # limits, admin methods, /ws
    app = web.Application(client_max_size=config.rpc_max_body_bytes)
    app.router.add_post("/rpc", make_rpc_handler(dispatcher, config.rpc_max_body_bytes,
                                                 gateway.guard.admit))
    gateway.install(app)
    app[GATEWAY_KEY] = gateway

    async def health(request: web.Request) -> web.Response:
        if node.upgrade_halt is not None:
            return web.json_response({"status": "halted", "height": node.store.head_height,
                                      "message": node.upgrade_halt.message,
                                      "upgrade": node.upgrade_halt.to_json()}, status=503)
        return web.json_response({"status": "ok", "height": node.store.head_height})

    app.router.add_get("/health", health)
    app[DISPATCHER_KEY] = dispatcher
    return app


class NodeService:
    """A running node: HTTP server, p2p network and driver tasks. Used by `run` and tests."""

    def __init__(self, home: NodeHome) -> None:
        self.home = home
        self.state_sync_pending = should_state_sync(home)
        """True until the state sync that must run before the node is assembled ran."""
        self.state_sync: StateSyncResult | None = None
        """What the state sync at start restored (None: none ran, or none was usable)."""
        if not self.state_sync_pending:
            self._assemble()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.rpc_port = 0
        self.failed = asyncio.Event()
        """Set when a node task dies of an error: the process must stop."""
        self.halted = asyncio.Event()
        """Set when the node halts for an upgrade it does not implement (node/upgrades.py)."""
        self.storage_failure: StorageError | None = None
        """The first failed read or write of the database: the node stops on it."""
        self._loop: asyncio.AbstractEventLoop | None = None

    def _assemble(self) -> None:
        """The node on its data directory, its network and its API."""
        self.node = Node(self.home)
        logs.set_log_context(lambda: (self.node.core.height, self.node.core.round))
        self.network = NodeNetwork(self.node)
        self.api = NodeApi(self.node, peers=self.network.peer_list,
                           max_batch=self.home.config.rpc_max_batch)
        self.node.store.set_failure_listener(self._on_storage_failure)
        self.node.on_upgrade_halt = lambda halt: self.halted.set()

    @property
    def rpc_url(self) -> str:
        scheme = "https" if self.home.config.rpc_tls_cert else "http"
        return f"{scheme}://{self.home.config.rpc_host_port[0]}:{self.rpc_port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.state_sync_pending:
            # Before the node exists: it then opens the restored store like any other.
            self.state_sync = await run_state_sync(self.home)
            self.state_sync_pending = False
            self._assemble()
        app = build_http_app(self.node, self.api, self.network.p2p)
        self.api_dispatcher = app[DISPATCHER_KEY]
        add_operator_routes(app, self)
        self.gateway = app[GATEWAY_KEY]
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = self.home.config.rpc_host_port
        site = web.TCPSite(self._runner, host, port, ssl_context=build_rpc_ssl_context(
            self.home.path / config.rpc_tls_cert, self.home.path / config.rpc_tls_key)
            if (config := self.home.config).rpc_tls_cert else None)
        await site.start()
        self.rpc_port = self._runner.addresses[0][1]
        if self.node.upgrade_halt is not None:
            # Refuse to run on: the RPC answers why until the process exits.
            log.error("%s", self.node.upgrade_halt.message)
            self.halted.set()
            return
        await self.network.start()
        log.info("node %s up: chain %s, height %d, rpc %s, p2p %s:%d, validator %s",
                 self.home.config.moniker, self.node.chain_id, self.node.store.head_height,
                 self.rpc_url, self.home.config.p2p_host_port[0], self.network.p2p.bound_port,
                 self.home.validator_public_key is not None)
        await self.network.prepare_consensus()
        self._tasks = [asyncio.create_task(self.node.run(), name="driver"),
                       *self.network.create_tasks()]
        if self.node.signer_client is not None:
            self._tasks.append(asyncio.create_task(self.node.signer_client.run(),
                                                   name="signer-link"))
        for task in self._tasks:
            task.add_done_callback(self._on_task_done)

    def _on_storage_failure(self, error: StorageError) -> None:
        """Called from any thread: stop rather than serve or take more on a failed disk."""
        if self.storage_failure is None:
            self.storage_failure = error
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self.failed.set)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        if isinstance(error, StorageError):
            # Reported once, without a traceback, by whoever stops the process.
            self.storage_failure = self.storage_failure or error
        else:
            log.error("task %s failed", task.get_name(), exc_info=error)
        self.failed.set()

    async def stop(self) -> None:
        if self.state_sync_pending:
            return  # stopped during the state sync: nothing was assembled
        for task in self._tasks:
            task.cancel()
        # A task that failed was reported by _on_task_done; its error must not cut the
        # shutdown short (the database is still closed last).
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.network.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.node.close()


async def serve(home: NodeHome, stop: asyncio.Event) -> None:
    service = NodeService(home)
    try:
        await _start_unless_stopped(service, stop)
        stop_task = asyncio.create_task(stop.wait())
        failed_task = asyncio.create_task(service.failed.wait())
        halted_task = asyncio.create_task(service.halted.wait())
        await asyncio.wait({stop_task, failed_task, halted_task},
                           return_when=asyncio.FIRST_COMPLETED)
        failed_task.cancel()
        halted_task.cancel()
        if service.halted.is_set() and not stop.is_set():
            linger_s = home.config.upgrade_halt_linger_s
            log.info("halted for an upgrade: answering RPC for %d s before exiting", linger_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop_task), linger_s)
        stop_task.cancel()
        log.info("stopping")
    finally:
        await service.stop()
        log.info("stopped")
    if service.storage_failure is not None:
        raise service.storage_failure
    if service.halted.is_set() and service.node.upgrade_halt is not None:
        raise HaltedForUpgradeError(service.node.upgrade_halt)
    if service.failed.is_set():
        raise NodeError("a node task failed; see the error above")


async def _start_unless_stopped(service: NodeService, stop: asyncio.Event) -> None:
    """Start the service; a stop asked for meanwhile (a state sync can take a while)
    cancels the start."""
    starting = asyncio.create_task(service.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        return
    starting.result()


GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic collector's thresholds in a node process. The default (700, 10, 10) runs a
young collection every 700 container allocations, about every 30 transactions under
load; the node's objects rarely form cycles, and at 50,000 the collector's share of a
loaded node drops from about a tenth to noise (docs/performance.md)."""


def tune_garbage_collector() -> None:
    """Freeze what start-up allocated (never scanned again) and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_node(home_path: Path, overrides: dict[str, Any] | None = None,
             passphrase: PassphraseSource | None = None) -> int:
    home = NodeHome.load(home_path, overrides=overrides, passphrase=passphrase)
    setup_logging(home.config.log_level, home.config.log_format)
    for path in home.insecure_key_files:
        log.warning("INSECURE DEV KEY: %s is not encrypted; for a real network encrypt it "
                    "with `govchain keys import` (docs/operator.md)", path)

    tune_garbage_collector()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(home, stop)

    try:
        asyncio.run(main())
    except HaltedForUpgradeError as e:
        log.error("%s", e)
        return EXIT_HALTED_FOR_UPGRADE
    except (NodeError, ChainError, StorageError) as e:
        log.error("%s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0
