"""Encrypted key files: round trip, wrong passphrase, CLI, homes with encrypted keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from cli import main as cli
from node.config import NODE_KEY_FILE, VALIDATOR_KEY_FILE, NodeConfig, NodeHome, init_home
from node.keystore import (
    KeystoreError,
    PassphraseSource,
    WrongPassphraseError,
    decrypt_key,
    encrypt_key,
    load_key_file,
    write_encrypted_key_file,
)
from tests.node.conftest import make_genesis

KEY = KeyPair.from_seed(bytes(range(32)))


def test_round_trip_and_seed_never_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_encrypted_key_file(path, KEY, b"correct horse", cost="test")
    text = path.read_text()
    assert KEY.seed.hex() not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_file(path, PassphraseSource(env={"GOVCHAIN_KEY_PASSPHRASE":
                                                       "correct horse"}, prompt=False))
    assert loaded.encrypted and loaded.key.seed == KEY.seed


def test_moderate_cost_is_the_default() -> None:
    doc = encrypt_key(KEY, b"pw", cost="interactive")
    assert doc["kdf"]["memlimit"] == 64 * 1024 * 1024
    assert decrypt_key(doc, b"pw").seed == KEY.seed


def test_invalid_wrong_passphrase_is_refused_and_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_encrypted_key_file(path, KEY, b"right", cost="test")
    before = path.read_bytes()
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        load_key_file(path, PassphraseSource(env={"GOVCHAIN_KEY_PASSPHRASE": "wrong"},
                                             prompt=False))
    assert path.read_bytes() == before


def test_invalid_tampered_keystore_is_refused() -> None:
    doc = encrypt_key(KEY, b"pw", cost="test")
    doc["public_key"] = "00" * 32
    with pytest.raises(KeystoreError, match="does not match"):
        decrypt_key(doc, b"pw")
    doc = encrypt_key(KEY, b"pw", cost="test")
    doc["kdf"]["opslimit"] += 1
    with pytest.raises(WrongPassphraseError):
        decrypt_key(doc, b"pw")


def test_invalid_no_passphrase_source_says_how_to_give_one(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_encrypted_key_file(path, KEY, b"pw", cost="test")
    with pytest.raises(KeystoreError, match="--passphrase-file"):
        load_key_file(path, PassphraseSource(env={}, prompt=False))


def test_invalid_empty_passphrase_is_refused() -> None:
    with pytest.raises(KeystoreError, match="empty passphrase"):
        encrypt_key(KEY, b"", cost="test")


def test_home_with_encrypted_keys_loads_from_passphrase_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home, make_genesis([KEY]).to_json(), NodeConfig(), KEY, passphrase=b"s3cret",
              kdf_cost="test")
    for name in (VALIDATOR_KEY_FILE, NODE_KEY_FILE):
        assert "secret_seed" not in (home / name).read_text()
    (tmp_path / "pass").write_text("s3cret\n")
    loaded = NodeHome.load(home, env={}, passphrase=PassphraseSource(
        file=str(tmp_path / "pass"), prompt=False))
    assert loaded.validator_key is not None and loaded.validator_key.seed == KEY.seed
    assert loaded.insecure_key_files == ()
    # The config key works too (and the env name of that key).
    loaded = NodeHome.load(home, env={"GOVCHAIN_KEY_PASSPHRASE_FILE": str(tmp_path / "pass")})
    assert loaded.validator_key is not None
    with pytest.raises(WrongPassphraseError):
        NodeHome.load(home, env={"GOVCHAIN_KEY_PASSPHRASE": "nope"})


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


def test_cli_new_show_export_change_import(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "p1").write_text("first passphrase\n")
    (tmp_path / "p2").write_text("second passphrase\n")
    key_file = tmp_path / "v.json"
    assert run_cli("--json", "keys", "new", "--out", str(key_file), "--passphrase-file",
                   str(tmp_path / "p1"), "--kdf-cost", "test") == 0
    created = json.loads(capsys.readouterr().out)
    assert created["encrypted"] is True

    assert run_cli("--json", "keys", "show-public", str(key_file)) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["public_key"] == created["public_key"]

    assert run_cli("keys", "export", str(key_file), "--passphrase-file",
                   str(tmp_path / "p1")) == 0
    exported = json.loads(capsys.readouterr().out)
    assert KeyPair.from_seed(bytes.fromhex(exported["secret_seed"])).public_key.hex() == \
        created["public_key"]

    assert run_cli("keys", "change-passphrase", str(key_file), "--passphrase-file",
                   str(tmp_path / "p1"), "--new-passphrase-file", str(tmp_path / "p2"),
                   "--kdf-cost", "test") == 0
    capsys.readouterr()
    assert run_cli("keys", "export", str(key_file), "--passphrase-file",
                   str(tmp_path / "p1")) == 1
    assert "wrong passphrase" in capsys.readouterr().err

    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(exported))
    assert run_cli("--json", "keys", "import", "--in", str(plain), "--out", str(plain),
                   "--passphrase-file", str(tmp_path / "p2"), "--kdf-cost", "test") == 0
    capsys.readouterr()
    assert "secret_seed" not in plain.read_text()
    monkeypatch.setenv("GOVCHAIN_KEY_PASSPHRASE", "second passphrase")
    assert load_key_file(plain, PassphraseSource(prompt=False)).key.public_key.hex() == \
        created["public_key"]


def test_invalid_keys_new_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    existing = tmp_path / "v.json"
    existing.write_text("{}")
    assert run_cli("keys", "new", "--out", str(existing), "--insecure-plaintext") == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert existing.read_text() == "{}"


def test_init_encrypts_with_passphrase_file(tmp_path: Path, capsys) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(make_genesis([KEY]).to_json())
    plain = tmp_path / "v.json"
    plain.write_text(json.dumps({"public_key": KEY.public_key.hex(),
                                 "secret_seed": KEY.seed.hex()}))
    (tmp_path / "pass").write_text("pw\n")
    assert run_cli("init", "--home", str(tmp_path / "h"), "--genesis", str(genesis),
                   "--validator-key", str(plain), "--passphrase-file", str(tmp_path / "pass"),
                   "--kdf-cost", "test") == 0
    assert "secret_seed" not in (tmp_path / "h" / VALIDATOR_KEY_FILE).read_text()
    assert "secret_seed" not in (tmp_path / "h" / NODE_KEY_FILE).read_text()


def test_init_unlocks_an_encrypted_validator_key_with_passphrase_file(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """The --passphrase-file of `init` opens the given key, not only the environment."""
    for name in ("GOVCHAIN_KEY_PASSPHRASE", "GOVCHAIN_KEY_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    genesis = tmp_path / "genesis.json"
    genesis.write_text(make_genesis([KEY]).to_json())
    (tmp_path / "pass").write_text("ministry secret\n")
    sealed = tmp_path / "v.json"
    write_encrypted_key_file(sealed, KEY, b"ministry secret", cost="test")
    home = tmp_path / "h"
    assert run_cli("--json", "init", "--home", str(home), "--genesis", str(genesis),
                   "--validator-key", str(sealed), "--passphrase-file", str(tmp_path / "pass"),
                   "--kdf-cost", "test") == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["keys_encrypted"] is True
    loaded = NodeHome.load(home, env={}, passphrase=PassphraseSource(
        file=str(tmp_path / "pass"), prompt=False))
    assert loaded.validator_key == KEY and loaded.insecure_key_files == ()


def test_invalid_init_with_a_wrong_passphrase_file_writes_no_home(tmp_path: Path, capsys,
                                                                  monkeypatch) -> None:
    monkeypatch.delenv("GOVCHAIN_KEY_PASSPHRASE", raising=False)
    genesis = tmp_path / "genesis.json"
    genesis.write_text(make_genesis([KEY]).to_json())
    (tmp_path / "pass").write_text("not it\n")
    sealed = tmp_path / "v.json"
    write_encrypted_key_file(sealed, KEY, b"ministry secret", cost="test")
    assert run_cli("init", "--home", str(tmp_path / "h"), "--genesis", str(genesis),
                   "--validator-key", str(sealed), "--passphrase-file", str(tmp_path / "pass"),
                   "--kdf-cost", "test") == 1
    assert "wrong passphrase" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_init_keeps_an_encrypted_validator_key_encrypted(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    """A sealed key unlocked at the terminal prompt is written into the home sealed, even
    without --passphrase-file or --encrypt: never in the clear."""
    for name in ("GOVCHAIN_KEY_PASSPHRASE", "GOVCHAIN_KEY_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or
                        "ministry secret")
    genesis = tmp_path / "genesis.json"
    genesis.write_text(make_genesis([KEY]).to_json())
    sealed = tmp_path / "v.json"
    write_encrypted_key_file(sealed, KEY, b"ministry secret", cost="test")
    assert run_cli("init", "--home", str(tmp_path / "h"), "--genesis", str(genesis),
                   "--validator-key", str(sealed), "--kdf-cost", "test") == 0
    capsys.readouterr()
    assert len(asked) == 1  # one prompt opens the given key and seals the home's keys
    for name in (VALIDATOR_KEY_FILE, NODE_KEY_FILE):
        assert "secret_seed" not in (tmp_path / "h" / name).read_text()
    loaded = NodeHome.load(home=tmp_path / "h", env={"GOVCHAIN_KEY_PASSPHRASE":
                                                     "ministry secret"})
    assert loaded.validator_key == KEY


OTHER_KEY = KeyPair.from_seed(bytes(range(1, 33)))


def test_invalid_show_public_of_an_altered_plaintext_key_is_refused(tmp_path: Path,
                                                                     capsys) -> None:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"public_key": OTHER_KEY.public_key.hex(),
                                "address": OTHER_KEY.address.hex(),
                                "secret_seed": KEY.seed.hex()}))
    assert run_cli("keys", "show-public", str(path)) == 1
    captured = capsys.readouterr()
    assert "does not match the secret seed" in captured.err
    assert OTHER_KEY.public_key.hex() not in captured.out


def test_invalid_show_public_of_an_altered_sealed_key_is_refused(tmp_path: Path,
                                                                  capsys) -> None:
    path = tmp_path / "sealed.json"
    write_encrypted_key_file(path, KEY, b"pw", cost="test")
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "public_key": OTHER_KEY.public_key.hex()}))
    assert run_cli("keys", "show-public", str(path)) == 1
    captured = capsys.readouterr()
    assert "address does not match its public_key" in captured.err
    assert captured.out == ""


def test_show_public_of_a_sealed_key_says_what_it_checked(tmp_path: Path, capsys,
                                                          monkeypatch) -> None:
    """Without a passphrase only address and public_key agree; with one the seed is
    opened, so a file whose public_key and address were both replaced is caught."""
    for name in ("GOVCHAIN_KEY_PASSPHRASE", "GOVCHAIN_KEY_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "sealed.json"
    write_encrypted_key_file(path, KEY, b"pw", cost="test")
    assert run_cli("--json", "keys", "show-public", str(path)) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert shown["public_key"] == KEY.public_key.hex() and shown["checked"] == "address"
    assert "checked only when unlocked" in captured.err

    (tmp_path / "pass").write_text("pw\n")
    assert run_cli("--json", "keys", "show-public", str(path), "--passphrase-file",
                   str(tmp_path / "pass")) == 0
    assert json.loads(capsys.readouterr().out)["checked"] == "seed"

    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "public_key": OTHER_KEY.public_key.hex(),
                                "address": OTHER_KEY.address.hex()}))
    assert run_cli("keys", "show-public", str(path), "--passphrase-file",
                   str(tmp_path / "pass")) == 1
    assert "does not match its public_key" in capsys.readouterr().err


def test_genesis_new_fund_amount_must_be_digits(tmp_path: Path, capsys) -> None:
    address = "ab" * 20
    assert run_cli("genesis", "new", "--accounts", "0", "--out-dir", str(tmp_path / "bad"),
                   "--fund", f"{address}=1e6") == 1
    err = capsys.readouterr().err
    assert "--fund" in err and "'1e6'" in err and "whole number" in err
    assert not (tmp_path / "bad" / "genesis.json").exists()
    assert run_cli("--json", "genesis", "new", "--accounts", "0", "--out-dir",
                   str(tmp_path / "good"), "--fund", f"{address}=1_000_000") == 0
    genesis = json.loads((tmp_path / "good" / "genesis.json").read_text())
    assert [a["balances"] for a in genesis["accounts"]
                           if a["address"] == address] == [{"GOV": 1_000_000}]


def test_validator_accept_unlocks_encrypted_keys_from_passphrase_files(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """`tx validator-accept --out` signs offline with both keys sealed, each unlocked from
    its own passphrase file (no prompt, no environment)."""
    monkeypatch.delenv("GOVCHAIN_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("GOVCHAIN_KEY_PASSPHRASE_FILE", raising=False)
    (tmp_path / "sender-pass").write_text("sender passphrase\n")
    (tmp_path / "candidate-pass").write_text("candidate passphrase\n")
    for name in ("sender", "candidate"):
        assert run_cli("keys", "new", "--out", str(tmp_path / f"{name}.json"),
                       "--passphrase-file", str(tmp_path / f"{name}-pass"),
                       "--kdf-cost", "test") == 0
    capsys.readouterr()
    argv = ["tx", "validator-accept", "--candidate-key", str(tmp_path / "candidate.json"),
            "--name", "Ministry of Health", "--key", str(tmp_path / "sender.json"),
            "--passphrase-file", str(tmp_path / "sender-pass"), "--nonce", "0",
            "--chain-id", "govchain-test", "--out", str(tmp_path / "accept.json")]
    wrong = [*argv, "--candidate-passphrase-file", str(tmp_path / "sender-pass")]
    assert run_cli(*wrong) == 1
    assert "passphrase" in capsys.readouterr().err
    assert not (tmp_path / "accept.json").exists()
    assert run_cli(*argv, "--candidate-passphrase-file", str(tmp_path / "candidate-pass")) == 0
    tx = json.loads((tmp_path / "accept.json").read_text())
    assert "Ministry of Health" in json.dumps(tx)
