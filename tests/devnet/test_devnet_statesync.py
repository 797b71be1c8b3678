"""State sync across processes: a 4-validator devnet runs, a fifth node joins it by
state sync (`govchain devnet add-node --state-sync`) and follows the head with the same
state root. Black-box: the CLI, RPC, the manifest and the node's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
VALIDATORS = ["node0", "node1", "node2", "node3"]


def test_a_node_added_by_state_sync_joins_and_follows(devnet_dir: Path) -> None:  # noqa: F811
    done = govchain("devnet", "up", "--detach", "--nodes", "4", "--base-port", "0",
                    "--params", json.dumps(PARAMS), "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(devnet_dir)

    done = govchain("--json", "devnet", "add-node", "--state-sync", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)
    assert added["node"] == "node4" and added["state_sync"] is True
    manifest = read_manifest(devnet_dir)
    joiner = manifest.get_node("node4")
    assert not joiner.validator

    status = statuses(manifest, ["node4"])["node4"]
    assert status is not None and status["base_height"] > 1  # it did not replay history
    log = Path(joiner.log).read_text()
    assert "restored the state at height" in log

    def following() -> int | None:
        seen = statuses(manifest, [*VALIDATORS, "node4"])
        if any(s is None for s in seen.values()):
            return None
        mine = seen["node4"]
        top = max(s["height"] for s in seen.values() if s)
        return mine["height"] if mine and mine["height"] >= top - 1 else None

    height = poll(following, "node4 follows the validators' head")
    roots = {Client(manifest.get_node(name).rpc_url).call("chain_block", height=height)
             ["state_root"] for name in ["node0", "node4"]}
    assert len(roots) == 1, "node4 and node0 hold different states at the same height"

    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    assert leftover_processes(devnet_dir) == []
