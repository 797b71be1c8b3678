"""Schema-driven fuzzing of the JSON-RPC server over a real socket.

Hypothesis strategies are generated from the node's own OpenRPC document: params that
fit each method's schemas, params that break them, unknown params, positional forms,
broken envelopes, batches and raw bytes. Every answer must be well-formed JSON-RPC,
every result must fit the method's result schema, and afterwards the node is healthy
and its state unchanged. The node runs in its own thread and event loop so that
hypothesis drives it from a plain synchronous test.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.crypto import KeyPair
from cli.service import NodeService
from tests.node.conftest import make_genesis, make_home
from tests.node.test_rpc import ALICE, BOB

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=12)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that fit a JSON schema of the subset node/openrpc.py uses."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "oneOf" in schema:
        return st.one_of([from_schema(s) for s in schema["oneOf"]])
    kind = schema.get("type")
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**64)), schema.get("maximum", 2**64))
    if kind == "number":
        low = schema.get("exclusiveMinimum", schema.get("minimum", -1e9))
        return st.floats(low, schema.get("maximum", 1e9), exclude_min="exclusiveMinimum"
                         in schema, allow_nan=False)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) < 300)
        return st.text(max_size=schema.get("maxLength", 40))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=4)
    if kind == "object":
        properties = schema.get("properties", {})
        return st.fixed_dictionaries({}, optional={k: from_schema(v)
                                                   for k, v in properties.items()})
    return ANY_JSON


def fits(schema: dict[str, Any], value: Any) -> bool:
    """A shallow check of a result against its schema: type and required keys."""
    if "oneOf" in schema:
        return any(fits(s, value) for s in schema["oneOf"])
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema.get("type")
    checks = {"object": lambda: isinstance(value, dict)
              and all(k in value for k in schema.get("required", ())),
              "array": lambda: isinstance(value, list),
              "string": lambda: isinstance(value, str),
              "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
              "number": lambda: isinstance(value, int | float),
              "boolean": lambda: isinstance(value, bool),
              "null": lambda: value is None}
    return checks[kind]() if kind in checks else True


class NodeThread:
    """A node in its own thread and event loop."""

    def __init__(self, home) -> None:
        self.home = home
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.service: NodeService | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.service = NodeService(self.home)
        self.loop.run_until_complete(self.service.start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.service.stop())
        self.loop.close()

    def start(self) -> str:
        self.thread.start()
        assert self.ready.wait(30), "node did not start"
        assert self.service is not None
        return self.service.rpc_url

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory) -> Iterator[tuple[str, int, http.client.HTTPConnection]]:
    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path_factory.mktemp("fuzz") / "node0", make_genesis([validator]),
                     validator, rpc_rate_limit_per_s=0.0, rpc_admin_allow_local=False,
                     log_level="WARNING")
    runner = NodeThread(home)
    url = runner.start()
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        yield host, int(port), connection
    finally:
        connection.close()
        runner.stop()


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", "/rpc", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def call(connection, method: str, **params: Any) -> Any:
    _status, body = post(connection, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                "params": params}).encode())
    return json.loads(body)["result"]


def check_response(doc: Any, methods: dict[str, dict[str, Any]], method: Any) -> None:
    assert isinstance(doc, dict) and doc.get("jsonrpc") == "2.0", doc
    assert ("result" in doc) != ("error" in doc), doc
    assert "id" in doc
    if "error" in doc:
        error = doc["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str), doc
        assert isinstance(error["data"]["reason"], str), doc
        assert error["code"] != -32603, f"internal error for {method}: {doc}"
    elif method in methods:
        assert fits(methods[method]["result"]["schema"], doc["result"]), (method, doc)


def requests(methods: dict[str, dict[str, Any]]) -> st.SearchStrategy[tuple[Any, bytes]]:
    """(method name or None, request body) pairs: valid-looking and broken ones."""
    def named(method: dict[str, Any]) -> st.SearchStrategy[Any]:
        fitting = st.fixed_dictionaries({}, optional={
            p["name"]: from_schema(p["schema"]) for p in method["params"]})
        random = st.dictionaries(st.sampled_from([p["name"] for p in method["params"]]
                                                 or ["x"]), ANY_JSON, max_size=3)
        positional = st.lists(ANY_JSON, max_size=len(method["params"]) + 1)
        return st.one_of(fitting, fitting, random, positional, ANY_JSON)

    def envelope(method: dict[str, Any]) -> st.SearchStrategy[tuple[Any, bytes]]:
        return named(method).map(lambda params: (method["name"], json.dumps(
            {"jsonrpc": "2.0", "id": 7, "method": method["name"], "params": params}).encode()))

    per_method = [envelope(m) for m in methods.values()]
    broken = st.one_of(
        ANY_JSON.map(lambda doc: (None, json.dumps(doc).encode())),
        st.binary(max_size=200).map(lambda raw: (None, raw)),
        st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
                               "method": st.sampled_from(list(methods)) | st.text(max_size=10)
                               | ANY_JSON, "id": ANY_JSON, "params": ANY_JSON}).map(
            lambda doc: (None, json.dumps(doc).encode())),
    )
    single = st.one_of(*per_method, broken)
    batch = st.lists(single, min_size=1, max_size=5).map(
        lambda items: ("batch", b"[" + b",".join(body for _, body in items) + b"]"))
    return st.one_of(single, single, single, batch)


def test_fuzz_every_answer_is_well_formed_and_state_unchanged(fuzz_node):
    _host, _port, connection = fuzz_node
    document = call(connection, "rpc_discover")
    methods = {m["name"]: m for m in document["methods"]}
    assert all(not m.get("x-undocumented") for m in methods.values())
    accounts_before = [call(connection, "state_account", address=k.address.hex())
                       for k in (ALICE, BOB)]
    counts = {"requests": 0, "errors": 0, "results": 0}

    @settings(max_examples=2000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests(methods))
    def fuzz(request: tuple[Any, bytes]) -> None:
        method, body = request
        status, raw = post(connection, body)
        counts["requests"] += 1
        assert status in (200, 204, 413), (status, raw)
        if status == 204:
            return
        doc = json.loads(raw)
        if isinstance(doc, list):
            for item in doc:
                check_response(item, methods, None)
        else:
            check_response(doc, methods, method if method != "batch" else None)
            counts["errors"] += "error" in doc
            counts["results"] += "result" in doc

    fuzz()
    print(counts)
    assert counts["requests"] >= 2000 and counts["errors"] > 100 and counts["results"] > 100
    assert get(connection, "/health")[0] == 200
    accounts_after = [call(connection, "state_account", address=k.address.hex())
                      for k in (ALICE, BOB)]
    assert accounts_after == accounts_before
    assert call(connection, "node_status")["mempool_size"] == 0
