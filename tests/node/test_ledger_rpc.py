"""The ledger RPC methods on a single node, the record proof verified from genesis, and
the ledger CLI (multisig offline signing, queries, verify-record) against the node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chain import codec
from chain.crypto import KeyPair, compute_hash, compute_multisig_address
from chain.genesis import Genesis
from chain.results import ResultLeaf
from chain.tx import Transaction
from cli.ledger import DEV_RESERVE, add_dev_ledger
from cli.main import main as cli_main
from node.config import write_key_file
from sdk import Client, ProofError, RpcClientError, verify_tx, verify_tx_succeeded
from sdk.ledger import LightClient, VerificationError, verify_record, verify_record_answer
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    CHAIN_ID,
    make_genesis,
    make_home,
    running_node,
)
from tests.node.conftest import (
    send_final as send,
)

ISSUER, AUDITOR, COMPLIANCE, WRITER = ACCOUNT_KEYS
VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
TREASURY = compute_multisig_address(2, tuple(k.public_key for k in ACCOUNT_KEYS[:3]))
LICENSE = {"namespace": "licenses", "key": "vasp-0001", "value": b"Crypto Exchange LLC",
           "metadata": {"class": "A"}}


def ledger_genesis() -> Genesis:
    return add_dev_ledger(make_genesis([VALIDATOR]), list(ACCOUNT_KEYS), BALANCE)


@pytest.fixture
async def ledger_node(tmp_path):
    genesis = ledger_genesis()
    (tmp_path / "genesis.json").write_text(genesis.to_json())
    async with running_node(make_home(tmp_path / "node0", genesis, VALIDATOR)) as running:
        yield running




async def test_stablecoin_story_over_rpc(ledger_node):
    node = ledger_node
    asset = await node.client.call("state_asset", asset="KGS")
    assert (asset["supply"], asset["reserve"], asset["reserve_backed"]) == (0, DEV_RESERVE, True)
    assert asset["issuers"] == [ISSUER.address.hex()]
    minted = await send(node, ISSUER, "mint", {"asset": "KGS", "to": WRITER.address,
                                               "amount": DEV_RESERVE})
    assert minted["status"] == "final" and minted["events"][0]["kind"] == "minted"
    beyond = await send(node, ISSUER, "mint", {"asset": "KGS", "to": WRITER.address,
                                               "amount": 1})
    assert (beyond["status"], beyond["code"]) == ("rejected", "reserve_exceeded")
    status = await node.client.call("node_status")
    attested = await send(node, AUDITOR, "attest", {
        "asset": "KGS", "reserve": DEV_RESERVE + 500, "report_hash": compute_hash(b"q2"),
        "timestamp_ms": status["head_time_ms"]})
    assert attested["events"][0]["kind"] == "attested"
    assert (await send(node, ISSUER, "mint", {"asset": "KGS", "to": WRITER.address,
                                              "amount": 500}))["code"] == "ok"
    frozen = await send(node, COMPLIANCE, "freeze", {"asset": "KGS",
                                                     "account": WRITER.address})
    assert frozen["events"][0]["kind"] == "frozen"
    paid = await send(node, WRITER, "transfer", {"to": ISSUER.address, "asset": "KGS",
                                                 "amount": 1})
    assert paid["code"] == "account_frozen"
    holder = (await node.client.call("state_asset", asset="KGS",
                                     holder=WRITER.address.hex()))["holder"]
    assert holder == {"address": WRITER.address.hex(), "balance": DEV_RESERVE + 500,
                      "frozen": True}
    history = await node.client.call("state_attestations", asset="KGS")
    assert [a["reserve"] for a in history["attestations"]] == [DEV_RESERVE, DEV_RESERVE + 500]


async def test_record_proof_verifies_from_genesis(ledger_node, tmp_path):
    node = ledger_node
    put = await send(node, WRITER, "record_put", LICENSE)
    assert put["events"][0]["kind"] == "record_put"
    await send(node, WRITER, "record_status", {"namespace": "licenses", "key": "vasp-0001",
                                               "status": "suspended"})
    history = await node.client.call("state_record_history", namespace="licenses",
                                     key="vasp-0001")
    assert [v["status"] for v in history["versions"]] == ["active", "suspended"]
    namespace = await node.client.call("state_namespace", namespace="licenses")
    assert namespace["records"] == 1 and namespace["writers"] == [WRITER.address.hex()]

    client = Client(node.service.rpc_url)
    genesis = ledger_genesis_from(tmp_path)
    record, height = await asyncio.to_thread(verify_record, client, genesis, "licenses",
                                             "vasp-0001")
    assert record["status"] == "suspended" and record["version"] == 2 and height >= 2

    # a node that lies about the value is caught
    answer = await node.client.call("state_record", namespace="licenses", key="vasp-0001",
                                    proof=True)
    light = LightClient.over_client(genesis, client)
    header = await asyncio.to_thread(light.sync_to, answer["height"])
    verify_record_answer(answer, header)
    record_value = dict(codec.decode(bytes.fromhex(answer["value"])), status="active")
    forged = dict(answer, value=codec.encode(record_value).hex())
    with pytest.raises(VerificationError, match="state proof does not match"):
        verify_record_answer(forged, header)
    with pytest.raises(VerificationError):  # another chain's genesis: certificates fail
        other = Genesis.from_json(genesis.to_json().replace(CHAIN_ID, "other-chain"))
        await asyncio.to_thread(verify_record, client, other, "licenses", "vasp-0001")


def ledger_genesis_from(tmp_path: Path) -> Genesis:
    return Genesis.from_json((tmp_path / "genesis.json").read_text())


async def test_governance_and_roles_over_rpc(ledger_node):
    node = ledger_node
    newcomer = KeyPair.from_seed(b"\x42" * 32)
    status = await node.client.call("node_status")
    # one validator: its proposal passes at once
    result = await send(node, VALIDATOR, "propose", {
        "action": "grant_role", "args": {"role": "writer", "scope": "licenses",
                                         "address": newcomer.address},
        "expiry_height": status["height"] + 50})
    kinds = [e["kind"] for e in result["events"]]
    assert kinds == ["proposal_created", "proposal_voted", "proposal_passed", "role_granted"]
    roles = await node.client.call("state_roles", address=newcomer.address.hex())
    assert roles["roles"] == [{"role": "writer", "scope": "licenses"}]
    assert roles["validator"] is False
    validator_roles = await node.client.call("state_roles", address=VALIDATOR.address.hex())
    assert validator_roles["validator"] is True
    treasury = await node.client.call("state_roles", address=TREASURY.hex())
    assert treasury["multisig"]["threshold"] == 2
    proposal = await node.client.call("state_proposal", id=1)
    assert proposal["status"] == "passed" and proposal["approvals"] == 1
    listing = await node.client.call("state_proposals", status="passed")
    assert listing["count"] == 1 and listing["proposals"][0]["id"] == 1


async def test_invalid_ledger_rpc_params(ledger_node):
    client = ledger_node.client
    for method, params, reason in [
            ("state_asset", {"asset": "NOPE"}, "unknown_asset"),
            ("state_asset", {"asset": "a/b"}, "invalid_params"),
            ("state_record", {"namespace": "licenses", "key": "missing"}, "unknown_record"),
            ("state_record", {"namespace": "licenses", "key": "bad\x00key"}, "invalid_params"),
            ("state_namespace", {"namespace": "titles"}, "unknown_namespace"),
            ("state_proposal", {"id": 7}, "unknown_proposal"),
            ("state_proposal", {"id": "x"}, "invalid_params"),
            ("state_proposals", {"status": "lost"}, "invalid_params"),
            ("state_roles", {"address": "zz"}, "invalid_params"),
            ("state_attestations", {"asset": "KGS", "limit": 0}, "invalid_params")]:
        with pytest.raises(RpcClientError) as info:
            await client.call(method, **params)
        assert info.value.reason == reason, (method, params)


async def test_cli_multisig_offline_signing_and_verify_record(ledger_node, tmp_path):
    node = ledger_node
    rpc = node.service.rpc_url
    keys = []
    for i, key in enumerate(ACCOUNT_KEYS[:3]):
        path = tmp_path / f"member{i}.json"
        write_key_file(path, key)
        keys.append(str(path))
    tx_file = tmp_path / "pay.json"
    recipient = KeyPair.from_seed(b"\x77" * 32).address.hex()

    def cli(*argv: str) -> int:
        return cli_main(["--json", *argv])

    assert await asyncio.to_thread(
        cli, "tx", "record-put", "--key", keys[0], "--namespace", "licenses",
        "--record-key", "x", "--value", "v", "--rpc", rpc) == 1  # member 0 is no writer
    # member 0 prepares a treasury payment, member 2 co-signs offline, member 0 submits
    from cli.ledger import write_tx_file
    treasury_nonce = (await node.client.call("state_account",
                                             address=TREASURY.hex()))["next_nonce"]
    tx = Transaction(CHAIN_ID, TREASURY, treasury_nonce, "transfer",
                     {"to": bytes.fromhex(recipient), "asset": "GOV", "amount": 1234}
                     ).with_signature(ACCOUNT_KEYS[0])
    write_tx_file(tx_file, tx)
    assert await asyncio.to_thread(cli, "tx", "submit", str(tx_file), "--rpc", rpc) == 1
    assert await asyncio.to_thread(cli, "tx", "sign", str(tx_file), "--add-signature",
                                   "--key", keys[2]) == 0
    assert len(json.loads(tx_file.read_text())["signers"]) == 2
    assert await asyncio.to_thread(cli, "tx", "submit", str(tx_file), "--rpc", rpc) == 0
    account = await node.client.call("state_account", address=recipient)
    assert account["balances"]["GOV"] == 1234

    writer = tmp_path / "writer.json"
    write_key_file(writer, WRITER)
    assert await asyncio.to_thread(
        cli, "tx", "record-put", "--key", str(writer), "--namespace", "licenses",
        "--record-key", "vasp-0002", "--value", "Bank LLC", "--meta", "class=B",
        "--rpc", rpc) == 0
    assert await asyncio.to_thread(cli, "query", "record", "licenses/vasp-0002",
                                   "--rpc", rpc) == 0
    assert await asyncio.to_thread(cli, "verify-record", "licenses/vasp-0002", "--genesis",
                                   str(tmp_path / "genesis.json"), "--rpc", rpc) == 0
    assert await asyncio.to_thread(cli, "query", "asset", "KGS", "--rpc", rpc) == 0


async def test_payment_outcome_proven_ok_or_refused_from_genesis(ledger_node):
    """tx_proof proves a payment's result under the certified header's results_root: a
    payment from a frozen account proves its refusal, and cannot be passed off as paid."""
    node = ledger_node
    await send(node, ISSUER, "mint", {"asset": "KGS", "to": WRITER.address, "amount": 10})
    paid = await send(node, WRITER, "transfer", {"to": ISSUER.address, "asset": "KGS",
                                                 "amount": 3})
    await send(node, COMPLIANCE, "freeze", {"asset": "KGS", "account": WRITER.address})
    refused = await send(node, WRITER, "transfer", {"to": ISSUER.address, "asset": "KGS",
                                                    "amount": 1})
    assert (paid["code"], refused["code"]) == ("ok", "account_frozen")
    client = Client(node.service.rpc_url)
    genesis_set = ledger_genesis().validator_set

    proven_paid = await asyncio.to_thread(client.verified_tx, bytes.fromhex(paid["hash"]),
                                          genesis_set)
    assert proven_paid.succeeded and proven_paid.height == paid["height"]
    assert [e[0] for e in proven_paid.events] == ["transferred"]
    assert proven_paid.events[0][1]["amount"] == 3
    proven_refused = await asyncio.to_thread(client.verified_tx,
                                             bytes.fromhex(refused["hash"]), genesis_set)
    assert (proven_refused.succeeded, proven_refused.code) == (False, "account_frozen")
    assert proven_refused.events == ()

    answer = await node.client.call("tx_proof", hash=refused["hash"])
    header = await asyncio.to_thread(client.verified_header, answer["height"], genesis_set)
    with pytest.raises(ProofError, match="refused at execution with code 'account_frozen'"):
        verify_tx_succeeded(answer, header)
    # A node that says "ok" for the refused payment: the leaf no longer proves.
    leaf = ResultLeaf.decode(bytes.fromhex(answer["result"]["leaf"]))
    forged_ok = ResultLeaf(leaf.tx_hash, "ok", leaf.events_hash)
    lie = {**answer, "result": {**answer["result"], "code": "ok",
                                "leaf": forged_ok.encoded.hex()}}
    with pytest.raises(ProofError, match="results root"):
        verify_tx(lie, header)
    # The leaf of the other (successful) payment, given for this one: it names another tx.
    paid_answer = await node.client.call("tx_proof", hash=paid["hash"])
    swapped = {**answer, "result": paid_answer["result"]}
    with pytest.raises(ProofError, match="is for transaction"):
        verify_tx(swapped, header)
    # Events that are not the committed ones.
    paid_header = await asyncio.to_thread(client.verified_header, paid_answer["height"],
                                          genesis_set)
    more = codec.encode([["transferred", {"amount": 3000}]]).hex()
    with pytest.raises(ProofError, match="events"):
        verify_tx({**paid_answer, "result": {**paid_answer["result"], "events": more}},
                  paid_header)
    assert verify_tx_succeeded(paid_answer, paid_header).code == "ok"
