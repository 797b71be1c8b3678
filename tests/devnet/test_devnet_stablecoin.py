"""The gold-backed stablecoin's worked story (docs/ledger.md) on a real 4-node devnet.

Governance sets tiers, the reserve policy, the auditor's report key and the travel
rule; the auditor attests a bar list with `govchain tx attest-gold`; the issuer mints to
a licensed provider, which assigns tiers; a citizen hits its daily limit; two providers
move coins with a travel-rule commitment; the attestation expires and minting stops
(metric on), a new one resumes it; the citizen redeems and the issuer pays; `govchain
report supply` prints the proven figures. Black-box over RPC and the CLI.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair, compute_hash
from node.config import write_key_file
from rpc.metrics import parse_exposition
from sdk.stablecoin import Bar, compute_bar_root, compute_travel_commitment
from tests.devnet.test_devnet_faults import PARAMS, run_ok
from tests.devnet.test_devnet_governance import Chain, poll
from tests.devnet.test_devnet_integration import govchain, leftover_processes

pytestmark = pytest.mark.slow
REPORT_KEY = KeyPair.from_seed(b"\x35" * 32)
CITIZEN = KeyPair.from_seed(b"\x36" * 32)
BARS = [Bar("AB1234", "Valcambi", 12_441_000, 9999, "Bishkek-1"),
        Bar("K-0007", "Kyrgyzaltyn", 12_500_000, 9995, "Bishkek-2")]
FINE = sum(b.fine_weight_mg for b in BARS)
MAX_AGE_MS = 15_000


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    path = tmp_path_factory.mktemp("coin") / "devnet"
    run_ok("devnet", "up", "--detach", "--nodes", "4", "--base-port", "0", "--dir", str(path),
           "--params", json.dumps(PARAMS))
    try:
        yield Chain(path)
    finally:
        govchain("devnet", "down", "--dir", str(path))
        assert leftover_processes(path) == []


def attest_gold(chain: Chain, files: Path) -> dict[str, Any]:
    head_time = chain.client(1).status()["head_time_ms"]
    out = run_ok("tx", "attest-gold", "--asset", "KGS", "--bar-list", str(files / "bars.json"),
                 "--fine-weight-mg", str(FINE), "--units-per-fine-mg", "10",
                 "--report-hash", compute_hash(b"q4 report").hex(), "--timestamp-ms",
                 str(head_time), "--report-key", str(files / "report.json"),
                 "--key", str(files / "auditor.json"),
                 "--rpc", chain.manifest["nodes"][1]["rpc_url"], "--json")
    result: dict[str, Any] = json.loads(out)
    return result


def test_the_stablecoin_story_on_a_devnet(chain: Chain, tmp_path: Path) -> None:
    issuer, auditor, provider2, provider = chain.accounts[:4]
    voters = chain.validators[:3]
    for account in (provider, provider2):
        assert chain.decide(voters, "grant_role", {"role": "kyc", "scope": "KGS",
                                                   "address": account.address}) == "role_granted"
    for tier, limits in ((1, (10**12, 10**9, 10**9)), (2, (10_000, 2_000, 5_000))):
        assert chain.decide(voters, "set_tier", {
            "asset": "KGS", "tier": tier, "balance_limit": limits[0],
            "payment_limit": limits[1], "daily_limit": limits[2]}) == "tier_set"
    assert chain.decide(voters, "register_auditor_key", {
        "asset": "KGS", "auditor": auditor.address, "public_key": REPORT_KEY.public_key,
        "registered": True}) == "auditor_key_set"
    assert chain.decide(voters, "set_travel_rule", {"asset": "KGS", "threshold": 100_000}
                        ) == "travel_rule_set"
    for account, tier in ((provider, 1), (provider2, 1), (CITIZEN, 2)):
        assert chain.send(0, provider, "tier_assign", {"asset": "KGS",
                                                       "account": account.address,
                                                       "tier": tier})["code"] == "ok"
    # Minting to an account of no tier is refused: the default tier 0 may not hold.
    assert chain.send(0, issuer, "mint", {"asset": "KGS", "to": chain.accounts[2].address,
                                          "amount": 1})["code"] == "ok"  # provider2: tier 1
    assert chain.send(0, issuer, "mint", {"asset": "KGS", "to": KeyPair.generate().address,
                                          "amount": 1})["code"] == "not_allowed_to_hold"

    files = tmp_path
    (files / "bars.json").write_text(json.dumps([
        {"serial": b.serial, "refiner": b.refiner, "weight_mg": b.weight_mg,
         "fineness": b.fineness, "vault": b.vault} for b in BARS]))
    write_key_file(files / "report.json", REPORT_KEY)
    write_key_file(files / "auditor.json", auditor)
    assert chain.decide(voters, "set_reserve_policy", {
        "asset": "KGS", "max_age_ms": MAX_AGE_MS, "units_per_fine_mg": 10}
        ) == "reserve_policy_set"
    attested = attest_gold(chain, files)
    assert attested["code"] == "ok", attested
    assert chain.send(2, issuer, "mint", {"asset": "KGS", "to": provider.address,
                                          "amount": 1_000_000})["code"] == "ok"

    # The citizen's phone-wallet tier: 2,000 a payment, 5,000 a day.
    assert chain.send(1, provider, "transfer", {"to": CITIZEN.address, "asset": "KGS",
                                                "amount": 9_000})["code"] == "ok"
    for amount, code in ((2_000, "ok"), (2_000, "ok"), (1_001, "tier_daily_limit")):
        assert chain.send(1, CITIZEN, "transfer", {"to": provider.address, "asset": "KGS",
                                                   "amount": amount})["code"] == code

    # Two providers: above the threshold, the transfer carries the record's commitment.
    move = {"to": provider2.address, "asset": "KGS", "amount": 150_000}
    assert chain.send(0, provider, "transfer", move)["code"] == "travel_rule_required"
    record = {"originator": "Aibek Sadyrov", "beneficiary": "Nurlan Usenov"}
    salt = os.urandom(16)
    commitment = compute_travel_commitment(record, salt)
    paid = chain.send(0, provider, "transfer", {**move, "travel_rule": commitment})
    assert paid["code"] == "ok"
    # The beneficiary provider, given record and salt off-chain, matches the commitment.
    got = bytes.fromhex(paid["events"][0]["attributes"]["travel_rule"])
    assert got == compute_travel_commitment(record, salt)

    # The attestation expires: minting stops and the metric says so.
    def expired_mint() -> bool:
        code = chain.send(2, issuer, "mint", {"asset": "KGS", "to": provider.address,
                                              "amount": 1})["code"]
        if code != "attestation_expired":
            time.sleep(1.0)
        return code == "attestation_expired"

    poll(expired_mint, "a mint refused for an expired attestation")
    with urllib.request.urlopen(f"{chain.manifest['nodes'][2]['rpc_url']}/metrics",
                                timeout=10) as response:
        samples = parse_exposition(response.read().decode())
    assert [v for labels, v in samples["govchain_attestation_expired"]
            if labels.get("asset") == "KGS"] == [1]
    assert attest_gold(chain, files)["code"] == "ok"
    assert chain.send(2, issuer, "mint", {"asset": "KGS", "to": provider.address,
                                          "amount": 1})["code"] == "ok"

    # The citizen redeems; the issuer records the payout; the status is provable.
    redeemed = chain.send(3, CITIZEN, "redeem", {"asset": "KGS", "amount": 1_000,
                                                 "reference": "BO-2026-77"})
    request = redeemed["events"][0]["attributes"]["id"]
    settled = chain.send(3, issuer, "redemption_settle", {
        "asset": "KGS", "request": request, "outcome": "paid", "note": "wire 1"})
    assert settled["code"] == "ok"
    # Read from another node once it holds the block that settled it.
    poll(lambda: chain.client(1).status()["height"] >= settled["height"],
         "node1 at the height of the settlement")
    answer = chain.client(1).call("state_redemption", asset="KGS", id=request, proof=True)
    assert answer["request"]["status"] == "paid" and answer["proof"]["proofs"]

    report = json.loads(run_ok("report", "supply", "--asset", "KGS", "--rpc",
                               chain.manifest["nodes"][0]["rpc_url"], "--json"))
    assert report["bar_list_root"] == compute_bar_root(BARS).hex()
    assert report["fine_weight_mg"] == FINE and report["attestation_expired"] is False
    assert report["holders_by_tier"]["2"] == 1 and report["holders_by_tier"]["1"] == 2
    assert "verified" in report["state_proofs"]
