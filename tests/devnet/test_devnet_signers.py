"""Validators whose keys are in `govchain signer` processes, across processes: `govchain
devnet up --signers` starts one signer per validator and no key is in a node's home; the
chain finalizes; with signer1 killed the other three go on, node1 keeps running and
following but signs nothing; started again, signer1 signs for node1 at once: node1's
signatures are back in the commit certificates with no restart of node1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devnet import process
from devnet.manifest import read_manifest
from sdk import Client
from tests.devnet.test_devnet_integration import (
    devnet_dir,  # noqa: F401 - the fixture
    govchain,
    leftover_processes,
    poll,
)

pytestmark = pytest.mark.slow

PARAMS = {"block_interval_ms": 100, "empty_block_interval_ms": 300,
          "timeout_propose_ms": 500, "timeout_vote_ms": 300, "timeout_delta_ms": 200}


def get_signers_of(client: Client, height: int) -> tuple[str, set[str]]:
    """(proposer, validators whose precommit is in the certificate) of block `height`."""
    block: dict[str, Any] = client.call("chain_block", height=height)
    return block["proposer"], {s["validator"] for s in block["certificate"]["signatures"]}


def test_a_signer_away_and_back_keeps_its_validator_in_consensus(
        devnet_dir: Path) -> None:  # noqa: F811
    done = govchain("devnet", "up", "--detach", "--signers", "--nodes", "4",
                    "--base-port", "0", "--params", json.dumps(PARAMS),
                    "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(devnet_dir)
    assert [s.name for s in manifest.signers] == ["signer0", "signer1", "signer2", "signer3"]
    node1 = manifest.get_node("node1")
    signer1 = manifest.get_signer("signer1")
    assert node1.signer == "signer1" and signer1.public_key == node1.validator_key
    assert not (Path(node1.home) / "validator_key.json").exists()
    assert "signed by signer1" in done.stdout
    status = json.loads(govchain("devnet", "status", "--json", "--dir", str(devnet_dir)).stdout)
    assert [(s["name"], s["alive"]) for s in status["signers"]] == \
        [(f"signer{i}", True) for i in range(4)]

    observer = Client(manifest.get_node("node0").rpc_url)
    follower = Client(node1.rpc_url)
    key1 = signer1.public_key

    def node1_signed_since(start: int) -> int | None:
        """A final height >= start whose block node1 proposed or whose certificate it signed."""
        final = observer.status()["finalized_height"]
        for height in range(start, final + 1):
            proposer, signed = get_signers_of(observer, height)
            if key1 == proposer or key1 in signed:
                return height
        return None

    poll(lambda: node1_signed_since(1), "node1 signs through signer1")

    log_offset = Path(node1.log).stat().st_size
    done = govchain("devnet", "kill", "signer1", "--dir", str(devnet_dir))
    assert done.returncode == 0 and "killed" in done.stdout, done.stderr
    killed_at = observer.status()["finalized_height"]
    # Three of four go on; node1 follows them, and says it has no signer.
    poll(lambda: follower.status()["finalized_height"] >= killed_at + 6,
         "the chain finalizes without signer1 and node1 follows it")
    assert "no signer connected: not signing" in Path(node1.log).read_text()[log_offset:]
    away_until = observer.status()["finalized_height"]
    for height in range(killed_at + 2, away_until + 1):  # +2: votes already on their way
        proposer, signed = get_signers_of(observer, height)
        assert key1 != proposer and key1 not in signed, f"node1 signed height {height}"
    assert process.is_group_running(node1.pid, marker=node1.home)

    done = govchain("devnet", "start", "signer1", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    back = poll(lambda: node1_signed_since(away_until + 1),
                "node1 signs again once signer1 is back")
    assert back > away_until
    assert read_manifest(devnet_dir).get_node("node1").pid == node1.pid  # never restarted
    assert process.is_group_running(node1.pid, marker=node1.home)

    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    assert "signer1: stopped" in done.stderr
    assert leftover_processes(devnet_dir) == []
