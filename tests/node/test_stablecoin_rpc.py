"""The stablecoin story on a real node over real sockets: governance sets the reserve
policy and tiers, the auditor attests the bar list, a provider assigns tiers, a citizen
hits its daily limit, a stale attestation stops minting (metric and log), a new one
resumes it, a holder redeems and proves the outcome, the supply report is proven."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging

import aiohttp
import pytest

from chain.block import BlockHeader
from chain.crypto import KeyPair, compute_address, compute_hash
from chain.state_proof import StateProof, verify_state_proof
from chain.tx import Transaction
from cli.ledger import add_dev_ledger
from cli.main import main as cli_main
from node.config import write_key_file
from rpc.metrics import parse_exposition
from sdk.stablecoin import Bar, build_attestation, compute_bar_root
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    CHAIN_ID,
    RunningNode,
    make_genesis,
    make_home,
    running_node,
)
from tests.node.conftest import (
    send_final as send,
)

ISSUER, AUDITOR, COMPLIANCE, PROVIDER = ACCOUNT_KEYS
VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
CITIZEN = KeyPair.from_seed(b"\x33" * 32)
REPORT_KEY = KeyPair.from_seed(b"\x34" * 32)
BARS = [Bar("AB1234", "Valcambi", 12_441_000, 9999, "Bishkek-1"),
        Bar("K-0007", "Kyrgyzaltyn", 12_500_000, 9995, "Bishkek-2")]
FINE = sum(b.fine_weight_mg for b in BARS)


@pytest.fixture
async def coin_node(tmp_path):
    genesis = add_dev_ledger(make_genesis([VALIDATOR]), list(ACCOUNT_KEYS), BALANCE)
    grants = [*genesis.app_state["roles"]["grants"],
              {"role": "kyc", "scope": "KGS", "address": PROVIDER.address.hex()}]
    genesis = dataclasses.replace(genesis, app_state={
        **genesis.app_state, "roles": {"grants": grants},
        "tiers": {"assets": {"KGS": {"default": 1, "tiers": [
            {"tier": 1, "balance_limit": 10_000_000, "payment_limit": 5_000_000,
             "daily_limit": 5_000_000},
            {"tier": 2, "balance_limit": 10_000, "payment_limit": 2_000,
             "daily_limit": 5_000}]}}}})
    async with running_node(make_home(tmp_path / "node0", genesis, VALIDATOR)) as running:
        yield running




async def govern(running: RunningNode, action: str, args: dict) -> None:
    """One validator: its proposal passes at once."""
    validator = KeyPair.from_seed(b"\x01" * 32)
    status = await running.client.call("node_status")
    account = await running.client.call("state_account",
                                        address=compute_address(validator.public_key).hex())
    tx = Transaction(CHAIN_ID, compute_address(validator.public_key), account["next_nonce"],
                     "propose", {"action": action, "args": args,
                                 "expiry_height": status["height"] + 100})
    result = await running.client.submit(tx.with_signature(validator), wait="final")
    assert "proposal_passed" in [e["kind"] for e in result["events"]], result


async def attest(running: RunningNode, age_ms: int) -> dict:
    status = await running.client.call("node_status")
    fields = build_attestation(CHAIN_ID, "KGS", BARS, stated_fine_weight_mg=FINE,
                               units_per_fine_mg=10, report_hash=compute_hash(b"q3"),
                               timestamp_ms=status["head_time_ms"] - age_ms,
                               report_key=REPORT_KEY)
    return await send(running, AUDITOR, "attest", fields)


async def metrics(running: RunningNode) -> dict:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{running.service.rpc_url}/metrics") as response:
        return parse_exposition(await response.text())


def sample(samples: dict, name: str, **labels: str) -> float:
    for sample_labels, value in samples.get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError(f"no sample {name}{labels}")


def check_proofs(proof: dict) -> None:
    header = BlockHeader.decode(bytes.fromhex(proof["header"]))
    for item in proof["proofs"]:
        value = None if item["value"] is None else bytes.fromhex(item["value"])
        assert verify_state_proof(StateProof.from_json(item["state_proof"]),
                                  bytes.fromhex(item["state_key"]), value, header.state_root)


async def test_stablecoin_story_through_a_node(coin_node, caplog) -> None:
    node = coin_node
    await govern(node, "register_auditor_key", {"asset": "KGS", "auditor": AUDITOR.address,
                                                "public_key": REPORT_KEY.public_key,
                                                "registered": True})
    await govern(node, "set_reserve_policy", {"asset": "KGS", "max_age_ms": 60_000,
                                              "units_per_fine_mg": 10})
    assert (await attest(node, 0))["code"] == "ok"
    assert (await send(node, ISSUER, "mint", {"asset": "KGS", "to": PROVIDER.address,
                                              "amount": 1_000_000}))["code"] == "ok"
    # A provider puts the citizen in the phone-wallet tier; the citizen hits its daily limit.
    await send(node, PROVIDER, "tier_assign", {"asset": "KGS", "account": CITIZEN.address,
                                               "tier": 2})
    await send(node, PROVIDER, "transfer", {"to": CITIZEN.address, "asset": "KGS",
                                            "amount": 9_000})
    for _ in range(2):
        assert (await send(node, CITIZEN, "transfer", {"to": PROVIDER.address, "asset": "KGS",
                                                       "amount": 2_000}))["code"] == "ok"
    hit = await send(node, CITIZEN, "transfer", {"to": PROVIDER.address, "asset": "KGS",
                                                 "amount": 1_001})
    assert hit["code"] == "tier_daily_limit"
    tiers = await node.client.call("state_tiers", asset="KGS", account=CITIZEN.address.hex())
    assert tiers["account"]["sent_in_rolling_day"] == 4_000
    samples = await metrics(node)
    assert sample(samples, "govchain_tx_failed_total", code="tier_daily_limit") == 1
    # An attestation dated before the latest one is refused; minting goes on meanwhile.
    assert (await attest(node, 120_000))["code"] == "stale_attestation"
    assert (await send(node, ISSUER, "mint", {"asset": "KGS", "to": PROVIDER.address,
                                              "amount": 1}))["code"] == "ok"
    # Governance shortens the maximum age to 1 ms: the attestation is stale at the next
    # block, minting stops, the metric and the log say so.
    await govern(node, "set_reserve_policy", {"asset": "KGS", "max_age_ms": 1,
                                              "units_per_fine_mg": 10})
    with caplog.at_level(logging.WARNING, logger="govchain.reserve"):
        refused = await send(node, ISSUER, "mint", {"asset": "KGS", "to": PROVIDER.address,
                                                    "amount": 1})
    assert refused["code"] == "attestation_expired"
    assert any("expired" in r.getMessage() for r in caplog.records)
    samples = await metrics(node)
    assert sample(samples, "govchain_attestation_expired", asset="KGS") == 1
    assert sample(samples, "govchain_tx_failed_total", code="attestation_expired") == 1
    await govern(node, "set_reserve_policy", {"asset": "KGS", "max_age_ms": 600_000,
                                              "units_per_fine_mg": 10})
    assert (await attest(node, 0))["code"] == "ok"
    assert (await send(node, ISSUER, "mint", {"asset": "KGS", "to": PROVIDER.address,
                                              "amount": 1}))["code"] == "ok"
    # The citizen redeems; the issuer pays; the outcome is provable.
    redeemed = await send(node, CITIZEN, "redeem", {"asset": "KGS", "amount": 1_000,
                                                    "reference": "BO-77"})
    request = redeemed["events"][0]["attributes"]["id"]
    await send(node, ISSUER, "redemption_settle", {"asset": "KGS", "request": request,
                                                   "outcome": "paid", "note": "wire 1"})
    answer = await node.client.call("state_redemption", asset="KGS", id=request, proof=True)
    assert answer["request"]["status"] == "paid"
    check_proofs(answer["proof"])
    # The supply report, proven.
    report = await node.client.call("state_supply_report", asset="KGS", proof=True)
    assert report["supply"] == 1_000_000 + 2 - 1_000
    assert report["attestation"]["bar_root"] == compute_bar_root(BARS).hex()
    assert report["attestation"]["expired"] is False
    assert report["holders_by_tier"] == {"0": 0, "1": 1, "2": 1}
    check_proofs(report["proof"])
    # `govchain report supply` checks every proof and prints the figures.
    printed = json.loads(await asyncio.to_thread(
        run_cli, ["report", "supply", "--asset", "KGS", "--rpc", node.service.rpc_url,
                  "--json"]))
    assert printed["supply"] == report["supply"] and printed["holders_by_tier"] == {
        "0": 0, "1": 1, "2": 1}
    assert printed["bar_list_root"] == compute_bar_root(BARS).hex()
    assert "verified" in printed["state_proofs"]


def run_cli(argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli_main(argv) == 0
    return buffer.getvalue()


def test_barlist_commands_root_proof_verify(tmp_path) -> None:
    bars = tmp_path / "bars.json"
    bars.write_text(json.dumps([{"serial": b.serial, "refiner": b.refiner,
                                 "weight_mg": b.weight_mg, "fineness": b.fineness,
                                 "vault": b.vault} for b in BARS]))
    root = json.loads(run_cli(["barlist", "root", str(bars), "--json"]))
    assert root == {"bar_root": compute_bar_root(BARS).hex(), "bar_count": 2,
                    "fine_weight_mg": FINE}
    proof = tmp_path / "proof.json"
    proof.write_text(run_cli(["barlist", "proof", str(bars), "--serial", "K-0007"]))
    assert json.loads(run_cli(["barlist", "verify", str(proof), "--root",
                                   root["bar_root"], "--json"])) == {"verified": True}
    assert cli_main(["barlist", "verify", str(proof), "--root", "00" * 32]) == 1


def test_attest_gold_refuses_to_sign_a_bar_list_that_does_not_add_up(tmp_path, capsys
                                                                     ) -> None:
    bars = tmp_path / "bars.json"
    bars.write_text(json.dumps([{"serial": b.serial, "refiner": b.refiner,
                                 "weight_mg": b.weight_mg, "fineness": b.fineness,
                                 "vault": b.vault} for b in BARS]))
    write_key_file(tmp_path / "auditor.json", AUDITOR)
    write_key_file(tmp_path / "report.json", REPORT_KEY)
    argv = ["tx", "attest-gold", "--asset", "KGS", "--bar-list", str(bars),
            "--fine-weight-mg", str(FINE + 1), "--units-per-fine-mg", "10",
            "--report-hash", "00" * 32, "--timestamp-ms", "1", "--report-key",
            str(tmp_path / "report.json"), "--key", str(tmp_path / "auditor.json"),
            "--chain-id", CHAIN_ID, "--out", str(tmp_path / "tx.json"),
            "--rpc", "http://127.0.0.1:9"]
    assert cli_main(argv) == 1
    assert "refusing to sign" in capsys.readouterr().err
    assert not (tmp_path / "tx.json").exists()
