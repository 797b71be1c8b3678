"""The Python SDK: a JSON-RPC client for integrators, scripts, the CLI and tests.

`Client` is synchronous (standard library only); `AsyncClient` uses aiohttp. Both
raise RpcClientError carrying the node's error code and reason, so a caller can act
on a rejection without parsing messages.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp

from chain.crypto import KeyPair
from chain.tx import Transaction, make_transaction


class RpcClientError(Exception):
    """The node answered with a JSON-RPC error, or could not be reached."""

    def __init__(self, code: int, reason: str, message: str,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.data = data or {}


def _unwrap(doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise RpcClientError(0, "bad_response", f"unexpected response {doc!r}")
    if "error" in doc:
        err = doc["error"]
        data = err.get("data") or {}
        raise RpcClientError(err.get("code", 0), data.get("reason", "error"),
                             err.get("message", ""), data)
    return doc.get("result")


class Client:
    """Synchronous JSON-RPC client of one node."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/rpc"):
            self.url += "/rpc"
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                           "params": params}).encode()
        request = urllib.request.Request(self.url, data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                doc = json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                doc = json.loads(e.read())
            except ValueError:
                raise RpcClientError(e.code, "http_error", str(e)) from e
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise RpcClientError(0, "unreachable", f"cannot reach {self.url}: {e}") from e
        return _unwrap(doc)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("node_status")
        return result

    def next_nonce(self, address: bytes) -> int:
        return int(self.call("state_account", address=address.hex())["next_nonce"])

    def submit(self, tx: Transaction, *, wait: str | None = None,
               timeout_s: float | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"tx": tx.encoded.hex()}
        if wait:
            params["wait"] = wait
            if timeout_s is not None:
                params["timeout_s"] = timeout_s
        result: dict[str, Any] = self.call("tx_submit", **params)
        return result

    def get_tx(self, tx_hash: bytes | str) -> dict[str, Any]:
        value = tx_hash.hex() if isinstance(tx_hash, bytes) else tx_hash
        result: dict[str, Any] = self.call("tx_get", hash=value)
        return result

    def wait_final(self, tx_hash: bytes | str, timeout_s: float = 30.0,
                   poll_s: float = 0.1) -> dict[str, Any]:
        """Poll tx_get until the tx is final or rejected; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.get_tx(tx_hash)
            if info["status"] in ("final", "rejected"):
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction still {info['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def transfer(self, key: KeyPair, to: bytes, amount: int, asset: str, *,
                 chain_id: str | None = None, nonce: int | None = None,
                 wait: str | None = "final") -> dict[str, Any]:
        """Sign and submit a transfer from `key`'s account."""
        chain_id = chain_id or self.status()["chain_id"]
        if nonce is None:
            nonce = self.next_nonce(key.address)
        tx = make_transaction(chain_id, key, nonce, "transfer",
                              {"to": to, "asset": asset, "amount": amount})
        return self.submit(tx, wait=wait)


class AsyncClient:
    """Asynchronous JSON-RPC client of one node (aiohttp)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/rpc"):
            self.url += "/rpc"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> AsyncClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, doc: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self.url, json=doc) as response:
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RpcClientError(0, "unreachable", f"cannot reach {self.url}: {e}") from e

    async def call(self, method: str, **params: Any) -> Any:
        return _unwrap(await self._post({"jsonrpc": "2.0", "id": next(self._ids),
                                         "method": method, "params": params}))

    async def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Several calls in one request; results (or RpcClientError objects) in order."""
        docs = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)]
        answers = await self._post(docs)
        by_id = {a.get("id"): a for a in answers} if isinstance(answers, list) else {}
        results: list[Any] = []
        for i in range(len(calls)):
            try:
                results.append(_unwrap(by_id.get(i)))
            except RpcClientError as e:
                results.append(e)
        return results

    async def submit(self, tx: Transaction, *, wait: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"tx": tx.encoded.hex()}
        if wait:
            params["wait"] = wait
        result: dict[str, Any] = await self.call("tx_submit", **params)
        return result

    async def submit_batch(self, txs: list[Transaction]) -> list[dict[str, Any]]:
        """Submit many transactions in one call (tx_submit_batch)."""
        result: list[dict[str, Any]] = await self.call(
            "tx_submit_batch", txs=[tx.encoded.hex() for tx in txs])
        return result
