"""An upgrade rehearsal across processes, with two versions of the code: the "new
version" is this tree run with GOVCHAIN_REHEARSAL_UPGRADE=NAME, which implements the
upgrade NAME (max_block_txs becomes 777 from its height). Governance schedules NAME at
height H; every node (two validators, one public full node) commits H-1 and halts
saying so; the old version refuses to start; the new version resumes at H with no
block lost and the new rule; an old version started past H refuses too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from devnet.manifest import read_manifest
from ledger.upgrades import REHEARSAL_CHANGES
from node.upgrades import EXIT_HALTED_FOR_UPGRADE, REHEARSAL_ENV
from sdk import Client
from tests.devnet.test_devnet_integration import (
    ROOT,
    devnet_dir,  # noqa: F401 - the fixture
    govchain,
    leftover_processes,
    poll,
    statuses,
)

pytestmark = pytest.mark.slow

PARAMS = {"block_interval_ms": 100, "empty_block_interval_ms": 400,
          "timeout_propose_ms": 600, "timeout_vote_ms": 300, "timeout_delta_ms": 200}
NAME = "v2-rehearsal"
NODES = ["node0", "node1", "full0"]


def _validator_key(root: Path, i: int) -> KeyPair:
    doc = json.loads((root / "genesis" / f"validator{i}_key.json").read_text())
    return KeyPair.from_seed(bytes.fromhex(doc["secret_seed"]))


def _run_old_version(home: str) -> subprocess.CompletedProcess[str]:
    """`govchain run` of the old version (no rehearsal upgrade), to completion."""
    env = {k: v for k, v in os.environ.items() if k != REHEARSAL_ENV}
    env.update(PYTHONPATH=str(ROOT), GOVCHAIN_UPGRADE_HALT_LINGER_S="0")
    return subprocess.run([sys.executable, "-m", "cli", "run", "--home", home],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def test_upgrade_rehearsal_halts_at_h_minus_1_and_resumes_with_the_new_version(
        devnet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.delenv(REHEARSAL_ENV, raising=False)
    # Halted nodes keep answering until `devnet down`, so that the test reads their status.
    monkeypatch.setenv("GOVCHAIN_UPGRADE_HALT_LINGER_S", "120")
    done = govchain("devnet", "up", "--detach", "--nodes", "2", "--full-nodes", "1",
                    "--base-port", "0", "--params", json.dumps(PARAMS),
                    "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(devnet_dir)
    v0, v1 = (Client(manifest.get_node(name).rpc_url) for name in ("node0", "node1"))
    height = v0.status()["height"] + 25
    proposed = v0.send(_validator_key(devnet_dir, 0), "propose", {
        "action": "schedule_upgrade", "expiry_height": height - 5,
        "args": {"name": NAME, "height": height, "info": "govchain 2.0, sha256 ..."}})
    assert proposed["status"] == "final", proposed
    proposal = next(e["attributes"]["id"] for e in proposed["events"]
                    if e["kind"] == "proposal_created")
    voted = v1.send(_validator_key(devnet_dir, 1), "vote", {"proposal": proposal})
    assert voted["status"] == "final", voted
    public = Client(manifest.get_node("full0").rpc_url)
    plan = poll(lambda: public.status()["upgrade"], "the full node seeing the plan")
    assert (plan["name"], plan["height"], plan["status"]) == (NAME, height, "scheduled")

    # Every node commits H-1 and halts with the message, its RPC saying why.
    def all_halted() -> dict[str, dict[str, object]] | None:
        seen = statuses(manifest, NODES)
        return seen if all(s is not None and s["halted"] for s in seen.values()) else None  # type: ignore[misc]

    for name, status in poll(all_halted, "every node halting for the upgrade").items():
        assert status["height"] == height - 1, name
        assert str(status["halted"]).startswith(f"halted for upgrade {NAME} at {height}")
    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    for name in NODES:
        log = Path(manifest.get_node(name).log).read_text()
        assert f"halted for upgrade {NAME} at {height}" in log, name
        assert f"final block {height - 1} " in log and f"final block {height} " not in log

    # The old version refuses to start on the halted chain, naming the upgrade.
    old = _run_old_version(manifest.get_node("node1").home)
    assert old.returncode == EXIT_HALTED_FOR_UPGRADE, old.stderr[-2000:]
    assert f"halted for upgrade {NAME} at {height}" in old.stderr + old.stdout

    # The new version: the same devnet started again, and nothing else done.
    monkeypatch.setenv(REHEARSAL_ENV, NAME)
    done = govchain("devnet", "up", "--detach", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr

    def past_h() -> bool:
        seen = statuses(manifest, NODES)
        return all(s is not None and s["height"] >= height + 2 for s in seen.values())  # type: ignore[index]

    poll(past_h, "the new version finalizing past the upgrade height")
    for name in NODES:
        client = Client(manifest.get_node(name).rpc_url)
        upgrade = client.call("state_upgrade", name=NAME)
        assert upgrade["last_applied"]["name"] == NAME
        assert upgrade["plan"]["status"] == "applied"
        assert upgrade["plan"]["decided_height"] == height
        assert upgrade["params"]["max_block_txs"] == REHEARSAL_CHANGES["max_block_txs"]
        assert NAME in [u["name"] for u in upgrade["implemented"]]
        hashes = [client.call("chain_block", height=h)["hash"]
                  for h in (height - 1, height, height + 1)]
        assert len(set(hashes)) == 3  # no block lost around the upgrade

    # An old version started past H refuses too: the chain applied what it lacks.
    done = govchain("devnet", "stop", "full0", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    old = _run_old_version(manifest.get_node("full0").home)
    assert old.returncode == EXIT_HALTED_FOR_UPGRADE, old.stderr[-2000:]
    assert f"halted for upgrade {NAME} at {height}: the chain applied it" in \
        old.stderr + old.stdout

    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    assert leftover_processes(devnet_dir) == []
