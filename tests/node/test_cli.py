"""The `govchain` CLI as an operator and an integrator use it: real subprocesses, real node."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devnet.ports import get_free_port
from tests.node.procs import NodeProcess, ProcessSet, init_node, run_cli, wait_for

JsonDoc = dict[str, Any]

FAST_PARAMS = json.dumps({"block_interval_ms": 50, "empty_block_interval_ms": 400,
                          "timeout_propose_ms": 400, "timeout_vote_ms": 200,
                          "timeout_delta_ms": 100})
BALANCE = 10**15


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 1, nothing on stdout, one `govchain: error:` line on stderr."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("govchain: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def cli_json(*args: str) -> JsonDoc:
    result = run_cli("--json", *args)
    assert result.returncode == 0, result.stderr
    doc: JsonDoc = json.loads(result.stdout)
    return doc


def new_genesis(out_dir: Path) -> JsonDoc:
    return cli_json("genesis", "new", "--validators", "1", "--accounts", "2",
                    "--chain-id", "govchain-cli", "--params", FAST_PARAMS,
                    "--out-dir", str(out_dir))


def wait_status(rpc_url: str, timeout_s: float = 20.0) -> JsonDoc:
    def probe() -> JsonDoc | None:
        result = run_cli("--json", "query", "status", "--rpc", rpc_url)
        return json.loads(result.stdout) if result.returncode == 0 else None
    return wait_for(probe, timeout_s=timeout_s, what=f"query status at {rpc_url}")


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    procs = ProcessSet()
    try:
        yield procs
    finally:
        procs.close()


# ------------------------------------------------------------------ keys, genesis, init


def new_key_args(tmp_path: Path, key_file: Path) -> list[str]:
    """`keys new` with an encrypted key, unlocked by a passphrase file (fast KDF)."""
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery staple\n")
    return ["keys", "new", "--out", str(key_file), "--passphrase-file", str(passphrase),
            "--kdf-cost", "test"]


def test_keys_new_then_show_round_trip(tmp_path: Path) -> None:
    key_file = tmp_path / "alice.json"
    created = cli_json(*new_key_args(tmp_path, key_file))
    assert created["file"] == str(key_file)
    assert len(created["public_key"]) == 64 and len(created["address"]) == 40
    assert key_file.stat().st_mode & 0o077 == 0, "a key file is readable by its owner only"
    shown = cli_json("keys", "show", str(key_file))
    assert (shown["public_key"], shown["address"]) == (created["public_key"], created["address"])
    assert shown["encrypted"] is True
    plain = run_cli("keys", "show", str(key_file))
    assert plain.returncode == 0
    assert created["address"] in plain.stdout and not plain.stdout.lstrip().startswith("{")


def test_invalid_keys_new_refuses_to_overwrite(tmp_path: Path) -> None:
    key_file = tmp_path / "alice.json"
    cli_json(*new_key_args(tmp_path, key_file))
    before = key_file.read_bytes()
    assert_one_line_error(run_cli(*new_key_args(tmp_path, key_file)), "refusing to overwrite")
    assert key_file.read_bytes() == before


def test_invalid_keys_show_missing_or_bad_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("keys", "show", str(tmp_path / "none.json")), "missing")
    bad = tmp_path / "bad.json"
    bad.write_text('{"secret_seed": "zz"}')
    assert_one_line_error(run_cli("keys", "show", str(bad)), "names no public_key")


def test_genesis_new_writes_files_and_prints_json(tmp_path: Path) -> None:
    out_dir = tmp_path / "net"
    doc = new_genesis(out_dir)
    assert Path(doc["genesis"]) == out_dir / "genesis.json"
    assert len(doc["genesis_hash"]) == 64
    assert len(doc["validators"]) == 1 and len(doc["accounts"]) == 2
    genesis = json.loads((out_dir / "genesis.json").read_text())
    assert genesis["chain_id"] == "govchain-cli"
    assert genesis["params"]["block_interval_ms"] == 50
    assert [v["public_key"] for v in genesis["validators"]] == doc["validators"]
    assert (out_dir / "validator0_key.json").exists()
    for account in doc["accounts"]:
        assert Path(account["key_file"]).exists()
        shown = cli_json("keys", "show", account["key_file"])
        assert shown["address"] == account["address"]


def test_init_creates_home_and_refuses_an_existing_one(tmp_path: Path) -> None:
    new_genesis(tmp_path / "net")
    home = tmp_path / "home"
    args = ["init", "--home", str(home), "--genesis", str(tmp_path / "net" / "genesis.json"),
            "--validator-key", str(tmp_path / "net" / "validator0_key.json")]
    first = run_cli("--json", *args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["home"] == str(home)
    for name in ("config.toml", "genesis.json", "validator_key.json", "node_key.json"):
        assert (home / name).exists()
    config_before = (home / "config.toml").read_bytes()
    assert_one_line_error(run_cli(*args), "already holds a node home")
    assert (home / "config.toml").read_bytes() == config_before


@pytest.mark.parametrize("genesis_text, needle", [
    ("not json at all", "not valid JSON"),
    ('{"chain_id": "x"}', "genesis"),
    (None, "cannot read genesis"),
])
def test_invalid_init_bad_genesis(tmp_path: Path, genesis_text: str | None,
                                  needle: str) -> None:
    genesis = tmp_path / "genesis.json"
    if genesis_text is not None:
        genesis.write_text(genesis_text)
    home = tmp_path / "home"
    assert_one_line_error(run_cli("init", "--home", str(home), "--genesis", str(genesis)),
                          needle)
    assert not home.exists(), "a refused init writes nothing"


def test_invalid_query_dead_port() -> None:
    result = run_cli("query", "status", "--rpc", f"http://127.0.0.1:{get_free_port()}")
    assert_one_line_error(result, "unreachable")


# ------------------------------------------------------------------ against a running node


@dataclass
class CliChain:
    node: NodeProcess
    net_dir: Path
    genesis: JsonDoc

    @property
    def rpc(self) -> list[str]:
        return ["--rpc", self.node.rpc_url]

    def account_key(self, i: int) -> str:
        path: str = self.genesis["accounts"][i]["key_file"]
        return path

    def address(self, i: int) -> str:
        address: str = self.genesis["accounts"][i]["address"]
        return address


def start_chain(tmp_path: Path, processes: ProcessSet) -> CliChain:
    net_dir = tmp_path / "net"
    genesis = new_genesis(net_dir)
    node = processes.add(init_node(tmp_path / "home", net_dir / "genesis.json",
                                   net_dir / "validator0_key.json"))
    node.start()
    wait_status(node.rpc_url)
    return CliChain(node, net_dir, genesis)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliChain]:
    procs = ProcessSet()
    try:
        yield start_chain(tmp_path_factory.mktemp("cli-chain"), procs)
    finally:
        procs.close()


def test_query_status_and_validators(chain: CliChain) -> None:
    status = cli_json("query", "status", *chain.rpc)
    assert status["chain_id"] == "govchain-cli"
    assert status["genesis_hash"] == chain.genesis["genesis_hash"]
    assert status["is_validator"] is True
    validators = cli_json("query", "validators", *chain.rpc)
    assert [v["public_key"] for v in validators["validators"]] == chain.genesis["validators"]
    assert validators["quorum"] == 1
    plain = run_cli("query", "status", *chain.rpc)
    assert plain.returncode == 0 and "govchain-cli" in plain.stdout


def test_tx_transfer_then_query_account_tx_block(chain: CliChain) -> None:
    sender, receiver = chain.address(0), chain.address(1)
    before = cli_json("query", "account", receiver, *chain.rpc)["balances"]["GOV"]
    plain = run_cli("tx", "transfer", "--key", chain.account_key(0), "--to", receiver,
                    "--amount", "5", *chain.rpc)
    assert plain.returncode == 0, plain.stderr
    assert "Traceback" not in plain.stderr
    status_line = [line for line in plain.stdout.splitlines() if line.startswith("status")]
    assert status_line and status_line[0].split() == ["status", "final"]

    result = cli_json("tx", "transfer", "--key", chain.account_key(0), "--to", receiver,
                      "--amount", "7", *chain.rpc)
    assert result["status"] == "final" and result["code"] == "ok"
    assert result["height"] >= 1

    account = cli_json("query", "account", receiver, *chain.rpc)
    assert account["balances"]["GOV"] == before + 12
    assert cli_json("query", "account", sender, *chain.rpc)["next_nonce"] >= 2

    tx = cli_json("query", "tx", result["hash"], *chain.rpc)
    assert (tx["status"], tx["height"], tx["index"]) == ("final", result["height"],
                                                          result["index"])
    block = cli_json("query", "block", str(result["height"]), *chain.rpc)
    assert result["hash"] in block["txs"]
    assert block["certificate"]["height"] == result["height"]
    assert cli_json("query", "block", block["hash"], *chain.rpc)["height"] == block["height"]
    latest = cli_json("query", "block", *chain.rpc)
    assert latest["height"] >= block["height"]


def test_tx_transfer_no_wait_returns_pending_or_final(chain: CliChain) -> None:
    result = cli_json("tx", "transfer", "--no-wait", "--key", chain.account_key(1),
                      "--to", chain.address(0), "--amount", "1", *chain.rpc)
    assert result["status"] in ("pending", "final")

    def final_tx() -> JsonDoc | None:
        doc = cli_json("query", "tx", result["hash"], *chain.rpc)
        return doc if doc["status"] == "final" else None

    final = wait_for(final_tx, timeout_s=10, what="transfer final")
    assert final["code"] == "ok" and final["height"] >= 1


@pytest.mark.parametrize("to, needle", [
    ("zz-not-hex", "not a hex address"),
    ("abcd", "20 bytes"),
])
def test_invalid_transfer_to_malformed_address(chain: CliChain, to: str, needle: str) -> None:
    result = run_cli("tx", "transfer", "--key", chain.account_key(0), "--to", to,
                     "--amount", "1", *chain.rpc)
    assert_one_line_error(result, needle)


def test_invalid_queries_answer_one_line(chain: CliChain) -> None:
    assert_one_line_error(run_cli("query", "block", "999999", *chain.rpc), "block_not_found")
    assert_one_line_error(run_cli("query", "tx", *chain.rpc), "needs a transaction hash")
    assert_one_line_error(run_cli("query", "tx", "zz", *chain.rpc), "invalid_params")
    assert_one_line_error(run_cli("query", "account", "00" * 20, *chain.rpc),
                          "unknown_account")


def test_invalid_transfer_rejected_by_node(chain: CliChain) -> None:
    cli_json("tx", "transfer", "--key", chain.account_key(0), "--to", chain.address(1),
             "--amount", "1", *chain.rpc)  # nonce 0 is used from here on
    # Another transfer with nonce 0 (the same one again would be the same tx, whose
    # resubmission answers its final result).
    args = ["tx", "transfer", "--key", chain.account_key(0), "--to", chain.address(1),
            "--amount", "2", "--nonce", "0", *chain.rpc]
    assert_one_line_error(run_cli("--json", *args), "nonce_too_low")
    plain = run_cli(*args)  # a progress line may precede the error; the error comes last
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.splitlines()[-1].startswith("govchain: error: nonce_too_low")


def test_run_stops_cleanly_on_sigterm(tmp_path: Path, processes: ProcessSet) -> None:
    chain = start_chain(tmp_path, processes)

    def two_blocks() -> int | None:
        height: int = cli_json("query", "status", *chain.rpc)["height"]
        return height if height >= 2 else None

    wait_for(two_blocks, timeout_s=10, what="two final blocks")
    chain.node.signal(signal.SIGTERM)
    assert chain.node.wait(timeout_s=10) == 0
    log = chain.node.log_text()
    assert "Traceback" not in log
    assert log.rstrip().splitlines()[-1].endswith("stopped")
    assert_one_line_error(run_cli("query", "status", *chain.rpc), "unreachable")
