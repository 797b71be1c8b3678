"""A real 4-validator devnet through the `govchain devnet` CLI: it agrees, survives a
crashed validator, and leaves no process behind. Black-box: RPC and the manifest only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet import process
from devnet.manifest import Manifest, read_manifest
from devnet.rpc import get_node_status

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 180.0
PROGRESS_TIMEOUT_S = 120.0


def govchain(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


def statuses(manifest: Manifest, names: list[str]) -> dict[str, dict[str, Any] | None]:
    return {name: get_node_status(manifest.get_node(name).rpc_url, timeout_s=2.0)
            for name in names}


def poll(condition: Any, what: str, timeout_s: float = PROGRESS_TIMEOUT_S) -> Any:
    """Call `condition` until it returns a truthy value; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def leftover_processes(devnet_dir: Path) -> list[str]:
    """Living processes whose command line mentions the devnet directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process.is_alive(int(entry.name)):
            cmdline = process.read_cmdline(int(entry.name)) or ""
            if str(devnet_dir) in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "devnet"
    yield path
    if (path / "devnet.json").exists():  # the test failed half-way: stop what it started
        govchain("devnet", "down", "--dir", str(path))
        manifest = read_manifest(path)
        for pid in [n.pid for n in manifest.nodes] + [s.pid for s in manifest.signers] \
                + [manifest.links.pid]:
            if pid is not None and process.get_group_members(pid):
                process.kill_group(pid)


def agreed_height(manifest: Manifest, names: list[str]) -> int | None:
    """A height >= 3 at which every node reports the same head hash, seen at one moment."""
    seen = statuses(manifest, names)
    if any(status is None for status in seen.values()):
        return None
    heights = {status["height"] for status in seen.values() if status}
    heads = {status["head_hash"] for status in seen.values() if status}
    if len(heights) == 1 and len(heads) == 1 and min(heights) >= 3:
        return int(heights.pop())
    return None


@pytest.mark.slow
def test_devnet_agrees_survives_a_crash_and_leaves_nothing(devnet_dir: Path) -> None:
    done = govchain("devnet", "up", "--detach", "--nodes", "4", "--base-port", "0",
                    "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(devnet_dir)
    names = [node.name for node in manifest.nodes]
    assert len(names) == 4 and all(node.validator for node in manifest.nodes)
    for status in statuses(manifest, names).values():
        assert status is not None and status["genesis_hash"] == manifest.genesis_hash

    poll(lambda: agreed_height(manifest, names), "all 4 nodes agree on a head at height >= 3")

    done = govchain("devnet", "kill", "node3", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    survivors = names[:3]
    before = {name: status["height"] for name, status in statuses(manifest, survivors).items()
              if status is not None}
    assert len(before) == 3

    def advanced() -> bool:
        now = statuses(manifest, survivors)
        return all(s is not None and s["height"] >= before[n] + 2 for n, s in now.items())

    poll(advanced, "the 3 surviving validators make 2 more blocks")
    poll(lambda: agreed_height(manifest, survivors), "the survivors agree on a head")

    done = govchain("devnet", "down", "--dir", str(devnet_dir))
    assert done.returncode == 0, done.stderr
    manifest_after = read_manifest(devnet_dir)
    assert all(node.pid is None for node in manifest_after.nodes)
    for pid in [node.pid for node in manifest.nodes] + [manifest.links.pid]:
        assert pid is not None and process.get_group_members(pid) == []
    assert leftover_processes(devnet_dir) == []
