"""`govchain signer`: serve one key to the validator nodes allowed to reach it.

Requests from every connection go through one lock: the check against the sign state,
its fsync and the signature are one step, so two nodes (an active/standby pair) asking
at once are answered one after the other and can never obtain two conflicting
signatures. A request the guard refuses gets a typed error and changes nothing.

Listens on a Unix socket (mode 0600: the file system says who may connect) or on TCP
with mutual TLS (only a node whose certificate is in the trusted file gets an answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from node.signer.backends import KeyBackend
from node.signer.protocol import (
    FRAME_HEADER,
    GET_PUBLIC_KEY,
    MalformedRequestError,
    OversizedRequestError,
    Request,
    Response,
    SignerError,
    decode_frame_length,
)
from node.signer.state import SignGuard

log = logging.getLogger("govchain.signer")

MAX_CONNECTIONS = 8
"""Connections served at once; more are closed at accept (a pair needs two)."""
FRAME_READ_TIMEOUT_S = 10.0
"""A frame whose header came must be complete within this time."""


@dataclass(frozen=True)
class ListenAddress:
    """Where the signer listens, or where a node dials it."""

    unix_path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """`unix:/path/to/socket` or `tcp://host:port`; raises ValueError otherwise."""
        if text.startswith("unix:"):
            path = text.removeprefix("unix:").removeprefix("//")
            if not path:
                raise ValueError("unix: needs a socket path")
            return cls(unix_path=path)
        if text.startswith("tcp://"):
            host, sep, port = text.removeprefix("tcp://").rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ValueError(f"{text!r}: expected tcp://host:port")
            return cls(host=host.strip("[]"), port=int(port))
        raise ValueError(f"{text!r}: expected unix:/path or tcp://host:port")

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"tcp://{self.host}:{self.port}"


def build_server_tls(cert: Path, key: Path, trusted_clients: Path) -> ssl.SSLContext:
    """TLS 1.3, client certificate required and checked against `trusted_clients`
    (a PEM file of the nodes' certificates, self-signed ones pinned as they are)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(trusted_clients)
    return context


def remove_stale_socket(path: Path) -> None:
    """Remove the socket file a killed signer left (never any other kind of file)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()


class SignerServer:
    """Serves `backend`'s key under `guard` on `address`."""

    def __init__(self, backend: KeyBackend, guard: SignGuard, address: ListenAddress,
                 tls: ssl.SSLContext | None = None) -> None:
        if address.host and tls is None:
            raise ValueError("a TCP signer needs mutual TLS (--tls-cert, --tls-key, "
                             "--tls-trusted)")
        self.backend = backend
        self.guard = guard
        self.address = address
        self.tls = tls
        self._lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.bound_port = 0
        self.signed_count = 0
        """Signatures given (repeats of the last one included)."""
        self.refused_count = 0
        """Requests refused with an error."""
        self.served_count = 0
        """Requests answered without an error (public key requests included)."""

    async def start(self) -> None:
        if self.address.unix_path:
            remove_stale_socket(Path(self.address.unix_path))
            old_umask = os.umask(0o177)
            try:
                self._server = await asyncio.start_unix_server(self._on_connection,
                                                               self.address.unix_path)
            finally:
                os.umask(old_umask)
        else:
            self._server = await asyncio.start_server(self._on_connection, self.address.host,
                                                      self.address.port, ssl=self.tls)
            self.bound_port = self._server.sockets[0].getsockname()[1]
        log.info("signer up on %s for chain %s, key %s", self.listen_url, self.guard.chain_id,
                 self.backend.public_key.hex())

    @property
    def listen_url(self) -> str:
        if self.address.unix_path:
            return str(self.address)
        return f"tcp://{self.address.host}:{self.bound_port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._connections.values():
            writer.close()  # the handler's read ends, and so does the handler
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.guard.close()

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("refusing a connection: %d already open", MAX_CONNECTIONS)
            writer.close()
            return
        self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header = await reader.readexactly(FRAME_HEADER.size)
            try:
                length = decode_frame_length(header)
            except OversizedRequestError as e:
                self.refused_count += 1
                log.warning("refused: %s", e.message)
                writer.write(Response(0, error=e).encode())
                await writer.drain()
                return  # the rest of the stream cannot be framed
            payload = await asyncio.wait_for(reader.readexactly(length), FRAME_READ_TIMEOUT_S)
            writer.write((await self.answer(payload)).encode())
            await writer.drain()

    async def answer(self, payload: bytes) -> Response:
        """The response to one request frame's payload."""
        try:
            request = Request.decode(payload)
        except MalformedRequestError as e:
            self.refused_count += 1
            log.warning("refused: %s", e.message)
            return Response(0, error=e)
        if request.kind == GET_PUBLIC_KEY:
            self.served_count += 1
            return Response(request.request_id, self.backend.public_key)
        assert request.sign is not None
        async with self._lock:
            try:
                signature = await asyncio.to_thread(self.guard.sign, request.sign,
                                                    self.backend.sign)
            except SignerError as e:
                self.refused_count += 1
                log.warning("refused %s at height %d round %d: %s",
                            request.sign.step.name.lower(), request.sign.height,
                            request.sign.round, e.message)
                return Response(request.request_id, error=e)
        self.signed_count += 1
        self.served_count += 1
        log.debug("signed %s at height %d round %d", request.sign.step.name.lower(),
                  request.sign.height, request.sign.round)
        return Response(request.request_id, signature)
