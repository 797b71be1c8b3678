"""docs/rpc.md stays true: every example request in it runs against a real node.

Each ```json block holding a request (an object with "method", or a batch of them) is
followed by a ```json block with the documented response. The test sends the requests
in document order to one node and checks that each answer has exactly the documented
result keys (recursively for objects, item by item for arrays) or the documented
error code and reason. Placeholders such as <TX_HEX> stand for values only known at
run time: signed transactions from ACCOUNT_KEYS and the validator, their hashes,
addresses, a block hash, a state key. The node runs the devnet's ledger genesis (asset
KGS, namespace licenses, the dev roles), as `govchain devnet up` does.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chain.crypto import KeyPair
from chain.tx import Transaction, make_transaction
from cli.ledger import add_dev_ledger
from ledger.keys import get_account_key
from rpc.dispatcher import RpcDispatcher
from rpc.methods.chain import NodeApi
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    CHAIN_ID,
    make_genesis,
    make_home,
    running_node,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "rpc.md"
ALICE, BOB, WRITER = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1], ACCOUNT_KEYS[3]
VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
NOBODY = KeyPair.from_seed(b"\x7f" * 32)
# Keys whose value is free-form (maps keyed by data, not by the API): not compared.
FREE_FORM = {"balances", "fields", "attributes"}


def transfer(nonce: int, amount: int) -> Transaction:
    return make_transaction(CHAIN_ID, ALICE, nonce, "transfer",
                            {"to": BOB.address, "asset": "GOV", "amount": amount})


TXS = {
    "TX": transfer(0, 250),  # final
    "FAILING_TX": transfer(1, BALANCE * 10),  # in a block, fails: insufficient_balance
    "BATCH_TX_1": transfer(2, 1),
    "BATCH_TX_2": transfer(3, 1),
    "GAP_TX": transfer(100, 1),  # waits for nonces 4..99
    "STALE_TX": transfer(0, 1),  # nonce 0 is used: refused at admission
    # account 3 writes namespace licenses (dev ledger)
    "RECORD_TX": make_transaction(CHAIN_ID, WRITER, 0, "record_put", {
        "namespace": "licenses", "key": "vasp-0001", "value": b"Crypto Exchange LLC",
        "metadata": {"class": "A"}}),
    # the only validator proposes; its approval is a quorum, so the proposal passes
    "PROPOSAL_TX": make_transaction(CHAIN_ID, VALIDATOR, 0, "propose", {
        "action": "grant_role", "args": {"role": "writer", "scope": "licenses",
                                         "address": BOB.address},
        "expiry_height": 1000}),
}


@pytest.fixture
async def doc_node(tmp_path):
    """One validator with the devnet's ledger genesis (KGS, licenses, dev roles)."""
    genesis = add_dev_ledger(make_genesis([VALIDATOR]), list(ACCOUNT_KEYS), BALANCE)
    async with running_node(make_home(tmp_path / "node0", genesis, VALIDATOR)) as running:
        yield running


def substitute(text: str, running: Any) -> str:
    values = {"ADDRESS": ALICE.address.hex(), "UNKNOWN_ADDRESS": NOBODY.address.hex(),
              "BLOCK_HASH": running.node.store.head_hash.hex(),
              "VALIDATOR_ADDRESS": VALIDATOR.address.hex(),
              "ACCOUNT_STATE_KEY": get_account_key(ALICE.address).hex()}
    for name, tx in TXS.items():
        values[f"{name}_HEX"] = tx.encoded.hex()
        values[f"{name}_HASH"] = tx.hash.hex()

    def replace(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"unknown placeholder <{match.group(1)}> in rpc.md"
        return values[match.group(1)]

    return re.sub(r"<([A-Z0-9_]+)>", replace, text)


def json_blocks() -> list[str]:
    return re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)


def is_request(doc: Any) -> bool:
    if isinstance(doc, list):
        return bool(doc) and all(isinstance(d, dict) and "method" in d for d in doc)
    return isinstance(doc, dict) and "method" in doc


def examples() -> list[tuple[str, Any]]:
    """(raw request text, documented response) pairs, in document order."""
    blocks = json_blocks()
    pairs = []
    i = 0
    while i < len(blocks):
        raw = blocks[i]
        assert is_request(json.loads(re.sub(r"<[A-Z0-9_]+>", "00", raw))), \
            f"rpc.md: a ```json block that is not a request: {raw[:80]!r}"
        assert i + 1 < len(blocks), f"rpc.md: request without a response: {raw[:80]!r}"
        response = json.loads(blocks[i + 1])
        assert not is_request(response), f"rpc.md: request without a response: {raw[:80]!r}"
        pairs.append((raw, response))
        i += 2
    return pairs


def assert_same_shape(actual: Any, documented: Any, where: str) -> None:
    if isinstance(documented, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        if where.rsplit(".", 1)[-1] in FREE_FORM:
            return
        assert set(actual) == set(documented), \
            f"{where}: keys {sorted(actual)} differ from the documented {sorted(documented)}"
        for key in documented:
            assert_same_shape(actual[key], documented[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        if documented and actual:
            if len(documented) > 1:
                assert len(actual) == len(documented), f"{where}: {len(actual)} items"
                for n, (a, d) in enumerate(zip(actual, documented, strict=True)):
                    assert_same_shape(a, d, f"{where}[{n}]")
            else:
                for n, a in enumerate(actual):
                    assert_same_shape(a, documented[0], f"{where}[{n}]")
    elif documented is None:
        pass  # null documents "absent value"; the shape check stops here
    else:
        assert not isinstance(actual, dict | list), f"{where}: unexpected {actual!r}"


def assert_same_answer(actual: Any, documented: Any, where: str) -> None:
    if isinstance(documented, list):
        assert isinstance(actual, list) and len(actual) == len(documented), where
        for n, (a, d) in enumerate(zip(actual, documented, strict=True)):
            assert_same_answer(a, d, f"{where}[{n}]")
        return
    assert actual.get("id") == documented.get("id"), f"{where}: id"
    if "error" in documented:
        assert "error" in actual, f"{where}: expected an error, got {actual}"
        got, want = actual["error"], documented["error"]
        assert got["code"] == want["code"], f"{where}: code {got['code']}"
        assert got["data"]["reason"] == want["data"]["reason"], f"{where}: {got}"
        assert set(got["data"]) == set(want["data"]), f"{where}: data keys {got['data']}"
    else:
        assert "result" in actual, f"{where}: expected a result, got {actual}"
        assert_same_shape(actual["result"], documented["result"], f"{where} result")


def write_dump(exchanges: list[dict[str, Any]]) -> None:
    """With RPC_DOC_DUMP=<file>, save the real answers (to refresh the doc's values)."""
    if os.environ.get("RPC_DOC_DUMP"):
        Path(os.environ["RPC_DOC_DUMP"]).write_text(json.dumps(exchanges, indent=1))


async def test_rpc_doc_examples_run(doc_node):
    answers = []
    async with aiohttp.ClientSession() as session:
        for raw, documented in examples():
            body = substitute(raw, doc_node)
            request = json.loads(body)
            async with session.post(doc_node.service.rpc_url + "/rpc", data=body,
                                    headers={"Content-Type": "application/json"}) as r:
                actual = await r.json(content_type=None)
            answers.append((request, actual, documented))
    write_dump([{"request": q, "response": a} for q, a, _ in answers])
    for request, actual, documented in answers:
        method = request[0]["method"] if isinstance(request, list) else request["method"]
        assert_same_answer(actual, documented, method)


async def test_rpc_doc_covers_every_method(doc_node):
    """Every method the server answers (public, ledger, admin, WebSocket) is documented."""
    dispatcher = RpcDispatcher(max_batch=10)
    NodeApi(doc_node.node).register(dispatcher)
    registered = set(doc_node.service.api_dispatcher.methods)
    assert set(dispatcher.methods) <= registered
    text = DOC.read_text()
    documented = set(re.findall(r"^### `([a-z_]+)`", text, re.M))
    assert documented == registered
    listed = set(re.findall(r"^\| \[`([a-z_]+)`\]\(#\1\)", text, re.M))
    assert listed == registered, "the method table at the top of rpc.md"
    exercised = set()
    for raw, _ in examples():
        doc = json.loads(re.sub(r"<[A-Z0-9_]+>", "00", raw))
        exercised |= {d["method"] for d in (doc if isinstance(doc, list) else [doc])}
    assert registered <= exercised, f"no example for {sorted(registered - exercised)}"


async def test_rpc_doc_health(doc_node):
    assert '{"status": "ok", "height": ' in DOC.read_text()
    async with aiohttp.ClientSession() as session, \
            session.get(doc_node.service.rpc_url + "/health") as r:
        assert r.status == 200
        assert set(await r.json()) == {"status", "height"}
