"""Fault rehearsal on a real 4-validator devnet (one process per node, real sockets).

One devnet goes through the faults in order, checking after each that the chain is
safe (every node reports the same block at every height, every certificate verifies,
no validator was caught equivocating) and live when a quorum is up and connected:
a killed validator, two killed (halt, then resume), a SIGKILLed node catching up, a
wiped data directory, a 2|2 partition and its healing, and a full stop and restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.tx import make_transaction
from chain.vote import CommitCertificate, validate_certificate
from devnet.manifest import Manifest, read_manifest
from sdk import Client, RpcClientError
from tests.devnet.test_devnet_integration import govchain, leftover_processes

pytestmark = pytest.mark.slow

PARAMS = {"block_interval_ms": 100, "empty_block_interval_ms": 400,
          "timeout_propose_ms": 600, "timeout_vote_ms": 300, "timeout_delta_ms": 200,
          "timeout_max_ms": 2500}
NAMES = ["node0", "node1", "node2", "node3"]
DEADLINE_S = 90.0


def run_ok(*args: str) -> str:
    result = govchain(*args)
    assert result.returncode == 0, f"govchain {' '.join(args)} failed: {result.stderr}"
    return result.stdout


class Devnet:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest: Manifest = read_manifest(path)
        self.genesis = Genesis.from_json((path / "genesis" / "genesis.json").read_text())

    def cli(self, *args: str) -> str:
        return run_ok("devnet", *args, "--dir", str(self.path))

    def client(self, name: str) -> Client:
        return Client(self.manifest.get_node(name).rpc_url, timeout_s=3.0)

    def height(self, name: str) -> int | None:
        try:
            return int(self.client(name).status()["height"])
        except RpcClientError:
            return None

    def heights(self, names: list[str]) -> list[int | None]:
        return [self.height(n) for n in names]

    def wait_heights_above(self, names: list[str], target: int, what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            heights = self.heights(names)
            if all(h is not None and h > target for h in heights):
                return
            assert time.monotonic() < deadline, f"{what}: heights {heights}, wanted > {target}"
            time.sleep(0.25)

    def block(self, name: str, height: int) -> dict[str, Any]:
        result: dict[str, Any] = self.client(name).call("chain_block", height=height)
        return result

    def check_safety(self, names: list[str]) -> int:
        """Every node has the same block at every height, each with a valid certificate."""
        top = min(h for h in self.heights(names) if h is not None)
        validator_set = self.genesis.validator_set
        for height in range(1, top + 1):
            blocks = [self.block(n, height) for n in names]
            assert len({b["hash"] for b in blocks}) == 1, f"fork at height {height}: {blocks}"
            for answer in blocks:
                cert = CommitCertificate.decode(bytes.fromhex(answer["certificate"]["encoded"]))
                validate_certificate(cert, validator_set, self.genesis.chain_id,
                                     height=height, block_hash=bytes.fromhex(answer["hash"]))
        for name in names:
            assert self.client(name).call("chain_evidence") == [], f"evidence on {name}"
        return top

    def assert_halted(self, names: list[str], seconds: float) -> None:
        start = self.heights(names)
        time.sleep(seconds)
        assert self.heights(names) == start, "the chain advanced without a connected quorum"


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    path = tmp_path_factory.mktemp("faults") / "devnet"
    run_ok("devnet", "up", "--detach", "--nodes", "4", "--base-port", "0", "--dir", str(path),
           "--params", json.dumps(PARAMS))
    net = Devnet(path)
    try:
        yield net
    finally:
        govchain("devnet", "down", "--dir", str(path))
        assert leftover_processes(path) == []


def test_all_validators_propose_and_agree(devnet: Devnet) -> None:
    devnet.wait_heights_above(NAMES, 8, "a fresh devnet finalizing")
    top = devnet.check_safety(NAMES)
    proposers = {devnet.block("node0", h)["proposer"] for h in range(1, top + 1)}
    assert proposers == {v.public_key.hex() for v in devnet.genesis.validator_set.validators}


def test_tx_submitted_to_one_node_is_final_on_all(devnet: Devnet) -> None:
    account = devnet.manifest.accounts[0]
    key = KeyPair.from_seed(bytes.fromhex(account.secret_key))
    receiver = bytes.fromhex(devnet.manifest.accounts[1].address)
    client = devnet.client("node2")
    tx = make_transaction(devnet.genesis.chain_id, key, client.next_nonce(key.address),
                          "transfer", {"to": receiver, "asset": "GOV", "amount": 5})
    client.submit(tx)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        answers = [devnet.client(n).get_tx(tx.hash) for n in NAMES]
        if all(a["status"] == "final" for a in answers):
            break
        assert time.monotonic() < deadline, f"not final everywhere: {answers}"
        time.sleep(0.2)
    assert len({(a["height"], a["index"]) for a in answers}) == 1


def test_one_validator_down_chain_continues(devnet: Devnet) -> None:
    devnet.cli("kill", "node3")
    live = ["node0", "node1", "node2"]
    before = max(h or 0 for h in devnet.heights(live))
    devnet.wait_heights_above(live, before + 3, "three validators of four")
    devnet.check_safety(live)


def test_two_validators_down_halts_then_resumes(devnet: Devnet) -> None:
    devnet.cli("kill", "node2")
    live = ["node0", "node1"]
    time.sleep(1.5)  # let a block that had its quorum already finish
    devnet.assert_halted(live, 4.0)
    halted_at = max(h or 0 for h in devnet.heights(live))
    devnet.cli("start", "node2")
    live = ["node0", "node1", "node2"]
    devnet.wait_heights_above(live, halted_at + 2, "quorum restored")
    devnet.check_safety(live)


def test_sigkilled_node_catches_up_and_rejoins(devnet: Devnet) -> None:
    top = max(h or 0 for h in devnet.heights(["node0", "node1", "node2"]))
    devnet.cli("start", "node3")
    devnet.wait_heights_above(NAMES, top + 2, "node3 syncing and rejoining")
    devnet.check_safety(NAMES)
    # node3 signs again: it appears in a certificate made after its return.
    key = devnet.genesis.validator_set.validators[3].public_key.hex()
    deadline = time.monotonic() + DEADLINE_S
    while True:
        head = devnet.height("node0") or 0
        signers = {s["validator"] for s in devnet.block("node0", head)["certificate"]
                   ["signatures"]}
        if key in signers:
            break
        assert time.monotonic() < deadline, "node3 never signed again"
        time.sleep(0.3)


def test_wiped_validator_resyncs_without_double_signing(devnet: Devnet) -> None:
    devnet.cli("wipe", "node1")
    devnet.cli("start", "node1")
    top = max(h or 0 for h in devnet.heights(["node0", "node2", "node3"]))
    devnet.wait_heights_above(NAMES, top + 2, "the wiped node resyncing")
    devnet.check_safety(NAMES)


def test_partition_two_two_halts_and_heal_resumes(devnet: Devnet) -> None:
    devnet.cli("partition", "node0,node1", "node2,node3")
    time.sleep(1.5)
    devnet.assert_halted(NAMES, 4.0)
    halted_at = max(h or 0 for h in devnet.heights(NAMES))
    devnet.cli("heal")
    devnet.wait_heights_above(NAMES, halted_at + 2, "the healed network")
    devnet.check_safety(NAMES)


def test_quorum_lost_then_regained_with_a_wiped_validator(devnet: Devnet) -> None:
    devnet.cli("kill", "node1")
    devnet.cli("kill", "node2")
    live = ["node0", "node3"]
    time.sleep(1.5)
    devnet.assert_halted(live, 3.0)
    halted_at = max(h or 0 for h in devnet.heights(live))
    devnet.cli("wipe", "node1")
    started = time.monotonic()
    devnet.cli("start", "node1")
    devnet.cli("start", "node2")
    devnet.wait_heights_above(NAMES, halted_at + 2, "quorum regained with a wiped validator")
    print(f"resumed {time.monotonic() - started:.1f} s after the restart")
    devnet.check_safety(NAMES)


def test_all_stopped_and_restarted_resume(devnet: Devnet) -> None:
    for name in NAMES:
        devnet.cli("stop", name)
    for name in NAMES:
        devnet.cli("start", name)
    top = max(h or 0 for h in devnet.heights(NAMES))
    devnet.wait_heights_above(NAMES, top + 2, "all four restarted")
    devnet.check_safety(NAMES)
