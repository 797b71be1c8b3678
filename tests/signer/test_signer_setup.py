"""Setting a validator up for a signer without editing files: `govchain init --signer-*`,
`genesis new --validator-public-key`, and the devnet's signer folders and SoftHSM2 tokens
(`devnet up --signers`), each checked on the files it writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair
from cli.main import main
from devnet import network, signers
from devnet.errors import DevnetError
from devnet.manifest import LinksEntry, Manifest
from node.config import NodeHome, load_config
from tests.signer.kit import get_softhsm_module

SIGNER_KEY = KeyPair.from_seed(bytes(range(32)))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["--json", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


@pytest.fixture
def genesis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, doc, err = run(capsys, "genesis", "new", "--validator-public-key",
                         SIGNER_KEY.public_key.hex(), "--accounts", "0", "--plain",
                         "--out-dir", str(tmp_path / "net"))
    assert code == 0, err
    assert doc["validators"] == [SIGNER_KEY.public_key.hex()]
    assert not list((tmp_path / "net").glob("validator*_key.json"))  # no key written
    return Path(doc["genesis"])


def test_init_with_a_signer_writes_its_settings_and_no_validator_key(
        tmp_path: Path, genesis: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    address = f"unix:{tmp_path / 'signer.sock'}"
    code, doc, err = run(capsys, "init", "--home", str(home), "--genesis", str(genesis),
                         "--signer-address", address,
                         "--signer-public-key", SIGNER_KEY.public_key.hex().upper())
    assert code == 0, err
    assert doc["validator"] == SIGNER_KEY.public_key.hex() and doc["signer"] == address
    assert not (home / "validator_key.json").exists()
    config = load_config(home)
    assert config.signer_address == address
    assert config.signer_public_key == SIGNER_KEY.public_key.hex()
    loaded = NodeHome.load(home)
    assert loaded.validator_key is None
    assert loaded.validator_public_key == SIGNER_KEY.public_key


def test_init_with_a_tcp_signer_writes_the_tls_settings(
        tmp_path: Path, genesis: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    code, _, err = run(capsys, "init", "--home", str(home), "--genesis", str(genesis),
                       "--signer-address", "tcp://10.0.0.5:26659",
                       "--signer-public-key", SIGNER_KEY.public_key.hex(),
                       "--signer-tls-cert", "node.pem", "--signer-tls-key", "node.key",
                       "--signer-tls-ca", "signer.pem")
    assert code == 0, err
    config = load_config(home)
    assert (config.signer_tls_cert, config.signer_tls_key, config.signer_tls_ca) == \
        ("node.pem", "node.key", "signer.pem")


@pytest.mark.parametrize("extra, needle", [
    (["--signer-address", "unix:/run/s.sock"], "needs --signer-public-key"),
    (["--signer-address", "unix:/run/s.sock", "--signer-public-key", "abcd"], "64 hex"),
    (["--signer-address", "http://x", "--signer-public-key", "ab" * 32], "unix:/path"),
    (["--signer-address", "tcp://10.0.0.5:1", "--signer-public-key", "ab" * 32],
     "mutual TLS"),
    (["--signer-address", "unix:/run/s.sock", "--signer-public-key", "ab" * 32,
      "--signer-tls-ca", "x.pem"], "not a Unix socket"),
    (["--signer-public-key", "ab" * 32], "need --signer-address"),
    (["--signer-address", "unix:/run/s.sock", "--signer-public-key", "ab" * 32,
      "--validator-key", "key.json"], "not both"),
])
def test_invalid_init_signer_flags_write_nothing(
        tmp_path: Path, genesis: Path, capsys: pytest.CaptureFixture[str],
        extra: list[str], needle: str) -> None:
    home = tmp_path / "home"
    code, _, err = run(capsys, "init", "--home", str(home), "--genesis", str(genesis), *extra)
    assert code == 1
    assert err.startswith("govchain: error: ") and needle in err, err
    assert not home.exists()


def test_invalid_genesis_public_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "genesis", "new", "--validator-public-key", "zz",
                       "--out-dir", str(tmp_path / "net"))
    assert code == 1 and "not a public key" in err
    assert not (tmp_path / "net" / "genesis.json").exists()


def test_devnet_file_signers_take_the_keys_out_of_genesis(tmp_path: Path) -> None:
    genesis_dir = tmp_path / "genesis"
    genesis_dir.mkdir()
    (genesis_dir / "validator0_key.json").write_text("{}")
    made = signers.create_file_signers(tmp_path, genesis_dir, ["ab" * 32], lambda _: None)
    assert [(s.name, s.node, s.backend) for s in made] == [("signer0", "node0", "file")]
    assert made[0].address == f"unix:{tmp_path / 'signer0' / 'signer.sock'}"
    assert (tmp_path / "signer0" / "validator_key.json").exists()
    assert not (genesis_dir / "validator0_key.json").exists()
    manifest = Manifest("govchain-devnet", "", str(tmp_path), [], [], LinksEntry([], "", ""))
    argv = signers.get_signer_argv(manifest, made[0])
    assert argv[argv.index("--chain-id") + 1] == "govchain-devnet"
    assert argv[argv.index("--key-file") + 1] == str(tmp_path / "signer0" /
                                                     "validator_key.json")


def test_invalid_devnet_signer_socket_path_too_long(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(DevnetError, match="shorter --dir"):
        signers.create_file_signers(deep, tmp_path, ["ab" * 32], lambda _: None)


def test_invalid_devnet_pkcs11_without_softhsm(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(signers, "SOFTHSM_MODULES", (str(tmp_path / "missing.so"),))
    with pytest.raises(DevnetError, match="apt-get install -y softhsm2"):
        signers.create_token_signers(tmp_path / "devnet", 1, lambda _: None)
    assert not (tmp_path / "devnet").exists()


def test_devnet_token_signers_generate_the_key_inside_each_token(tmp_path: Path) -> None:
    get_softhsm_module()  # installs SoftHSM2 on a clean CI machine, or skips
    root = tmp_path / "devnet"
    root.mkdir()
    made = signers.create_token_signers(root, 2, lambda _: None)
    assert [s.backend for s in made] == ["pkcs11", "pkcs11"]
    assert len({s.public_key for s in made}) == 2
    env = {"SOFTHSM2_CONF": str(root / signers.SOFTHSM_CONF)}
    listed = subprocess.run(["softhsm2-util", "--show-slots"], capture_output=True, text=True,
                            env=env, timeout=60, check=True).stdout
    assert "signer0" in listed and "signer1" in listed
    assert not list(root.rglob("validator_key.json"))  # the keys never left the tokens
    assert (root / "signer0" / signers.SIGNER_PIN).stat().st_mode & 0o077 == 0


def test_devnet_with_signers_and_full_nodes_admits_validators_by_node_key(
        tmp_path: Path) -> None:
    """Behind public full nodes, the validators are closed; a validator whose key is in a
    signer meets peers with its node key, so the others and its full node name that key."""
    root = tmp_path / "devnet"
    manifest = network.create_devnet(network.UpOptions(
        devnet_dir=root, nodes=2, base_port=0, accounts=0, full_nodes=1, signers=True), 2)
    node0, node1 = manifest.get_node("node0"), manifest.get_node("node1")
    assert (node0.signer, node1.signer) == ("signer0", "signer1")
    key0, key1 = (network.read_node_key(Path(n.home)) for n in (node0, node1))
    config0, config1 = load_config(Path(node0.home)), load_config(Path(node1.home))
    full0 = load_config(Path(manifest.get_node("full0").home))
    assert config0.p2p_closed and key1 in config0.p2p_allowed_peers
    assert key0 in config1.p2p_allowed_peers and key0 not in config0.p2p_allowed_peers
    assert full0.p2p_private_peers == [key0]
    assert config0.signer_address == manifest.get_signer("signer0").address
    assert {p.parent.name for p in root.rglob("validator_key.json")} == {"signer0", "signer1"}
