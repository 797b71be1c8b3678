"""deploy/install.sh: the guide's install steps, run literally under a temporary root.

GOVCHAIN_ROOT puts every path below a prefix and skips the steps that need root (the
service user, chown, systemctl), so the test runs the script itself: directories,
passphrase, `govchain init`, the PATH link and the unit file. The guide shows the
script's steps verbatim, and a test keeps the two equal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from devnet.ports import get_free_port
from node.config import NODE_KEY_FILE, VALIDATOR_KEY_FILE, NodeHome
from node.keystore import PassphraseSource, write_encrypted_key_file
from sdk import Client
from tests.node.conftest import make_genesis
from tests.node.procs import ENV, ROOT, wait_for

SCRIPT = ROOT / "deploy" / "install.sh"
UNIT = ROOT / "deploy" / "govchain.service"
GUIDE = ROOT / "docs" / "operator.md"
BEGIN, END = "# --- the steps", "# --- end of the steps"
GUIDE_MARKER = "<!-- deploy/install.sh steps -->"
VENV = Path(sys.executable).parent.parent  # the virtualenv running the tests holds govchain
KEY = KeyPair.from_seed(b"\x21" * 32)


def script_steps() -> list[str]:
    text = SCRIPT.read_text()
    return text.split(BEGIN, 1)[1].split("\n", 1)[1].split(END, 1)[0].strip().splitlines()


def guide_steps() -> list[str]:
    after = GUIDE.read_text().split(GUIDE_MARKER, 1)[1]
    match = re.match(r"\s*```sh\n(.*?)```", after, re.S)
    assert match is not None, f"no ```sh block right after {GUIDE_MARKER} in operator.md"
    return match.group(1).strip().splitlines()


def test_guide_shows_the_install_script_steps() -> None:
    assert guide_steps() == script_steps(), \
        "docs/operator.md's install steps differ from deploy/install.sh: paste the script's"


def install(root: Path, *init_flags: str) -> subprocess.CompletedProcess[str]:
    env = {**ENV, "GOVCHAIN_ROOT": str(root), "GOVCHAIN_VENV": str(VENV)}
    env.pop("GOVCHAIN_KEY_PASSPHRASE", None)
    env.pop("GOVCHAIN_KEY_PASSPHRASE_FILE", None)
    return subprocess.run(["sh", str(SCRIPT), *init_flags], env=env, cwd=root.parent,
                          capture_output=True, text=True, timeout=120)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_genesis(folder: Path) -> Path:
    path = folder / "genesis.json"
    path.write_text(make_genesis([KEY]).to_json())
    return path


def test_install_under_a_root_prefix_makes_a_sealed_full_node_home(tmp_path: Path) -> None:
    root = tmp_path / "root"
    genesis = write_genesis(tmp_path)
    result = install(root, str(genesis), "--moniker", "ministry-of-justice",
                     "--kdf-cost", "test")
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr  # useradd, chown, systemctl: root steps only

    passphrase = root / "etc" / "govchain" / "passphrase"
    assert mode(passphrase.parent) == 0o700 and mode(passphrase) == 0o400
    assert len(passphrase.read_text().strip()) >= 32
    home = root / "var" / "lib" / "govchain"
    assert mode(home) == 0o700
    assert "secret_seed" not in (home / NODE_KEY_FILE).read_text()
    assert not (home / VALIDATOR_KEY_FILE).exists()
    loaded = NodeHome.load(home, env={}, passphrase=PassphraseSource(file=str(passphrase),
                                                                     prompt=False))
    assert loaded.config.moniker == "ministry-of-justice" and loaded.insecure_key_files == ()
    link = root / "usr" / "local" / "bin" / "govchain"
    assert link.is_symlink() and Path(os.readlink(link)) == VENV / "bin" / "govchain"
    assert (root / "etc" / "systemd" / "system" / "govchain.service").read_text() == \
        UNIT.read_text()

    # a second run refuses to overwrite the home and keeps the passphrase
    before = passphrase.read_text()
    again = install(root, str(genesis), "--kdf-cost", "test")
    assert again.returncode != 0 and "already holds a node home" in again.stderr
    assert passphrase.read_text() == before


def test_invalid_install_without_a_genesis_says_how(tmp_path: Path) -> None:
    result = install(tmp_path / "root")
    assert result.returncode == 2 and "usage" in result.stderr
    assert not (tmp_path / "root").exists()


def unit_exec_start(root: Path) -> list[str]:
    """The unit's ExecStart, with the credential directory systemd would provide."""
    line = next(line for line in UNIT.read_text().splitlines()
                if line.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    argv = [arg.replace("${CREDENTIALS_DIRECTORY}", str(root / "etc" / "govchain"))
            .replace("/var/lib/govchain", str(root / "var" / "lib" / "govchain")) for arg in argv]
    assert argv[0] == "/opt/govchain/venv/bin/govchain"
    return [str(root / "usr" / "local" / "bin" / "govchain"), *argv[1:]]


@pytest.mark.slow
def test_installed_validator_runs_as_the_unit_starts_it(tmp_path: Path) -> None:
    """A ministry's passphrase placed first (as after the ceremony) is kept; its sealed
    key goes into the home; the node started by the unit's command line makes blocks."""
    root = tmp_path / "root"
    etc = root / "etc" / "govchain"
    etc.mkdir(parents=True)
    (etc / "passphrase").write_text("the ministry's passphrase\n")
    os.chmod(etc / "passphrase", 0o400)
    sealed = tmp_path / "validator_key.json"
    write_encrypted_key_file(sealed, KEY, b"the ministry's passphrase", cost="test")
    genesis = write_genesis(tmp_path)
    rpc_port = get_free_port()
    result = install(root, str(genesis), "--validator-key", str(sealed), "--kdf-cost", "test",
                     "--expect-genesis-hash", make_genesis_hash(genesis),
                     "--rpc-listen", f"127.0.0.1:{rpc_port}", "--p2p-listen", "127.0.0.1:0")
    assert result.returncode == 0, result.stderr
    assert (etc / "passphrase").read_text() == "the ministry's passphrase\n"
    home = root / "var" / "lib" / "govchain"
    assert "secret_seed" not in (home / VALIDATOR_KEY_FILE).read_text()

    with open(tmp_path / "node.log", "wb") as log:
        process = subprocess.Popen(unit_exec_start(root), stdout=log, stderr=subprocess.STDOUT,
                                   env={k: v for k, v in ENV.items()
                                        if not k.startswith("GOVCHAIN_KEY_")},
                                   start_new_session=True)
    try:
        client = Client(f"http://127.0.0.1:{rpc_port}", timeout_s=5)
        wait_for(lambda: client.status()["height"] >= 2 or None, timeout_s=60,
                 what="the installed validator at height 2")
        assert client.status()["is_validator"] is True
    finally:
        process.kill()
        process.wait(10)


def make_genesis_hash(path: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "cli", "--json", "genesis", "hash",
                             str(path)], env=ENV, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["genesis_hash"])
