"""A WAN rehearsal on a real devnet of 4 validators and 2 public full nodes: every link
between ministries 20-80 ms each way with jitter, 1 % of TCP segments lost, node0 <->
node3 at 300 ms each way, each full node 1 ms from its own validator, all set while
the network runs. The chain keeps finalizing on every node, a transaction sent to the
full node in front of node0 (behind the slow link) becomes final everywhere, and every
node holds the same blocks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from chain.tx import make_transaction
from tests.devnet.test_devnet_faults import Devnet, run_ok
from tests.devnet.test_devnet_integration import govchain, leftover_processes

pytestmark = pytest.mark.slow

PARAMS = {"block_interval_ms": 100, "empty_block_interval_ms": 400}
DEADLINE_S = 120.0
VALIDATORS = ["node0", "node1", "node2", "node3"]
FULL_NODES = ["full0", "full1"]
NAMES = VALIDATORS + FULL_NODES


def _wait_final_everywhere(devnet: Devnet, tx_hash: bytes) -> list[dict[str, object]]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        answers = [devnet.client(n).get_tx(tx_hash) for n in NAMES]
        if all(a["status"] == "final" for a in answers):
            return answers
        assert time.monotonic() < deadline, f"not final everywhere: {answers}"
        time.sleep(0.2)


def test_chain_keeps_finalizing_over_a_lossy_wan_with_one_slow_link(tmp_path: Path) -> None:
    path = tmp_path / "devnet"
    run_ok("devnet", "up", "--detach", "--nodes", "4", "--full-nodes", "2", "--base-port", "0",
           "--dir", str(path), "--params", json.dumps(PARAMS))
    try:
        devnet = Devnet(path)
        devnet.wait_heights_above(NAMES, 2, "a fresh devnet finalizing")
        shown = json.loads(run_ok("--json", "devnet", "link", "wan", "--slow", "node0,node3",
                                  "--seed", "1", "--dir", str(path)))
        assert shown["applied"] is True
        delays = {(link["src"], link["dst"]): link for link in shown["links"]}
        # Between validators 12 directions; full0 <-> node0, full1 <-> node1, full0 <-> full1.
        # A validator has no link to another ministry's full node.
        assert len(delays) == 18 and ("full0", "node1") not in delays
        for (src, dst), link in delays.items():
            if {src, dst} in ({"full0", "node0"}, {"full1", "node1"}):
                assert (link["delay_ms"], link["jitter_ms"], link["loss"]) == (1, 0, 0)
                continue
            assert link["loss"] == 0.01
            if {src, dst} == {"node0", "node3"}:
                assert link["delay_ms"] == 300
            else:
                assert link["delay_ms"] - link["jitter_ms"] >= 20
                assert link["delay_ms"] + link["jitter_ms"] <= 80
        assert delays["full0", "full1"] == {**delays["node0", "node1"],
                                            "src": "full0", "dst": "full1"}

        start = max(h or 0 for h in devnet.heights(NAMES))
        devnet.wait_heights_above(NAMES, start + 10, "finality over the WAN")

        account = devnet.manifest.accounts[0]
        key = KeyPair.from_seed(bytes.fromhex(account.secret_key))
        client = devnet.client("full0")
        tx = make_transaction(devnet.genesis.chain_id, key, client.next_nonce(key.address),
                              "transfer", {"to": bytes.fromhex(devnet.manifest.accounts[1].address),
                                           "asset": "GOV", "amount": 5})
        client.submit(tx)
        answers = _wait_final_everywhere(devnet, tx.hash)
        assert len({(a["height"], a["index"]) for a in answers}) == 1
        devnet.check_safety(NAMES)

        # The shaping happened in the proxy process: bytes crossed every linked direction,
        # the full nodes' included, and the lossy links lost segments (counted in
        # DIR/links.stats.json).
        deadline = time.monotonic() + DEADLINE_S
        while True:
            stats = json.loads(run_ok("--json", "devnet", "link", "show",
                                      "--dir", str(path)))["stats"]
            if sum(s["lost_segments"] for s in stats.values()) > 0:
                break
            assert time.monotonic() < deadline, f"no segment lost: {stats}"
            time.sleep(1.0)
        assert all(stats[f"{a}->{b}"]["delivered_bytes"] > 0 for a, b in delays), stats
        assert all(stats[f"{a}->{b}"]["lost_segments"] == 0
                   for a, b in (("full0", "node0"), ("node0", "full0"))), stats

        cleared = json.loads(run_ok("--json", "devnet", "link", "clear", "--dir", str(path)))
        assert cleared["links"] == [] and cleared["applied"] is True
        top = max(h or 0 for h in devnet.heights(NAMES))
        devnet.wait_heights_above(NAMES, top + 3, "finality after the links are cleared")
    finally:
        govchain("devnet", "down", "--dir", str(path))
        assert leftover_processes(path) == []
