"""`govchain devnet` commands that need no node: parsing, errors, status over a stub RPC."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devnet import process
from devnet.cli import add_devnet_parser
from devnet.links import PARTITION_FILE
from devnet.manifest import LinksEntry, Manifest, NodeEntry, read_manifest, write_manifest
from devnet.ports import read_ephemeral_range

GENESIS_HASH = "ab" * 32


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="govchain")
    parser.add_argument("--json", action="store_true")
    add_devnet_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


class _StatusHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {
            "chain_id": "test", "genesis_hash": GENESIS_HASH, "height": 7, "head_hash": "cd" * 32,
            "finalized_height": 6, "node_id": "ef" * 32, "is_validator": True,
            "peers": ["a", "b", "c"], "version": "stub"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rpc_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _write_devnet(root: Path, rpc_port: int, pid: int | None) -> None:
    nodes = [NodeEntry(name="node0", rpc_url=f"http://127.0.0.1:{rpc_port}", rpc_port=rpc_port,
                       p2p_port=1, home=str(root / "node0"), log=str(root / "node0" / "node.log"),
                       validator=True, pid=pid),
             NodeEntry(name="node1", rpc_url="http://127.0.0.1:1", rpc_port=1, p2p_port=2,
                       home=str(root / "node1"), log=str(root / "node1" / "node.log"),
                       validator=True, pid=None)]
    write_manifest(Manifest(chain_id="test", genesis_hash=GENESIS_HASH, dir=str(root),
                            nodes=nodes, accounts=[],
                            links=LinksEntry(links=[], log=str(root / "links.log"),
                                             control=str(root / PARTITION_FILE))))


def test_commands_on_a_missing_devnet_print_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("status", "down", "heal"):
        assert run("devnet", command, "--dir", str(tmp_path / "none")) == 1
        err = capsys.readouterr().err
        assert err.startswith("govchain: error: no devnet in") and err.count("\n") == 1
    assert run("devnet", "stop", "node0", "--dir", str(tmp_path / "none")) == 1
    assert not (tmp_path / "none").exists()


def test_up_refuses_a_directory_that_is_not_a_devnet(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert run("devnet", "up", "--dir", str(tmp_path), "--base-port", "0") == 1
    assert "holds no devnet" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_up_refuses_a_base_port_in_the_ephemeral_range(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ephemeral = read_ephemeral_range()
    if ephemeral is None:
        pytest.skip("no /proc/sys/net/ipv4/ip_local_port_range here")
    base = ephemeral.first + 2232  # 35000 with Linux's default range
    root = tmp_path / "net"
    assert run("devnet", "up", "--dir", str(root), "--nodes", "16", "--base-port",
               str(base)) == 1
    err = capsys.readouterr().err
    assert err.startswith("govchain: error: --base-port") and err.count("\n") == 1
    assert "ephemeral port range" in err and "--base-port " in err
    assert not (root / "genesis").exists() and not (root / "devnet.json").exists()


def test_up_refuses_a_running_devnet(tmp_path: Path, rpc_port: int,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    stub = process.spawn([sys.executable, "-c", "import time; time.sleep(60)",
                          str(tmp_path / "node0")], tmp_path / "stub.log")
    try:
        _write_devnet(tmp_path, rpc_port, stub)
        assert run("devnet", "up", "--dir", str(tmp_path)) == 1
        assert "already running in" in capsys.readouterr().err
    finally:
        process.kill_group(stub)


def test_status_reports_each_node(tmp_path: Path, rpc_port: int,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    stub = process.spawn([sys.executable, "-c", "import time; time.sleep(60)",
                          str(tmp_path / "node0")], tmp_path / "stub.log")
    try:
        _write_devnet(tmp_path, rpc_port, stub)
        assert run("--json", "devnet", "status", "--dir", str(tmp_path)) == 0
        doc = json.loads(capsys.readouterr().out)
        node0, node1 = doc["nodes"]
        assert node0 | {"alive": True, "answering": True, "height": 7, "finalized_height": 6,
                        "peers": 3, "pid": stub} == node0
        assert node1["alive"] is False and node1["height"] is None
        assert doc["links"]["alive"] is False

        assert run("devnet", "status", "--dir", str(tmp_path)) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["NODE", "PID", "STATE", "HEIGHT", "FINAL", "PEERS", "HEAD",
                                    "RPC"]
        assert table[1].split()[:6] == ["node0", str(stub), "answering", "7", "6", "3"]
        assert table[2].split()[:3] == ["node1", "-", "stopped"]

        assert run("devnet", "stop", "0", "--dir", str(tmp_path)) == 0
        assert capsys.readouterr().out.strip() == "node0: stopped"
        assert read_manifest(tmp_path).nodes[0].pid is None
        assert not process.is_group_running(stub)
    finally:
        if process.is_group_running(stub):
            process.kill_group(stub)


def test_partition_without_a_proxy_is_recorded_and_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_devnet(tmp_path, 1, None)
    assert run("devnet", "partition", "node0", "--dir", str(tmp_path)) == 1
    assert "link proxy is not running" in capsys.readouterr().err
    assert json.loads((tmp_path / PARTITION_FILE).read_text()) == {
        "version": 1, "cut": [["node0", "node1"]]}
