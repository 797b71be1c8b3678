"""The `govchain` command line as a user runs it: real subprocesses, one node process."""

from __future__ import annotations

import json

import pytest

from chain.crypto import KeyPair
from chain.genesis import ChainParams
from tests.node.conftest import ACCOUNT_KEYS, make_genesis
from tests.node.procs import NodeProcess, govchain


def assert_one_line_error(result, fragment: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govchain: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0]


def test_keys_new_and_show(tmp_path):
    path = tmp_path / "k.json"
    made = json.loads(govchain("--json", "keys", "new", "--out", str(path)).stdout)
    shown = json.loads(govchain("--json", "keys", "show", str(path)).stdout)
    assert made["public_key"] == shown["public_key"]
    assert made["address"] == shown["address"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert_one_line_error(govchain("keys", "new", "--out", str(path)), "refusing to overwrite")


def test_genesis_new_and_init_refusals(tmp_path):
    out = json.loads(govchain("--json", "genesis", "new", "--validators", "2", "--accounts", "2",
                              "--out-dir", str(tmp_path / "g")).stdout)
    assert len(out["validators"]) == 2 and len(out["accounts"]) == 2
    home = tmp_path / "home"
    args = ["init", "--home", str(home), "--genesis", out["genesis"],
            "--validator-key", str(tmp_path / "g" / "validator0_key.json")]
    assert govchain(*args).returncode == 0
    assert_one_line_error(govchain(*args), "already holds a node home")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(govchain("init", "--home", str(tmp_path / "h2"), "--genesis",
                                   str(bad)), "JSON")


@pytest.fixture
def node(tmp_path):
    validator = KeyPair.from_seed(b"\x09" * 32)
    process = NodeProcess(tmp_path / "node", make_genesis(
        [validator], ChainParams(block_interval_ms=50, empty_block_interval_ms=500)), validator)
    process.start()
    yield process
    process.kill()


@pytest.mark.slow
def test_transfer_and_queries(node, tmp_path):
    rpc = node.client.url.removesuffix("/rpc")
    key_path = tmp_path / "alice.json"
    alice, bob = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]
    key_path.write_text(json.dumps({"public_key": alice.public_key.hex(),
                                    "secret_seed": alice.seed.hex()}))
    result = govchain("--json", "tx", "transfer", "--key", str(key_path), "--to",
                      bob.address.hex(), "--amount", "25", "--rpc", rpc)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["status"] == "final" and final["code"] == "ok"
    human = govchain("tx", "transfer", "--key", str(key_path), "--to", bob.address.hex(),
                     "--amount", "1", "--rpc", rpc)
    assert human.returncode == 0 and "final" in human.stdout
    assert "waiting" in human.stderr  # progress while it waits
    tx = json.loads(govchain("--json", "query", "tx", final["hash"], "--rpc", rpc).stdout)
    assert tx["height"] == final["height"]
    block = json.loads(govchain("--json", "query", "block", str(final["height"]),
                                "--rpc", rpc).stdout)
    assert final["hash"] in block["txs"]
    account = json.loads(govchain("--json", "query", "account", bob.address.hex(),
                                  "--rpc", rpc).stdout)
    assert account["balances"]["GOV"] > 0
    status = json.loads(govchain("--json", "query", "status", "--rpc", rpc).stdout)
    assert status["height"] >= final["height"]
    validators = json.loads(govchain("--json", "query", "validators", "--rpc", rpc).stdout)
    assert validators["quorum"] == 1
    assert_one_line_error(govchain("tx", "transfer", "--key", str(key_path), "--to", "xyz",
                                   "--amount", "1", "--rpc", rpc), "hex address")
    assert node.stop() == 0
    assert "stopped" in node.log_tail(5)
    assert_one_line_error(govchain("query", "status", "--rpc", rpc), "cannot reach")
