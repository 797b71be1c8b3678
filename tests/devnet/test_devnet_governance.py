"""The government ledger on a real devnet (one process per node), black-box over RPC.

A fifth node process joins the 4-validator devnet; governance admits it as a validator
after its proof of possession, and it then proposes blocks; governance removes another
validator, whose signatures then leave the certificates; the chain finalizes
throughout. The stablecoin mints within the attested reserve and no further. A record
written through one node is verified, from genesis and certificates alone, with a
proof served by another.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair, compute_hash
from chain.genesis import Genesis
from chain.tx import Transaction
from cli.ledger import DEV_RESERVE
from devnet.ports import get_free_port
from ledger.governance import sign_acceptance
from node.config import read_key_file, write_key_file
from sdk import Client
from sdk.ledger import verify_record
from tests.devnet.test_devnet_faults import PARAMS, run_ok
from tests.devnet.test_devnet_integration import govchain, leftover_processes
from tests.node.procs import NodeProcess, ProcessSet, run_cli

pytestmark = pytest.mark.slow
DEADLINE_S = 90.0


def poll(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


class Chain:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = json.loads((path / "devnet.json").read_text())
        self.genesis = Genesis.from_json((path / "genesis" / "genesis.json").read_text())
        self.validators = [read_key_file(path / "genesis" / f"validator{i}_key.json")
                           for i in range(4)]
        self.accounts = [KeyPair.from_seed(bytes.fromhex(a["secret_key"]))
                         for a in self.manifest["accounts"]]
        self.last_final_height = 0

    def client(self, index: int) -> Client:
        return Client(self.manifest["nodes"][index]["rpc_url"], timeout_s=10)

    def send(self, index: int, key: KeyPair, tx_type: str, fields: dict[str, Any]
             ) -> dict[str, Any]:
        """Sign with the nonce node `index` gives, once that node holds every block an
        earlier send was final in (a node behind would hand out a used nonce)."""
        client = self.client(index)
        poll(lambda: client.status()["height"] >= self.last_final_height,
             f"node{index} at height {self.last_final_height}")
        nonce = client.next_nonce(key.address)
        tx = Transaction(self.genesis.chain_id, key.address, nonce, tx_type,
                         fields).with_signature(key)
        result: dict[str, Any] = client.submit(tx, wait="final", timeout_s=60)
        assert result["status"] in ("final", "rejected"), result
        if result["status"] == "final":
            self.last_final_height = max(self.last_final_height, result["height"])
        return result

    def decide(self, voters: list[KeyPair], action: str, args: dict[str, Any]) -> str:
        height = self.client(0).status()["height"]
        result = self.send(0, voters[0], "propose", {"action": action, "args": args,
                                                     "expiry_height": height + 200})
        assert result["code"] == "ok", result
        proposal = result["events"][0]["attributes"]["id"]
        kind = ""
        for i, voter in enumerate(voters[1:], start=1):
            result = self.send(i % 3, voter, "vote", {"proposal": proposal})
            assert result["code"] == "ok", result
            kind = result["events"][-1]["kind"]
        return kind


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    path = tmp_path_factory.mktemp("gov") / "devnet"
    run_ok("devnet", "up", "--detach", "--nodes", "4", "--base-port", "0", "--dir", str(path),
           "--params", json.dumps(PARAMS))
    try:
        yield Chain(path)
    finally:
        govchain("devnet", "down", "--dir", str(path))
        assert leftover_processes(path) == []


def test_governance_adds_and_removes_validators_on_the_devnet(chain: Chain,
                                                              tmp_path: Path) -> None:
    newcomer = KeyPair.generate()
    peers = [f"127.0.0.1:{n['p2p_port']}" for n in chain.manifest["nodes"]]
    processes = ProcessSet()
    try:
        key_file = tmp_path / "newcomer_key.json"
        write_key_file(key_file, newcomer)
        rpc_port = get_free_port()
        args = ["init", "--home", str(tmp_path / "node4"), "--genesis",
                str(chain.path / "genesis" / "genesis.json"), "--validator-key", str(key_file),
                "--rpc-listen", f"127.0.0.1:{rpc_port}", "--p2p-listen", "127.0.0.1:0",
                "--no-peer-exchange"]
        for peer in peers:
            args += ["--peer", peer]
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        fifth = processes.add(NodeProcess(tmp_path / "node4", f"http://127.0.0.1:{rpc_port}"))
        fifth.start()
        fifth_client = Client(fifth.rpc_url, timeout_s=10)
        issuer = chain.accounts[0]
        accepted = chain.send(0, issuer, "validator_accept", {
            "public_key": newcomer.public_key, "name": "ministry-5",
            "signature": sign_acceptance(chain.genesis.chain_id, newcomer, "ministry-5")})
        assert accepted["code"] == "ok", accepted
        assert chain.decide(chain.validators[:3], "add_validator",
                            {"public_key": newcomer.public_key,
                             "name": "ministry-5"}) == "validator_added"
        added_at = chain.client(0).status()["height"]

        def newcomer_proposed() -> bool:
            head = chain.client(1).status()["height"]
            return any(chain.client(1).call("chain_block", height=h)["proposer"]
                       == newcomer.public_key.hex() for h in range(added_at + 1, head + 1))

        poll(newcomer_proposed, "a block proposed by the fifth validator")
        assert chain.client(2).call("chain_validators")["quorum"] == 4

        removed = chain.validators[3]
        assert chain.decide([*chain.validators[:3], newcomer], "remove_validator",
                            {"public_key": removed.public_key}) == "validator_removed"
        removed_at = chain.client(0).status()["height"]
        run_ok("devnet", "stop", "node3", "--dir", str(chain.path))
        poll(lambda: chain.client(0).status()["height"] >= removed_at + 5,
             "five blocks without the removed validator")
        for height in range(removed_at + 1, removed_at + 6):
            signers = {s["validator"] for s in
                       chain.client(1).call("chain_block", height=height)["certificate"]
                       ["signatures"]}
            assert removed.public_key.hex() not in signers

        auditor, writer = chain.accounts[1], chain.accounts[3]
        head_time = chain.client(1).status()["head_time_ms"]
        attested = chain.send(1, auditor, "attest", {
            "asset": "KGS", "reserve": DEV_RESERVE * 2, "report_hash": compute_hash(b"audit"),
            "timestamp_ms": head_time})
        assert attested["code"] == "ok"
        # Final on node 1 first; node 2 commits the same block a moment later.
        poll(lambda: chain.client(2).status()["height"] >= attested["height"],
             "node 2 at the attestation's height")
        asset = chain.client(2).call("state_asset", asset="KGS")
        headroom = int(asset["reserve"]) - int(asset["supply"])
        assert headroom > 0, asset
        assert chain.send(2, issuer, "mint", {"asset": "KGS", "to": writer.address,
                                              "amount": headroom})["code"] == "ok"
        assert chain.send(2, issuer, "mint", {"asset": "KGS", "to": writer.address,
                                              "amount": 1})["code"] == "reserve_exceeded"

        put = chain.send(1, writer, "record_put", {"namespace": "licenses", "key": "vasp-9",
                                                   "value": b"Exchange LLC"})
        assert put["code"] == "ok", put
        poll(lambda: fifth_client.status()["height"] >= put["height"], "the record on node 5")
        record, height = verify_record(fifth_client, chain.genesis, "licenses", "vasp-9")
        assert record["value"] == b"Exchange LLC" and height >= put["height"]
    finally:
        processes.close()
