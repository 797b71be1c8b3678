"""JSON-RPC clients of a node: `Client` (synchronous, standard library) and
`AsyncClient` (aiohttp, with WebSocket subscriptions that resume after a reconnect).

Both raise the typed exceptions of sdk.errors carrying the node's error code
and reason, so a caller acts on a rejection without parsing messages.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from chain.block import BlockHeader
from chain.crypto import KeyPair
from chain.tx import Transaction
from chain.vote import ValidatorSet
from ledger.keys import get_account_key
from sdk.errors import (
    TIMEOUT_CODE,
    RpcClientError,
    RpcTimeoutError,
    UnreachableError,
    error_from_json,
    unwrap,
)
from sdk.proof import ProvenTx, verify_block, verify_state, verify_tx
from sdk.tx import build_tx, sign_tx

DONE = ("final", "rejected")
WAIT_MARGIN_S = 5.0
TX_NOTIFICATION_TIMEOUT_S = 60.0
"""How long a `tx` subscription waits for its one notification unless told otherwise."""


def _base_url(url: str) -> str:
    return url.rstrip("/").removesuffix("/rpc")


def _still_waiting(info: dict[str, Any], timeout_s: float) -> RpcTimeoutError:
    """The error of a wait for finality that ran out, with the tx's status as data."""
    reason = f": {info['waiting_for']}" if info.get("waiting_for") else ""
    return RpcTimeoutError(TIMEOUT_CODE, "timeout", f"transaction {info.get('hash')} still "
                           f"{info.get('status')} after {timeout_s} s{reason}", {"status": info})


def _settled(info: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """`info` when the tx is final or rejected; RpcTimeoutError while it still waits."""
    if info["status"] in DONE:
        return info
    raise _still_waiting(info, timeout_s)


def _tx_params(tx: Transaction, wait: str | None, timeout_s: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {"tx": tx.encoded.hex()}
    if wait:
        params["wait"] = wait
        if timeout_s is not None:
            params["timeout_s"] = timeout_s
    return params


class Client:
    """Synchronous client of one node (no dependency beyond the standard library)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0,
                 admin_token: str | None = None) -> None:
        self.base_url = _base_url(url)
        self.url = self.base_url + "/rpc"
        self.timeout_s = timeout_s
        self.admin_token = admin_token
        self._ids = itertools.count(1)
        self._chain_id: str | None = None

    def call(self, method: str, _timeout_s: float | None = None, **params: Any) -> Any:
        """Call `method` with named params; return its result or raise its typed error."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                           "params": params}).encode()
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        request = urllib.request.Request(self.url, data=body, headers=headers)
        timeout_s = _timeout_s or self.timeout_s
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                doc = json.loads(e.read())
            except ValueError:
                raise UnreachableError(e.code, "http_error", str(e)) from e
        except TimeoutError as e:
            raise RpcTimeoutError(TIMEOUT_CODE, "timeout", f"{self.url} did not answer "
                                  f"{method} within {timeout_s} s") from e
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UnreachableError(0, "unreachable", f"cannot reach {self.url}: {e}") from e
        return unwrap(doc)

    # ------------------------------------------------------------------ reads

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("node_status")
        return result

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.status()["chain_id"])
        return self._chain_id

    def account(self, address: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self.call("state_account", address=address.hex())
        return result

    def next_nonce(self, address: bytes) -> int:
        return int(self.account(address)["next_nonce"])

    def get_tx(self, tx_hash: bytes | str) -> dict[str, Any]:
        value = tx_hash.hex() if isinstance(tx_hash, bytes) else tx_hash
        result: dict[str, Any] = self.call("tx_get", hash=value)
        return result

    def get_block(self, height: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call("chain_block", height=height)
        return result

    # ------------------------------------------------------------------ transactions

    def submit(self, tx: Transaction, *, wait: str | None = None,
               timeout_s: float | None = None) -> dict[str, Any]:
        """tx_submit: the status at once, or (wait="final") once final or rejected."""
        http_timeout = max(self.timeout_s, (timeout_s or 30.0) + WAIT_MARGIN_S)
        result: dict[str, Any] = self.call("tx_submit", http_timeout,
                                           **_tx_params(tx, wait, timeout_s))
        return result

    def submit_and_wait(self, tx: Transaction, timeout_s: float = 30.0,
                        on_wait: Callable[[dict[str, Any]], None] | None = None
                        ) -> dict[str, Any]:
        """Submit, then wait until final or rejected; RpcTimeoutError if still pending."""
        info = self.submit(tx)
        if info["status"] in DONE:
            return info
        return self.wait_final(tx.hash, timeout_s, on_wait=on_wait)

    def wait_final(self, tx_hash: bytes | str, timeout_s: float = 30.0, poll_s: float = 0.1,
                   on_wait: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll tx_get until the tx is final or rejected; RpcTimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.get_tx(tx_hash)
            if info["status"] in DONE:
                return info
            if time.monotonic() > deadline:
                raise _still_waiting(info, timeout_s)
            if on_wait is not None:
                on_wait(info)
            time.sleep(poll_s)

    def build(self, key: KeyPair, tx_type: str, fields: Mapping[str, Any], *,
              nonce: int | None = None, sender: bytes | None = None) -> Transaction:
        """A transaction of any type from `key`'s account, signed by `key`."""
        sender = sender or key.address
        nonce = self.next_nonce(sender) if nonce is None else nonce
        return sign_tx(build_tx(self.chain_id, tx_type, fields, sender=sender, nonce=nonce),
                       key)

    def send(self, key: KeyPair, tx_type: str, fields: Mapping[str, Any], *,
             nonce: int | None = None, wait: str | None = "final",
             timeout_s: float = 30.0) -> dict[str, Any]:
        """Build, sign and submit; by default answer once final or rejected, and raise
        RpcTimeoutError if the tx is still pending after `timeout_s`."""
        tx = self.build(key, tx_type, fields, nonce=nonce)
        if not wait:
            return self.submit(tx)
        return _settled(self.submit(tx, wait=wait, timeout_s=timeout_s), timeout_s)

    def transfer(self, key: KeyPair, to: bytes, amount: int, asset: str, *,
                 chain_id: str | None = None, nonce: int | None = None,
                 wait: str | None = "final", timeout_s: float = 30.0) -> dict[str, Any]:
        """Sign and submit a transfer from `key`'s account (waiting as `send` does)."""
        if chain_id is not None:
            self._chain_id = chain_id
        return self.send(key, "transfer", {"to": to, "asset": asset, "amount": amount},
                         nonce=nonce, wait=wait, timeout_s=timeout_s)

    # ------------------------------------------------------------------ proofs

    def verified_account_record(self, address: bytes, validator_set: ValidatorSet
                                ) -> bytes | None:
        """The account record bytes, proven against a block certified by `validator_set`."""
        proof = self.call("state_proof", key=get_account_key(address).hex())
        header = self.verified_header(proof["height"], validator_set)
        return verify_state(proof, header)

    def verified_tx(self, tx_hash: bytes, validator_set: ValidatorSet) -> ProvenTx:
        """The transaction and its result code, proven against a block certified by
        `validator_set`; `.succeeded` says whether it was applied or refused."""
        proof = self.call("tx_proof", hash=bytes(tx_hash).hex())
        header = self.verified_header(proof["height"], validator_set)
        return verify_tx(proof, header)

    def verified_header(self, height: int, validator_set: ValidatorSet) -> BlockHeader:
        return verify_block(self.get_block(height), validator_set, self.chain_id)


class AsyncClient:
    """Asynchronous client of one node (aiohttp); use `async with` or call close()."""

    def __init__(self, url: str, *, timeout_s: float = 30.0,
                 admin_token: str | None = None) -> None:
        self.base_url = _base_url(url)
        self.url = self.base_url + "/rpc"
        self.timeout_s = timeout_s
        self.admin_token = admin_token
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._chain_id: str | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token \
                else None
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def _post(self, doc: Any, timeout_s: float | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            async with self.session.post(self.url, json=doc, timeout=timeout) as response:
                return await response.json(content_type=None)
        except TimeoutError as e:
            raise RpcTimeoutError(TIMEOUT_CODE, "timeout", f"{self.url} did not answer within "
                                  f"{timeout.total} s") from e
        except (aiohttp.ClientError, ValueError) as e:
            raise UnreachableError(0, "unreachable", f"cannot reach {self.url}: {e!r}") from e

    async def call(self, method: str, _timeout_s: float | None = None, **params: Any) -> Any:
        return unwrap(await self._post({"jsonrpc": "2.0", "id": next(self._ids),
                                        "method": method, "params": params}, _timeout_s))

    async def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Several calls in one request; results (or RpcClientError objects) in order."""
        docs = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)]
        answers = await self._post(docs)
        if isinstance(answers, dict) and "error" in answers:
            raise error_from_json(answers["error"])
        by_id = {a.get("id"): a for a in answers} if isinstance(answers, list) else {}
        results: list[Any] = []
        for i in range(len(calls)):
            try:
                results.append(unwrap(by_id.get(i)))
            except RpcClientError as e:
                results.append(e)
        return results

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("node_status")
        return result

    async def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str((await self.status())["chain_id"])
        return self._chain_id

    async def next_nonce(self, address: bytes) -> int:
        return int((await self.call("state_account", address=address.hex()))["next_nonce"])

    async def get_tx(self, tx_hash: bytes | str) -> dict[str, Any]:
        value = tx_hash.hex() if isinstance(tx_hash, bytes) else tx_hash
        result: dict[str, Any] = await self.call("tx_get", hash=value)
        return result

    async def submit(self, tx: Transaction, *, wait: str | None = None,
                     timeout_s: float | None = None) -> dict[str, Any]:
        http_timeout = max(self.timeout_s, (timeout_s or 30.0) + WAIT_MARGIN_S)
        result: dict[str, Any] = await self.call("tx_submit", http_timeout,
                                                 **_tx_params(tx, wait, timeout_s))
        return result

    async def submit_and_wait(self, tx: Transaction, timeout_s: float = 30.0
                              ) -> dict[str, Any]:
        """Submit and answer once final or rejected (the node waits; no polling);
        RpcTimeoutError if the tx is still pending after `timeout_s`."""
        return _settled(await self.submit(tx, wait="final", timeout_s=timeout_s), timeout_s)

    async def submit_batch(self, txs: list[Transaction]) -> list[dict[str, Any]]:
        """Submit many transactions in one call (tx_submit_batch)."""
        result: list[dict[str, Any]] = await self.call(
            "tx_submit_batch", txs=[tx.encoded.hex() for tx in txs])
        return result

    async def build(self, key: KeyPair, tx_type: str, fields: Mapping[str, Any], *,
                    nonce: int | None = None, sender: bytes | None = None) -> Transaction:
        sender = sender or key.address
        nonce = await self.next_nonce(sender) if nonce is None else nonce
        return sign_tx(build_tx(await self.chain_id(), tx_type, fields, sender=sender,
                                nonce=nonce), key)

    async def send(self, key: KeyPair, tx_type: str, fields: Mapping[str, Any], *,
                   nonce: int | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
        """Build, sign, submit and wait until final or rejected."""
        tx = await self.build(key, tx_type, fields, nonce=nonce)
        return await self.submit_and_wait(tx, timeout_s)

    def subscribe(self, topic: str, *, from_height: int | None = None,
                  tx_hash: bytes | str | None = None, filter: dict[str, str] | None = None,
                  reconnect_timeout_s: float = 60.0,
                  timeout_s: float | None = None) -> Subscription:
        """An async iterator of notifications that reconnects and resumes by itself.

        `timeout_s` bounds the wait for each notification (RpcTimeoutError). By default
        a `tx` subscription waits TX_NOTIFICATION_TIMEOUT_S, and `blocks` and `events`
        wait as long as the node answers pings (a stream has no last item)."""
        params: dict[str, Any] = {"topic": topic}
        if tx_hash is not None:
            params["hash"] = tx_hash.hex() if isinstance(tx_hash, bytes) else tx_hash
        if filter:
            params["filter"] = filter
        if timeout_s is None and topic == "tx":
            timeout_s = TX_NOTIFICATION_TIMEOUT_S
        return Subscription(self, params, from_height, reconnect_timeout_s, timeout_s)


class Subscription:
    """Notifications of one subscription, in height order, across reconnects.

    After a dropped link, a node restart or a `lagged` notice, it subscribes again
    from the height after the last one it handed out, so nothing is missed or
    repeated. `reconnects` and `lagged` count what happened.
    """

    def __init__(self, client: AsyncClient, params: dict[str, Any], from_height: int | None,
                 reconnect_timeout_s: float, timeout_s: float | None) -> None:
        self.client = client
        self.params = params
        self.next_height = from_height
        self.reconnect_timeout_s = reconnect_timeout_s
        self.timeout_s = timeout_s
        """The longest wait for one notification; None waits while the node answers pings."""
        self.reconnects = 0
        self.lagged = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._sub_id: str | None = None
        self._backlog: deque[dict[str, Any]] = deque()
        """Notifications of this subscription that came before the subscribe answer."""
        self._done = False
        self._subscribed_once = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def close(self) -> None:
        self._done = True
        await self._drop()

    async def _drop(self) -> None:
        self._backlog.clear()
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close()

    async def __anext__(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await self._next_result()
        except RpcTimeoutError:
            raise
        except TimeoutError as e:
            await self._drop()  # the next call subscribes again and resumes
            raise await self._timeout_error() from e
        if result is None:
            raise StopAsyncIteration
        return result

    async def _next_result(self) -> dict[str, Any] | None:
        while not self._done:
            if self._ws is None:
                await self._connect()
            result = self._backlog.popleft() if self._backlog else await self._receive()
            if result is not None and await self._is_handed_out(result):
                return result
        return None

    async def _receive(self) -> dict[str, Any] | None:
        """The next notification of this subscription on the socket, None if it closed."""
        assert self._ws is not None
        message = await self._ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            await self._drop()  # closed or broken: reconnect and resume
            self.reconnects += 1
            return None
        return _notification_of(json.loads(message.data), self._sub_id)

    async def _is_handed_out(self, result: dict[str, Any]) -> bool:
        """Advance past `result`; False for a `lagged` notice, which resubscribes."""
        if result.get("type") == "lagged":
            self.lagged += 1
            self.next_height = int(result["resume_from_height"])
            await self._drop()
            return False
        if "height" in result and result.get("type") in ("block", "events"):
            self.next_height = int(result["height"]) + 1
        if result.get("type") == "tx":
            self._done = True
            await self._drop()
        return True

    async def _timeout_error(self) -> RpcTimeoutError:
        topic = self.params["topic"]
        message = f"no notification within {self.timeout_s} s on the {topic} subscription"
        if topic != "tx":
            return RpcTimeoutError(TIMEOUT_CODE, "timeout",
                                   f"{message} (waiting for height {self.next_height})")
        tx_hash = self.params.get("hash")
        try:
            info = await self.client.get_tx(str(tx_hash))
        except RpcClientError as e:
            return RpcTimeoutError(TIMEOUT_CODE, "timeout", f"{message}: transaction "
                                   f"{tx_hash}, whose status could not be read ({e.reason})")
        waiting = f": {info['waiting_for']}" if info.get("waiting_for") else ""
        return RpcTimeoutError(TIMEOUT_CODE, "timeout", f"{message}: transaction {tx_hash} "
                               f"is {info.get('status')}{waiting}", {"status": info})

    async def _connect(self) -> None:
        """Subscribe. The first time, fail at once; later (resuming), retry with backoff."""
        deadline = time.monotonic() + self.reconnect_timeout_s
        delay_s = 0.1
        while True:
            try:
                await self._subscribe()
                self._subscribed_once = True
                return
            except (aiohttp.ClientError, OSError, RpcClientError) as e:
                await self._drop()
                if not self._subscribed_once:
                    if isinstance(e, RpcClientError):
                        raise
                    raise UnreachableError(0, "unreachable", f"cannot reach "
                                           f"{self.client.base_url}/ws: {e!r}") from e
                if time.monotonic() + delay_s > deadline:
                    raise UnreachableError(0, "unreachable", f"cannot resubscribe within "
                                           f"{self.reconnect_timeout_s} s: {e!r}") from e
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    async def _subscribe(self) -> None:
        """Open a socket and subscribe, within the client's timeout_s."""
        url = self.client.base_url + "/ws"
        try:
            async with asyncio.timeout(self.client.timeout_s):
                answer = await self._open_and_subscribe(url)
        except TimeoutError as e:
            raise RpcTimeoutError(TIMEOUT_CODE, "timeout", f"{url} did not answer subscribe "
                                  f"within {self.client.timeout_s} s") from e
        self._sub_id = answer["subscription"]
        if answer.get("from_height") is not None and self.next_height is None:
            self.next_height = int(answer["from_height"])

    async def _open_and_subscribe(self, url: str) -> dict[str, Any]:
        self._ws = ws = await self.client.session.ws_connect(
            url, timeout=aiohttp.ClientWSTimeout(ws_close=5.0), heartbeat=30.0)
        params = dict(self.params)
        if self.next_height is not None:
            params["from_height"] = self.next_height
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": params})
        # A node may notify before it answers (older govchain did): keep what comes
        # first, by subscription id, until the answer says which id is ours.
        early: dict[Any, list[Any]] = {}
        while True:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise UnreachableError(0, "unreachable",
                                       f"{url} closed the WebSocket before answering subscribe")
            doc = json.loads(message.data)
            if doc.get("id") == 1:
                break
            params = doc.get("params")
            if doc.get("method") == "subscription" and isinstance(params, dict):
                early.setdefault(params.get("subscription"), []).append(params.get("result"))
        answer: dict[str, Any] = unwrap(doc)
        self._backlog = deque(r for r in early.get(answer["subscription"], [])
                              if isinstance(r, dict))
        return answer


def _notification_of(doc: Any, sub_id: str | None) -> dict[str, Any] | None:
    """The result of `doc` if it is a notification of subscription `sub_id`."""
    params = doc.get("params") if isinstance(doc, dict) and \
        doc.get("method") == "subscription" else None
    if not isinstance(params, dict) or params.get("subscription") != sub_id:
        return None
    result = params.get("result")
    return result if isinstance(result, dict) else None
