"""Governance on a live network: five nodes in one process over real p2p.

Four genesis validators and a fifth node holding a key outside the set. Governance
adds the fifth (after its proof of possession), which then proposes blocks, and
removes one of the four, which then stops being counted: the chain finalizes
throughout. The stablecoin mints within the attested reserve and no further, and a
registry record written through one node is verified with a proof from another.
"""

from __future__ import annotations

import asyncio

import pytest

from chain.crypto import KeyPair, compute_hash
from cli.ledger import DEV_RESERVE, add_dev_ledger
from ledger.governance import sign_acceptance
from sdk import Client
from sdk.bundle import Checkpoint, MissingSetChangeError, verify_bundle
from sdk.bundle_builder import build_record_bundle
from sdk.ledger import verify_record
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

pytestmark = pytest.mark.slow

V = VALIDATOR_KEYS[:5]
ISSUER, AUDITOR, _COMPLIANCE, WRITER = ACCOUNT_KEYS




async def decide(nodes: list[RunningNode], voters: list[KeyPair], action: str,
                 args: dict) -> list[str]:
    height = (await nodes[0].client.call("node_status"))["height"]
    result = await send(nodes[0], voters[0], "propose", {
        "action": action, "args": args, "expiry_height": height + 200})
    assert result["code"] == "ok", result
    pid = result["events"][0]["attributes"]["id"]
    kinds: list[str] = []
    for voter in voters[1:]:
        result = await send(nodes[0], voter, "vote", {"proposal": pid})
        assert result["code"] == "ok", result
        kinds = [e["kind"] for e in result["events"]]
    return kinds


async def heights(nodes: list[RunningNode]) -> list[int]:
    return [n.node.store.head_height for n in nodes]


async def test_governance_changes_the_validator_set_while_finalizing(tmp_path):
    genesis = add_dev_ledger(make_genesis(V[:4]), list(ACCOUNT_KEYS), BALANCE)
    nodes = await start_network(tmp_path, len(V), genesis)
    try:
        await wait_for(lambda: _all_at_least(nodes, 2), 30, "first blocks everywhere")
        newcomer = V[4]
        assert not nodes[4].node.core.is_validator

        # proof of possession, then the vote: 3 of 4 approvals
        accepted = await send(nodes[0], ISSUER, "validator_accept", {
            "public_key": newcomer.public_key, "name": "ministry-5",
            "signature": sign_acceptance(CHAIN_ID, newcomer, "ministry-5")})
        assert accepted["code"] == "ok"
        kinds = await decide(nodes, V[:3], "add_validator",
                             {"public_key": newcomer.public_key, "name": "ministry-5"})
        assert kinds[-1] == "validator_added"
        added_at = nodes[0].node.store.head_height

        async def newcomer_proposed() -> bool:
            store = nodes[0].node.store
            return any(store.get_block(h).header.proposer == newcomer.public_key
                       for h in range(added_at + 1, store.head_height + 1))
        await wait_for(newcomer_proposed, 60, "a block proposed by the new validator")
        vset = await nodes[2].client.call("chain_validators")
        assert len(vset["validators"]) == 5 and vset["quorum"] == 4

        # remove validator 3: quorum of five is four approvals, the newcomer's among them
        kinds = await decide(nodes, [V[0], V[1], V[2], newcomer], "remove_validator",
                             {"public_key": V[3].public_key})
        assert kinds[-1] == "validator_removed"
        removed_at = nodes[0].node.store.head_height
        await nodes[3].client.close()
        await nodes[3].service.stop()
        live = [n for i, n in enumerate(nodes) if i != 3]
        target = removed_at + 6
        await wait_for(lambda: _all_at_least(live, target), 60, f"height {target} without v3")
        store = nodes[0].node.store
        for h in range(removed_at + 1, target + 1):
            signers = {k for k, _ in store.get_certificate(h).signatures}
            assert V[3].public_key not in signers
        assert len((await nodes[1].client.call("chain_validators"))["validators"]) == 4

        # the stablecoin: attest, mint within the reserve, refused beyond it
        head_time = (await nodes[1].client.call("node_status"))["head_time_ms"]
        attested = await send(nodes[1], AUDITOR, "attest", {
            "asset": "KGS", "reserve": DEV_RESERVE * 2, "report_hash": compute_hash(b"r"),
            "timestamp_ms": head_time})
        assert attested["code"] == "ok"
        within = await send(nodes[2], ISSUER, "mint", {"asset": "KGS", "to": WRITER.address,
                                                      "amount": DEV_RESERVE * 2})
        assert within["code"] == "ok"
        beyond = await send(nodes[2], ISSUER, "mint", {"asset": "KGS", "to": WRITER.address,
                                                      "amount": 1})
        assert beyond["code"] == "reserve_exceeded"

        # a record written through node 1, verified with a proof served by node 4
        put = await send(nodes[1], WRITER, "record_put", {
            "namespace": "licenses", "key": "vasp-7", "value": b"Exchange LLC"})
        assert put["code"] == "ok"
        await wait_for(lambda: _all_at_least(live, put["height"]), 30, "record everywhere")
        record, height = await asyncio.to_thread(
            verify_record, Client(nodes[4].service.rpc_url), genesis, "licenses", "vasp-7")
        assert record["value"] == b"Exchange LLC" and height >= put["height"]

        # a proof bundle over both set changes, made from node 4, checked offline
        bundle = await asyncio.to_thread(build_record_bundle, Client(nodes[4].service.rpc_url),
                                         genesis, "licenses", "vasp-7")
        fact = verify_bundle(bundle, genesis)
        assert fact.set_changes == 2 and fact.subject["value"] == b"Exchange LLC"
        assert (fact.set_size, fact.quorum) == (4, 3)
        names = {s.name: s.name_proven for s in fact.signers}
        assert set(names) <= {"ministry-0", "ministry-1", "ministry-2", "ministry-5"}
        assert names.get("ministry-5", False) is False and names.get("ministry-0", True)
        with pytest.raises(MissingSetChangeError):
            verify_bundle({**bundle, "validator_sets": [bundle["validator_sets"][0],
                                                        bundle["validator_sets"][2]]}, genesis)
        # the changes a page at a time, as a client reads a long history
        page = await nodes[4].client.call("chain_validator_changes", limit=1)
        assert page["more"] and [c["from_height"] for c in page["changes"]] == \
            [bundle["validator_sets"][1]["from_height"]]
        page = await nodes[4].client.call("chain_validator_changes", limit=1,
                                          after_height=page["changes"][0]["from_height"])
        assert not page["more"] and page["changes"][0]["hash"] == \
            bundle["validator_sets"][2]["hash"]
        # from an operator's checkpoint: the block that named the first change
        first_change = bundle["validator_sets"][1]["certified_by"]["height"]
        block = await nodes[4].client.call("chain_block", height=first_change)
        checkpoint = Checkpoint(first_change, bytes.fromhex(block["hash"]))
        short = await asyncio.to_thread(build_record_bundle, Client(nodes[4].service.rpc_url),
                                        genesis, "licenses", "vasp-7", checkpoint=checkpoint)
        assert verify_bundle(short, genesis, checkpoint=checkpoint).set_changes == 1
        assert not any(n.service.failed.is_set() for n in live)
    finally:
        await stop_network([n for i, n in enumerate(nodes) if i != 3])


async def _all_at_least(nodes: list[RunningNode], height: int) -> bool:
    return min(await heights(nodes)) >= height
