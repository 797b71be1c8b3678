"""A real 4-validator devnet (separate processes): /metrics scraped and parsed shows the
height rising, /ready answers 200, an online snapshot is taken from a running node, and
after `devnet down` every node's database audits clean from genesis."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devnet.manifest import read_manifest
from node.ops.replay import audit
from rpc.metrics import parse_exposition
from tests.devnet.test_devnet_integration import devnet_dir, govchain, poll  # noqa: F401


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:
            return parse_exposition(response.read().decode())
    except OSError:
        return None


def metric(samples, name: str, **labels: str) -> float:
    for sample_labels, value in samples[name]:
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError(f"no {name}{labels}")


def ready_status(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


@pytest.mark.slow
def test_devnet_metrics_ready_snapshot_and_audit(devnet_dir: Path) -> None:  # noqa: F811
    done = govchain("devnet", "up", "--detach", "--nodes", "4", "--base-port", "0",
                    "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(devnet_dir)
    url = manifest.get_node("node0").rpc_url

    first = poll(lambda: (s := scrape(url)) and metric(s, "govchain_height") >= 2 and s,
                 "node0's metrics show height >= 2")
    height = metric(first, "govchain_height")
    later = poll(lambda: (s := scrape(url)) and metric(s, "govchain_height") >= height + 3
                 and s, "the height metric to rise by 3")
    assert metric(later, "govchain_peers") == 3
    assert metric(later, "govchain_p2p_bytes_total", direction="in") > 0
    assert metric(later, "govchain_p2p_bytes_total", direction="out") > 0
    assert metric(later, "govchain_is_validator") == 1
    signed = [v for labels, v in later["govchain_validator_last_signed_height"]]
    assert len(signed) >= 3 and max(signed) >= height
    poll(lambda: ready_status(url) == 200, "node0 to be ready")

    home = devnet_dir / "node0"
    done = govchain("--json", "snapshot", "--home", str(home), "--name", "live")
    assert done.returncode == 0, done.stderr
    snap = json.loads(done.stdout)
    assert snap["mode"] == "online" and snap["height_at_start"] >= height

    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    report = audit(home, home / "snapshots" / "live")
    assert report.blocks >= snap["height_at_start"]
    for i in range(4):
        done = govchain("--json", "audit", "--home", str(devnet_dir / f"node{i}"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["result"] == "OK"
