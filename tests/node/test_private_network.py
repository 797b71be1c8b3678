"""Private registries on a four-validator network in one process, over real p2p.

The worked story of docs/privacy.md: a ministry issues a private licence, a bank reads
it with the citizen's grant, the citizen sees the read (checked against the anchors on
the chain), a court orders erasure. Validators 0 and 1 hold the namespace; 2 and 3 are
not named and must never receive a byte of the payload: every file of their homes and
every answer they give is searched for a marker the payload carries. A holder that
serves a payload not matching its commitment is refused and penalized.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair
from chain.genesis import Genesis
from cli.ledger import add_dev_ledger
from cli.main import main as cli_main
from node.config import write_key_file
from node.ops.replay import audit
from sdk import Client
from sdk.errors import RpcClientError as ClientRpcError
from sdk.ledger import VerificationError
from sdk.private import (
    make_commitment,
    sign_read_request,
    verify_payload,
    verify_private_record,
    verify_read_log,
)
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    CHAIN_ID,
    VALIDATOR_KEYS,
    RunningNode,
    make_genesis,
    start_network,
    stop_network,
    wait_for,
)
from tests.node.conftest import (
    send_final as send,
)

V = VALIDATOR_KEYS[:4]
CITIZEN, BANK, COURT, WRITER = ACCOUNT_KEYS
MARKER = b"MARKER-private-7f3a9c"
PAYLOAD = b"%PDF-1.7 driving licence B, holder Aida Bekova, " + MARKER


def private_genesis() -> Genesis:
    genesis = add_dev_ledger(make_genesis(V), list(ACCOUNT_KEYS), BALANCE)
    app_state: dict[str, Any] = json.loads(json.dumps(genesis.app_state))
    app_state["private"] = {"namespaces": [{
        "name": "drivers", "description": "driving licences",
        "holders": [V[0].public_key.hex(), V[1].public_key.hex()],
        "metadata_keys": ["class"]}]}
    app_state["roles"]["grants"] += [
        {"role": "writer", "scope": "drivers", "address": WRITER.address.hex()},
        {"role": "authority", "scope": "drivers", "address": COURT.address.hex()}]
    return dataclasses.replace(genesis, app_state=app_state)




async def call(node: RunningNode, method: str, **params: Any) -> tuple[str, Any]:
    """("ok", result) or (reason, error data) of one RPC call."""
    try:
        return "ok", await node.client.call(method, **params)
    except ClientRpcError as e:
        return e.reason, str(e)


def signed(node: RunningNode, key: KeyPair, action: str, record_key: str) -> dict:
    return sign_read_request(key, CHAIN_ID, action, "drivers", record_key,
                             node.node.clock.now_ms())


def grep_home(path: Path, needle: bytes) -> list[str]:
    return [str(p) for p in path.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def held(node: RunningNode, record_key: str) -> bool:
    status, answer = await call(node, "state_private_record", namespace="drivers",
                                key=record_key)
    return status == "ok" and bool(answer["held"])


async def test_private_licence_story(tmp_path: Path) -> None:
    genesis = private_genesis()
    nodes = await start_network(tmp_path, 4, genesis)
    ministry, interior, outsider, outsider2 = nodes
    answers: list[str] = []  # every answer of the nodes not named
    try:
        for running in nodes:
            running.node.private.anchor_interval_ms = 0  # anchor at every block
        # 1. the ministry issues a private licence: only the commitment goes on chain
        salt, commitment = make_commitment(PAYLOAD)
        put = await send(ministry, WRITER, "private_put", {
            "namespace": "drivers", "key": "lic-42", "commitment": commitment,
            "subject": CITIZEN.address, "metadata": {"class": "B"}})
        assert put["code"] == "ok", put
        status, _ = await call(ministry, "private_submit", namespace="drivers", key="lic-42",
                               salt=salt.hex(), payload=(PAYLOAD + b"x").hex())
        assert status == "payload_mismatch"
        status, _ = await call(outsider, "private_submit", namespace="drivers", key="lic-42",
                               salt=salt.hex(), payload=PAYLOAD.hex())
        assert status == "not_holder"
        status, _ = await call(ministry, "private_submit", namespace="drivers", key="lic-42",
                               salt=salt.hex(), payload=PAYLOAD.hex())
        assert status == "ok"
        # the other named ministry fetches it over p2p
        await wait_for(lambda: held(interior, "lic-42"), 20, "the payload at the interior")

        # 2. the bank reads without a grant: refused, and logged
        status, _ = await call(interior, "private_read", **signed(interior, BANK, "read",
                                                                  "lic-42"))
        assert status == "no_grant"
        granted = await send(ministry, CITIZEN, "private_grant", {
            "namespace": "drivers", "key": "lic-42", "grantee": BANK.address,
            "expires_ms": ministry.node.clock.now_ms() + 3_600_000})
        assert granted["code"] == "ok", granted
        await wait_for(lambda: _all_at_least(nodes, granted["height"]), 20, "the grant")
        request = signed(interior, BANK, "read", "lic-42")
        status, answer = await call(interior, "private_read", **request)
        assert status == "ok", answer
        assert bytes.fromhex(answer["payload"]) == PAYLOAD and answer["basis"] == "grant"
        verify_payload({"commitment": bytes.fromhex(answer["commitment"])},
                       bytes.fromhex(answer["salt"]), bytes.fromhex(answer["payload"]))
        # the citizen proves the licence from genesis; the node sees only the record name
        client = Client(outsider.service.rpc_url)
        record, _height = await asyncio.to_thread(
            verify_private_record, client, genesis, "drivers", "lic-42", salt, PAYLOAD)
        assert record["commitment"] == commitment
        with pytest.raises(VerificationError):
            await asyncio.to_thread(verify_private_record, client, genesis, "drivers",
                                    "lic-42", salt, PAYLOAD + b"forged")
        # the same from the command line: the payload file stays on the citizen's disk
        (tmp_path / "genesis.json").write_text(genesis.to_json())
        (tmp_path / "licence.pdf").write_bytes(PAYLOAD)
        (tmp_path / "forged.pdf").write_bytes(PAYLOAD + b"forged")
        for payload_file, code in (("licence.pdf", 0), ("forged.pdf", 1)):
            assert await asyncio.to_thread(cli_main, [
                "--json", "verify-private", "drivers/lic-42", "--payload",
                str(tmp_path / payload_file), "--salt", salt.hex(), "--genesis",
                str(tmp_path / "genesis.json"), "--rpc", outsider.service.rpc_url]) == code

        # 3. the citizen sees who read the record, checked against the anchors on chain
        async def reads_anchored() -> list[dict] | None:
            status, answer = await call(interior, "private_reads",
                                        **signed(interior, CITIZEN, "reads", "lic-42"))
            assert status == "ok", answer
            entries = [e for e in answer["entries"] if e["entry"]["action"] == "read"]
            if len(entries) < 2 or any(e["anchor"] is None for e in entries):
                return None
            return [answer]
        found = await wait_for(reads_anchored, 30, "the bank's reads anchored")
        checked = await asyncio.to_thread(verify_read_log, client, found[0])
        bank_reads = [e for e in checked if e["reader"] == BANK.address.hex()]
        assert [(e["outcome"], e["anchored"]) for e in bank_reads] == [
            ("no_grant", True), ("ok", True)]
        status, _ = await call(interior, "private_reads",
                               **signed(interior, BANK, "reads", "lic-42"))
        assert status == "no_grant"  # the bank may not see the citizen's read log
        # the same from the command line: the bank reads, the citizen lists the reads
        bank_key, citizen_key, writer_key = (tmp_path / "bank.json", tmp_path / "citizen.json",
                                             tmp_path / "writer.json")
        for path, key in ((bank_key, BANK), (citizen_key, CITIZEN), (writer_key, WRITER)):
            write_key_file(path, key)
        rpc = interior.service.rpc_url
        assert await asyncio.to_thread(cli_main, [
            "--json", "private", "read", "drivers/lic-42", "--key", str(bank_key),
            "--out", str(tmp_path / "read.pdf"), "--rpc", rpc]) == 0
        assert (tmp_path / "read.pdf").read_bytes() == PAYLOAD
        assert await asyncio.to_thread(cli_main, [
            "private", "reads", "drivers/lic-42", "--key", str(citizen_key), "--rpc", rpc]) == 0
        (tmp_path / "other.pdf").write_bytes(b"third licence")
        assert await asyncio.to_thread(cli_main, [
            "private", "put", "drivers/lic-44", "--key", str(writer_key), "--payload",
            str(tmp_path / "other.pdf"), "--subject", CITIZEN.address.hex(), "--meta",
            "class=C", "--rpc", ministry.service.rpc_url]) == 0
        assert await held(ministry, "lic-44")
        await wait_for(lambda: held(interior, "lic-44"), 20, "lic-44 at the interior")
        assert (tmp_path / "other.pdf.salt").read_text().strip()
        # payloads handed in together are written together: one key file for the lot
        batch = {f"lic-5{i}": make_commitment(f"licence 5{i}".encode()) for i in range(3)}
        for record_key, (_salt, record_commitment) in batch.items():
            assert (await send(ministry, WRITER, "private_put", {
                "namespace": "drivers", "key": record_key,
                "commitment": record_commitment}))["code"] == "ok"
        key_dir = ministry.node.home.path / "private" / "keys"
        files_before = set(key_dir.iterdir())
        await asyncio.gather(*(ministry.node.private.submit(
            "drivers", record_key, batch_salt, f"licence {record_key[4:]}".encode())
            for record_key, (batch_salt, _c) in batch.items()))
        assert len(set(key_dir.iterdir()) - files_before) == 1
        assert all([await held(ministry, record_key) for record_key in batch])

        # 4. revocation: a fresh request and the replayed old one both fail
        revoked = await send(ministry, CITIZEN, "private_revoke", {
            "namespace": "drivers", "key": "lic-42", "grantee": BANK.address})
        assert revoked["code"] == "ok", revoked
        await wait_for(lambda: _all_at_least(nodes, revoked["height"]), 20, "the revocation")
        status, _ = await call(interior, "private_read", **signed(interior, BANK, "read",
                                                                  "lic-42"))
        assert status == "no_grant"
        status, _ = await call(interior, "private_read", **request)
        assert status == "replayed_request"
        forged = {**signed(interior, BANK, "read", "lic-42"), "reader": CITIZEN.public_key.hex()}
        status, _ = await call(interior, "private_read", **forged)
        assert status == "bad_signature"  # the bank cannot pass for the citizen
        stale = sign_read_request(CITIZEN, CHAIN_ID, "read", "drivers", "lic-42",
                                  interior.node.clock.now_ms() - 3_600_000)
        status, _ = await call(interior, "private_read", **stale)
        assert status == "stale_request"

        # nodes not named: no byte of the payload in any file or answer
        for node in (outsider, outsider2):
            for method, params in [
                    ("private_read", signed(node, CITIZEN, "read", "lic-42")),
                    ("private_reads", signed(node, CITIZEN, "reads", "lic-42")),
                    ("state_private_record", {"namespace": "drivers", "key": "lic-42"}),
                    ("state_record", {"namespace": "drivers", "key": "lic-42",
                                      "proof": True}),
                    ("chain_block", {"height": put["height"], "full": True})]:
                status, answer = await call(node, method, **params)
                answers.append(json.dumps(answer))
            assert not node.node.private.is_holder_of("drivers")
            # a node not named that asks the holders anyway is answered not_holder
            assert not await node.service.network.private.fetch("drivers", "lic-42",
                                                                 commitment)
        assert all(MARKER.hex() not in a and MARKER.decode() not in a for a in answers)

        # 5. a court orders erasure: payload and key leave both holders
        box_keys = {n.node.home.path: n.node.private.store.get_box_key("drivers", "lic-42")
                    for n in (ministry, interior)}
        assert all(box_keys.values())
        erased = await send(outsider, COURT, "private_erase", {
            "namespace": "drivers", "key": "lic-42", "reason": "court order 2026/77"})
        assert erased["code"] == "ok", erased

        async def erased_everywhere() -> bool:
            return not any([await held(ministry, "lic-42"), await held(interior, "lic-42")])
        await wait_for(erased_everywhere, 20, "the payload erased at both holders")
        status, answer = await call(outsider, "state_record", namespace="drivers",
                                    key="lic-42")
        assert status == "ok" and answer["record"]["commitment"] == commitment.hex()
        assert answer["erased"]["text"].startswith("erased on 20")
        assert answer["erased"]["text"].endswith("by " + COURT.address.hex())
        status, _ = await call(interior, "private_read", **signed(interior, CITIZEN, "read",
                                                                  "lic-42"))
        assert status == "record_erased"

        # 6. a holder serving a payload that does not open its commitment is penalized
        salt2, commitment2 = make_commitment(b"second licence " + MARKER)
        hostile_store = ministry.node.private.store
        put2 = await send(ministry, WRITER, "private_put", {
            "namespace": "drivers", "key": "lic-43", "commitment": commitment2})
        assert put2["code"] == "ok"
        hostile_store.put_payload("drivers", "lic-43", salt2, b"forged licence")
        sync = interior.service.network.private
        await wait_for(lambda: _true(sync.refused_payloads > 0), 20, "the forged payload")
        assert not await held(interior, "lic-43")
        # what a holder restarting now would fetch: the record it lacks, nothing erased;
        # and an erasure it missed (say, a crash before it ran) is carried out on the way
        interior.node.private.store.put_payload("drivers", "lic-42", salt, PAYLOAD)
        assert await held(interior, "lic-42")
        assert interior.node.private.find_missing() == [("drivers", "lic-43", commitment2)]
        assert not await held(interior, "lic-42")
        assert outsider.node.private.find_missing() == []
        ministry_id = ministry.service.network.p2p.node_id
        scores = [p.score for p in interior.service.network.p2p.peers()
                  if p.node_id == ministry_id]
        # penalized (scores fall from 0 towards the ban score), or already banned
        assert scores[0] < 0 if scores else interior.service.network.p2p.is_banned(ministry_id)
    finally:
        await stop_network(nodes)
    # after the stop: the audit passes, and no file of a node not named holds the payload
    for running in nodes:
        report = audit(running.node.home.path)
        assert report.head_height >= erased["height"]
    for running in (outsider, outsider2):
        assert grep_home(running.node.home.path, MARKER) == []
    for path, box_key in box_keys.items():
        assert box_key is not None and grep_home(path, box_key) == [], "the erased key lingers"


async def _true(value: bool) -> bool:
    return value


async def _all_at_least(nodes: list[RunningNode], height: int) -> bool:
    return min(n.node.store.head_height for n in nodes) >= height
