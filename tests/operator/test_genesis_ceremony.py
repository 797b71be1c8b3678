"""The genesis ceremony through the `govchain` command: statements, assembly, hash checks.

Four ministries each make a sealed key and a signed statement; a coordinator assembles
the genesis from the statements alone; each ministry checks the genesis hash at
`init`. The end-to-end test runs it all as real processes, with four separate homes
and passphrases, and the four nodes reach a finalized height.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chain.genesis import Genesis
from cli import main as cli
from devnet.ports import get_free_port
from node.config import VALIDATOR_KEY_FILE, NodeHome
from node.keystore import PassphraseSource, read_public_key
from sdk import Client
from tests.node.conftest import ACCOUNT_KEYS, FAST_PARAMS
from tests.node.procs import ENV, ROOT, NodeProcess, ProcessSet, run_cli, wait_for

CHAIN_ID = "govchain-ceremony"
NAMES = ["ministry-of-finance", "ministry-of-justice", "central-bank", "tax-service"]


@dataclass
class Ministry:
    """What one ministry holds: its folder, sealed key, passphrase and p2p address."""

    folder: Path
    name: str
    p2p_port: int

    @property
    def key(self) -> Path:
        return self.folder / "validator_key.json"

    @property
    def passphrase(self) -> Path:
        return self.folder / "passphrase"

    @property
    def statement(self) -> Path:
        return self.folder / "statement.json"

    @property
    def home(self) -> Path:
        return self.folder / "home"


def make_ministries(tmp_path: Path) -> list[Ministry]:
    ministries = []
    for name in NAMES:
        folder = tmp_path / name
        folder.mkdir()
        ministry = Ministry(folder, name, get_free_port())
        ministry.passphrase.write_text(f"secret of {name}\n")
        ministries.append(ministry)
    return ministries


def govchain(*argv: str) -> tuple[int, str, str]:
    """`govchain ARGV` in a child process: what an operator runs."""
    result = run_cli(*argv)
    return result.returncode, result.stdout, result.stderr


def ok(*argv: str) -> Any:
    code, out, err = govchain("--json", *argv)
    assert code == 0, err
    return json.loads(out)


def make_key_and_statement(ministry: Ministry, chain_id: str = CHAIN_ID) -> dict[str, Any]:
    ok("keys", "new", "--out", str(ministry.key), "--passphrase-file",
       str(ministry.passphrase), "--kdf-cost", "test")
    return ok("genesis", "statement", "--key", str(ministry.key), "--passphrase-file",
              str(ministry.passphrase), "--name", ministry.name,
              "--p2p", f"127.0.0.1:{ministry.p2p_port}", "--chain-id", chain_id,
              "--out", str(ministry.statement))


def write_accounts(path: Path) -> Path:
    path.write_text(json.dumps([{"address": k.address.hex(), "balances": {"GOV": 10**9}}
                                for k in ACCOUNT_KEYS]))
    return path


def assemble_args(ministries: list[Ministry] | list[Path], out: Path, *extra: str
                  ) -> list[str]:
    args = ["genesis", "assemble", "--chain-id", CHAIN_ID, "--out", str(out), *extra]
    for item in ministries:
        args += ["--statement", str(item.statement if isinstance(item, Ministry) else item)]
    return args


def main(*argv: str) -> int:
    return cli.main(list(argv))


# ------------------------------------------------------------------ in one process


@pytest.fixture
def stated(tmp_path: Path) -> list[Ministry]:
    """Four ministries with sealed keys and statements (made in this process: fast)."""
    ministries = make_ministries(tmp_path)
    for ministry in ministries:
        assert main("keys", "new", "--out", str(ministry.key), "--passphrase-file",
                    str(ministry.passphrase), "--kdf-cost", "test") == 0
        assert main("genesis", "statement", "--key", str(ministry.key), "--passphrase-file",
                    str(ministry.passphrase), "--name", ministry.name, "--p2p",
                    f"127.0.0.1:{ministry.p2p_port}", "--chain-id", CHAIN_ID,
                    "--out", str(ministry.statement)) == 0
    return ministries


def test_assemble_hash_and_init_with_the_expected_hash(stated: list[Ministry],
                                                       tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    genesis_path = tmp_path / "genesis.json"
    accounts = write_accounts(tmp_path / "accounts.json")
    assert main("--json", *assemble_args(stated, genesis_path, "--accounts",
                                         str(accounts))) == 0
    assembled = json.loads(capsys.readouterr().out)
    genesis = Genesis.from_json(genesis_path.read_text())
    assert assembled["genesis_hash"] == genesis.hash.hex()
    assert [v.name for v in genesis.validator_set.validators] == NAMES
    for ministry, validator in zip(stated, genesis.validator_set.validators, strict=True):
        assert validator.public_key == read_public_key(ministry.key).public_key
    assert assembled["peers"] == [f"127.0.0.1:{m.p2p_port}" for m in stated]
    assert {a.address for a in genesis.accounts} == {k.address for k in ACCOUNT_KEYS}

    assert main("genesis", "hash", str(genesis_path)) == 0
    assert capsys.readouterr().out.strip() == genesis.hash.hex()

    ministry = stated[0]
    assert main("init", "--home", str(ministry.home), "--genesis", str(genesis_path),
                "--validator-key", str(ministry.key), "--passphrase-file",
                str(ministry.passphrase), "--kdf-cost", "test",
                "--expect-genesis-hash", genesis.hash.hex()) == 0
    home = NodeHome.load(ministry.home, env={}, passphrase=PassphraseSource(
        file=str(ministry.passphrase), prompt=False))
    assert home.genesis.hash == genesis.hash
    assert home.validator_key is not None
    assert home.validator_key.public_key == genesis.validator_set.validators[0].public_key


def test_invalid_init_with_another_genesis_hash_writes_nothing(stated: list[Ministry],
                                                                tmp_path: Path,
                                                                capsys) -> None:
    genesis_path = tmp_path / "genesis.json"
    assert main(*assemble_args(stated, genesis_path)) == 0
    capsys.readouterr()
    ministry = stated[1]
    wrong = "ab" * 32
    assert main("init", "--home", str(ministry.home), "--genesis", str(genesis_path),
                "--validator-key", str(ministry.key), "--passphrase-file",
                str(ministry.passphrase), "--kdf-cost", "test",
                "--expect-genesis-hash", wrong) == 1
    err = capsys.readouterr().err
    assert wrong in err and Genesis.from_json(genesis_path.read_text()).hash.hex() in err
    assert not ministry.home.exists()
    assert main("init", "--home", str(ministry.home), "--genesis", str(genesis_path),
                "--expect-genesis-hash", "not-hex") == 1
    assert "64 hex digits" in capsys.readouterr().err
    assert not ministry.home.exists()


def refused_assembly(statements: list[Path], out: Path, capsys, *extra: str) -> str:
    capsys.readouterr()
    assert main(*assemble_args(statements, out, *extra)) == 1
    assert not out.exists()
    return str(capsys.readouterr().err)


def test_invalid_assembly_refuses_altered_wrong_chain_and_duplicate_statements(
        stated: list[Ministry], tmp_path: Path, capsys) -> None:
    out = tmp_path / "genesis.json"
    paths = [m.statement for m in stated]
    doc = json.loads(paths[2].read_text())
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps({**doc, "name": "central-bnak"}))
    assert "does not verify" in refused_assembly([*paths[:2], altered, paths[3]], out, capsys)

    typo = tmp_path / "typo.json"
    assert main("genesis", "statement", "--key", str(stated[3].key), "--passphrase-file",
                str(stated[3].passphrase), "--name", stated[3].name, "--p2p",
                "127.0.0.1:1", "--chain-id", "govchain-typo", "--out", str(typo)) == 0
    assert "govchain-typo" in refused_assembly([*paths[:3], typo], out, capsys)

    assert "stated twice" in refused_assembly([*paths, paths[0]], out, capsys)
    assert "is not a genesis statement" in refused_assembly([*paths[:3], stated[3].key],
                                                            out, capsys)
    assert "cannot read" in refused_assembly([*paths[:3], tmp_path / "missing.json"],
                                             out, capsys)
    (tmp_path / "accounts.json").write_text('[{"address": "00"}]')
    assert "20 bytes" in refused_assembly(paths, out, capsys, "--accounts",
                                          str(tmp_path / "accounts.json"))


def test_invalid_statement_with_a_wrong_passphrase_or_address(stated: list[Ministry],
                                                              tmp_path: Path,
                                                              capsys) -> None:
    capsys.readouterr()
    out = tmp_path / "s.json"
    assert main("genesis", "statement", "--key", str(stated[0].key), "--passphrase-file",
                str(stated[1].passphrase), "--name", "x", "--p2p", "127.0.0.1:1",
                "--chain-id", CHAIN_ID, "--out", str(out)) == 1
    assert "wrong passphrase" in capsys.readouterr().err
    assert main("genesis", "statement", "--key", str(stated[0].key), "--passphrase-file",
                str(stated[0].passphrase), "--name", "x", "--p2p", "127.0.0.1",
                "--chain-id", CHAIN_ID, "--out", str(out)) == 1
    assert "host:port" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------ as real processes


class SealedNode(NodeProcess):
    """A node whose keys are sealed: `govchain run` gets the ministry's passphrase file."""

    def __init__(self, home: Path, rpc_url: str, passphrase: Path) -> None:
        super().__init__(home, rpc_url)
        self.passphrase = passphrase

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "run", "--home", str(self.home),
                 "--passphrase-file", str(self.passphrase)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV,
                start_new_session=True)


@pytest.mark.slow
def test_ceremony_end_to_end_four_homes_reach_a_final_height(tmp_path: Path) -> None:
    ministries = make_ministries(tmp_path)
    for ministry in ministries:  # each ministry, offline, on its own machine
        make_key_and_statement(ministry)
    coordinator = tmp_path / "coordinator"
    coordinator.mkdir()
    genesis_path = coordinator / "genesis.json"
    assembled = ok(*assemble_args(ministries, genesis_path, "--accounts",
                                  str(write_accounts(coordinator / "accounts.json")),
                                  "--params", json.dumps(FAST_PARAMS.to_value())))
    processes = ProcessSet()
    try:
        for ministry in ministries:  # each ministry checks the hash it was told
            code, out, err = govchain("genesis", "hash", str(genesis_path))
            assert code == 0 and out.strip() == assembled["genesis_hash"], err
            rpc_port = get_free_port()
            own = f"127.0.0.1:{ministry.p2p_port}"
            args = ["init", "--home", str(ministry.home), "--genesis", str(genesis_path),
                    "--validator-key", str(ministry.key), "--passphrase-file",
                    str(ministry.passphrase), "--kdf-cost", "test",
                    "--expect-genesis-hash", out.strip(), "--moniker", ministry.name,
                    "--rpc-listen", f"127.0.0.1:{rpc_port}", "--p2p-listen", own]
            for peer in assembled["peers"]:
                if peer != own:
                    args += ["--peer", peer]
            ok(*args)
            assert "secret_seed" not in (ministry.home / VALIDATOR_KEY_FILE).read_text()
            processes.add(SealedNode(ministry.home, f"http://127.0.0.1:{rpc_port}",
                                     ministry.passphrase)).start()
        clients = [Client(node.rpc_url, timeout_s=5) for node in processes.nodes]

        def all_final_at(height: int) -> bool | None:
            statuses = [client.status() for client in clients]
            return all(s["height"] >= height for s in statuses) or None

        wait_for(lambda: all_final_at(3), timeout_s=90, what="four nodes at height 3")
        validators = clients[0].call("chain_validators")
        assert [v["name"] for v in validators["validators"]] == NAMES
        assert all(c.status()["genesis_hash"] == assembled["genesis_hash"] for c in clients)
        assert all(node.is_running() for node in processes.nodes), \
            [node.log_text()[-2000:] for node in processes.nodes]
    finally:
        processes.close()
