"""The node's side of the signer link: one connection, redialled with backoff.

The consensus driver hands over each message to sign and is told the signed message
later (or never); it never waits for the signer. While no signer is connected, nothing
is signed and requests are dropped at once: consensus goes on receiving, timing out
and moving rounds, and signs again as soon as a signer with the expected key answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from chain.crypto import PublicKey, is_valid_signature
from chain.vote import Proposal, Vote
from node.signer.protocol import (
    FRAME_HEADER,
    GET_PUBLIC_KEY,
    SIGN,
    MalformedRequestError,
    Request,
    Response,
    SignRequest,
    decode_frame_length,
)
from node.signer.server import ListenAddress

log = logging.getLogger("govchain.signer.client")
T = TypeVar("T")

CONNECT_TIMEOUT_S = 2.0
RESPONSE_TIMEOUT_S = 5.0
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
MAX_PENDING = 16
"""Messages waiting for the signer at most; consensus asks for one or two per step."""


def build_client_tls(cert: Path, key: Path, signer_cert: Path) -> ssl.SSLContext:
    """TLS 1.3 with our certificate, trusting only the signer's (pinned) certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # the pinned certificate is the identity
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(signer_cert)
    context.load_cert_chain(cert, key)
    return context


class RemoteSigner:
    """Signs through a signer process; `on_signed` gets each signed message."""

    def __init__(self, address: ListenAddress, chain_id: str, public_key: PublicKey,
                 tls: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.chain_id = chain_id
        self.public_key = public_key
        self.tls = tls
        self.on_signed: Callable[[Proposal | Vote], None] = lambda message: None
        self.connected = asyncio.Event()
        """Set while a signer with our key is connected."""
        self._pending: asyncio.Queue[Proposal | Vote] = asyncio.Queue(MAX_PENDING)
        self._next_id = 1
        self.signed_count = 0
        self.refused_count = 0
        self.dropped_count = 0
        self.failed_connects = 0

    def submit(self, message: Proposal | Vote) -> None:
        """Ask for `message` to be signed; never blocks. Dropped (logged) when no signer
        is connected or too many wait."""
        if not self.connected.is_set():
            self.dropped_count += 1
            log.warning("no signer connected: not signing %s at height %d round %d",
                        _describe(message), message.height, message.round)
            return
        try:
            self._pending.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_count += 1
            log.warning("signer queue full: not signing %s at height %d round %d",
                        _describe(message), message.height, message.round)

    async def run(self) -> None:
        """Connect, serve requests, reconnect with backoff; until cancelled."""
        backoff = BACKOFF_FIRST_S
        report_failure = True  # once at start, then once per link lost
        while True:
            try:
                reader, writer = await self._connect()
            except (OSError, TimeoutError, ssl.SSLError, MalformedRequestError,
                    asyncio.IncompleteReadError) as e:
                self.failed_connects += 1
                if report_failure:
                    log.warning("signer %s unreachable (retrying every %.0f s at most; "
                                "nothing is signed meanwhile): %s", self.address,
                                BACKOFF_MAX_S, e or type(e).__name__)
                    report_failure = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            except WrongSignerKeyError as e:
                self.failed_connects += 1
                log.error("%s", e)
                await asyncio.sleep(BACKOFF_MAX_S)
                continue
            log.info("signer %s connected", self.address)
            report_failure, backoff = True, BACKOFF_FIRST_S
            self.connected.set()
            try:
                await self._serve(reader, writer)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError,
                    MalformedRequestError) as e:
                log.warning("signer %s connection lost: %s", self.address,
                            e or type(e).__name__)
            finally:
                self.connected.clear()
                while not self._pending.empty():
                    self._pending.get_nowait()
                    self.dropped_count += 1
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.unix_path:
            opening = asyncio.open_unix_connection(self.address.unix_path)
        else:
            opening = asyncio.open_connection(self.address.host, self.address.port,
                                              ssl=self.tls)
        reader, writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT_S)
        try:
            response = await self._call(reader, writer, Request(self._take_id(),
                                                                GET_PUBLIC_KEY))
        except BaseException:
            writer.close()
            raise
        if response.error is not None or response.result != self.public_key:
            writer.close()
            raise WrongSignerKeyError(
                f"signer {self.address} holds key {response.result.hex() or '?'}, not the "
                f"configured signer_public_key {self.public_key.hex()}: not signing with it")
        return reader, writer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send requests one at a time; a reader task takes the responses and notices a
        signer that closes the link while we are idle."""
        responses: asyncio.Queue[Response] = asyncio.Queue()
        reading = asyncio.create_task(_read_responses(reader, responses))
        try:
            while True:
                message = await _first_of(self._pending.get(), reading)
                request = Request(self._take_id(), SIGN,
                                  SignRequest.of_message(self.chain_id, message))
                writer.write(request.encode())
                await writer.drain()
                response = await asyncio.wait_for(_first_of(responses.get(), reading),
                                                  RESPONSE_TIMEOUT_S)
                if response.request_id not in (request.request_id, 0):
                    raise MalformedRequestError(f"response to request {response.request_id},"
                                                f" expected {request.request_id}")
                self._on_response(message, request.sign, response)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    def _on_response(self, message: Proposal | Vote, request: SignRequest | None,
                     response: Response) -> None:
        assert request is not None
        if response.error is not None:
            self.refused_count += 1
            log.warning("signer refused %s at height %d round %d: %s (%s)",
                        _describe(message), message.height, message.round,
                        response.error.message, response.error.code)
            return
        signature = response.result
        if not is_valid_signature(self.public_key, request.get_signing_bytes(), signature):
            raise MalformedRequestError("the signer's signature does not verify")
        self.signed_count += 1
        self.on_signed(dataclasses.replace(message, signature=signature))

    async def _call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: Request) -> Response:
        writer.write(request.encode())
        await writer.drain()
        return await asyncio.wait_for(_read_response(reader), RESPONSE_TIMEOUT_S)

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id


class WrongSignerKeyError(Exception):
    """Raised when the signer reached holds another key than the node's configured one."""


async def _read_response(reader: asyncio.StreamReader) -> Response:
    header = await reader.readexactly(FRAME_HEADER.size)
    return Response.decode(await reader.readexactly(decode_frame_length(header)))


async def _read_responses(reader: asyncio.StreamReader,
                          responses: asyncio.Queue[Response]) -> Response:
    """Queue each response until the link ends; then raise why it ended."""
    while True:
        responses.put_nowait(await _read_response(reader))


async def _first_of(awaitable: Awaitable[T], reading: asyncio.Task[Response]) -> T:
    """`awaitable`'s result, or the reader's error if the link ends first."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({task, reading}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    reading.result()  # raises the reason the link ended
    raise ConnectionResetError("the signer closed the connection")


def _describe(message: Proposal | Vote) -> str:
    if isinstance(message, Proposal):
        return "proposal"
    return "prevote" if message.kind == 1 else "precommit"
