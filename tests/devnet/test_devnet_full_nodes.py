"""Public full nodes in front of the validators, across processes: `govchain devnet up
--full-nodes 2` prints their RPC URLs as the public endpoints; a transaction submitted
to one full node is relayed to the validators, becomes final and is read from the other
full node; each validator admits only the other validator and its own full node. The
full nodes' links go through the link proxy: isolating one cuts it off, healing
reconnects it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from devnet.manifest import read_manifest
from sdk import Client
from tests.devnet.test_devnet_integration import (
    devnet_dir,  # noqa: F401 - the fixture
    govchain,
    leftover_processes,
    poll,
    statuses,
)

pytestmark = pytest.mark.slow

PARAMS = {"block_interval_ms": 100, "empty_block_interval_ms": 400,
          "timeout_propose_ms": 600, "timeout_vote_ms": 300, "timeout_delta_ms": 200}


def test_tx_through_a_full_node_is_final_and_read_from_another(
        devnet_dir: Path) -> None:  # noqa: F811
    done = govchain("devnet", "up", "--detach", "--nodes", "2", "--full-nodes", "2",
                    "--base-port", "0", "--params", json.dumps(PARAMS),
                    "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(devnet_dir)
    full0, full1 = manifest.get_node("full0"), manifest.get_node("full1")
    assert (full0.fronts, full1.fronts) == ("node0", "node1")
    assert not full0.validator and not full1.validator
    public = done.stdout.split("public endpoints", 1)[1]
    assert full0.rpc_url in public and full1.rpc_url in public
    assert manifest.get_node("node0").rpc_url not in public

    # Each validator is connected to the other validator and its own full node only.
    def validators_linked() -> bool:
        seen = statuses(manifest, ["node0", "node1", "full0", "full1"])
        return all(s is not None for s in seen.values()) and \
            all(seen[name]["peers"] == 2 for name in ("node0", "node1"))  # type: ignore[index]

    poll(validators_linked, "each validator has its two peers")
    node0_peers = Client(manifest.get_node("node0").rpc_url).call("admin_peers")
    node0_ids = {peer["node_id"] for peer in node0_peers}
    assert len(node0_ids) == 2
    full1_id = Client(full1.rpc_url).status()["node_id"]
    assert full1_id not in node0_ids  # another ministry's full node is not let in

    sender = KeyPair.from_seed(bytes.fromhex(manifest.accounts[0].secret_key))
    recipient = KeyPair.generate()
    entry = Client(full0.rpc_url)
    tx = entry.build(sender, "transfer", {"to": recipient.address, "asset": "GOV",
                                          "amount": 12345})
    result = entry.submit_and_wait(tx, timeout_s=60)
    assert result["status"] == "final", result

    reader = Client(full1.rpc_url)

    def read_final() -> dict[str, object] | None:
        seen = reader.get_tx(tx.hash.hex())
        return seen if seen["status"] == "final" else None

    seen = poll(read_final, "the transaction is final on the other full node")
    assert seen["height"] == result["height"]
    account = reader.account(recipient.address)
    assert account["balances"] == {"GOV": 12345}

    # Cut full1 off (its links to node1 and full0), then heal: it reconnects and follows.
    done = govchain("devnet", "isolate", "full1", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr

    def full1_cut_off() -> bool:
        seen = statuses(manifest, ["node1", "full1"])
        return seen["full1"] is not None and seen["full1"]["peers"] == 0 \
            and seen["node1"] is not None and seen["node1"]["peers"] == 1

    poll(full1_cut_off, "full1 has lost every peer and node1 its full node")
    done = govchain("devnet", "heal", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    cut_at = Client(manifest.get_node("node1").rpc_url).status()["finalized_height"]
    poll(lambda: reader.status()["finalized_height"] > cut_at + 2,
         "full1 follows the chain again after the heal")

    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    assert leftover_processes(devnet_dir) == []
