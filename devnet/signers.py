"""The devnet's signers (`govchain devnet up --signers`): one `govchain signer` per validator.

signer{i}/ holds what signer{i} needs to sign for node{i}: its key (validator_key.json,
moved there from genesis/) or, with the pkcs11 back end, the PIN of its SoftHSM2 token
(the tokens live in DIR/softhsm/, configured by DIR/softhsm2.conf, and the key is
generated inside the token); its sign state, the Unix socket the node dials, and
signer.log. The node's home holds no validator key, only `signer_address` and
`signer_public_key`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from devnet import process
from devnet.errors import DevnetError
from devnet.manifest import Manifest, SignerEntry, write_manifest

SIGNER_LOG = "signer.log"
SIGNER_SOCKET = "signer.sock"
SIGNER_STATE = "sign_state.json"
SIGNER_KEY = "validator_key.json"
SIGNER_PIN = "token.pin"
TOKEN_KEY_LABEL = "validator"
TOKEN_DIR = "softhsm"
SOFTHSM_CONF = "softhsm2.conf"
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
DEVNET_TOKEN_PIN = "1234"
"""User PIN of the devnet's tokens (a devnet secret, like its plaintext keys)."""
DEVNET_TOKEN_SO_PIN = "12345678"
READY_TIMEOUT_S = 30.0
"""How long a signer gets to print its ready line."""
_UNIX_PATH_MAX = 107
"""Longest path of a Unix socket on Linux (sun_path is 108 bytes, NUL included)."""

Report = Callable[[str], None]


def _signer_dir(root: Path, index: int) -> Path:
    return root / f"signer{index}"


def _make_entry(root: Path, index: int, public_key: str, backend: str,
                pkcs11_module: str | None = None) -> SignerEntry:
    home = _signer_dir(root, index)
    sock = home / SIGNER_SOCKET
    if len(str(sock)) > _UNIX_PATH_MAX:
        raise DevnetError(f"the signer socket {sock} is longer than {_UNIX_PATH_MAX} bytes, "
                          "the limit of a Unix socket path: choose a shorter --dir")
    return SignerEntry(name=f"signer{index}", node=f"node{index}", home=str(home),
                       address=f"unix:{sock}", public_key=public_key, backend=backend,
                       log=str(home / SIGNER_LOG), pkcs11_module=pkcs11_module)


def create_file_signers(root: Path, genesis_dir: Path, public_keys: list[str],
                        report: Report) -> list[SignerEntry]:
    """Move each validator key from genesis/ into its signer's folder."""
    report(f"moving the {len(public_keys)} validator keys into signer folders")
    entries = []
    for i, public_key in enumerate(public_keys):
        entry = _make_entry(root, i, public_key, "file")
        Path(entry.home).mkdir(mode=0o700, parents=True)
        os.replace(genesis_dir / f"validator{i}_key.json", Path(entry.home) / SIGNER_KEY)
        entries.append(entry)
    return entries


def find_softhsm() -> tuple[str, str]:
    """(the SoftHSM2 PKCS#11 module, softhsm2-util); DevnetError when it is not installed."""
    module = next((path for path in SOFTHSM_MODULES if Path(path).exists()), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        raise DevnetError("--signer-backend pkcs11 needs SoftHSM2 (libsofthsm2.so and "
                          "softhsm2-util): apt-get install -y softhsm2")
    if importlib.util.find_spec("pkcs11") is None:  # the signer's PKCS#11 binding
        raise DevnetError("--signer-backend pkcs11 needs the python-pkcs11 package: "
                          "pip install python-pkcs11")
    return module, util


def get_token_env(root: Path) -> dict[str, str]:
    """SOFTHSM2_CONF of the devnet's tokens, for the signers and `signer init-pkcs11`."""
    return {"SOFTHSM2_CONF": str(root / SOFTHSM_CONF)}


def create_token_signers(root: Path, count: int, report: Report) -> list[SignerEntry]:
    """One SoftHSM2 token per validator in DIR/softhsm/, with an Ed25519 key generated
    inside it; returns the signers, whose public keys the genesis names."""
    module, util = find_softhsm()
    tokens = root / TOKEN_DIR
    tokens.mkdir(mode=0o700, parents=True)
    (root / SOFTHSM_CONF).write_text(f"directories.tokendir = {tokens}\n"
                                     "objectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, **get_token_env(root)}
    report(f"creating {count} SoftHSM2 tokens in {tokens}, a key generated inside each")
    entries = []
    for i in range(count):
        home = _signer_dir(root, i)
        home.mkdir(mode=0o700, parents=True)
        pin_file = home / SIGNER_PIN
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(DEVNET_TOKEN_PIN + "\n")
        label = f"signer{i}"
        done = subprocess.run([util, "--init-token", "--free", "--label", label,
                               "--so-pin", DEVNET_TOKEN_SO_PIN, "--pin", DEVNET_TOKEN_PIN],
                              capture_output=True, text=True, env=env, timeout=60,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DevnetError(f"softhsm2-util could not create token {label}: "
                              f"{(done.stderr or done.stdout).strip()[-300:]}")
        key = process.run_govchain("signer", "init-pkcs11", "--pkcs11-module", module,
                                   "--token-label", label, "--key-label", TOKEN_KEY_LABEL,
                                   "--pin-file", str(pin_file), env=get_token_env(root))
        entries.append(_make_entry(root, i, str(key["public_key"]), "pkcs11", module))
    return entries


def get_signer_argv(manifest: Manifest, signer: SignerEntry) -> list[str]:
    home = Path(signer.home)
    argv = process.python_argv("-m", "cli", "signer", "--chain-id", manifest.chain_id,
                               "--state-file", str(home / SIGNER_STATE),
                               "--listen", signer.address)
    if signer.backend == "pkcs11":
        return [*argv, "--pkcs11-module", signer.pkcs11_module or find_softhsm()[0],
                "--token-label", signer.name, "--key-label", TOKEN_KEY_LABEL,
                "--pin-file", str(home / SIGNER_PIN)]
    return [*argv, "--key-file", str(home / SIGNER_KEY)]


def is_signer_running(signer: SignerEntry) -> bool:
    return process.is_group_running(signer.pid, marker=signer.home)


def start_signers(manifest: Manifest, signers: list[SignerEntry], report: Report,
                  timeout_s: float = READY_TIMEOUT_S) -> None:
    """Spawn the signers together and wait until each prints its ready line (it listens
    then, holding the key the node expects)."""
    offsets = {}
    for signer in signers:
        log = Path(signer.log)
        offsets[signer.name] = log.stat().st_size if log.exists() else 0
        env = process.get_python_env()
        if signer.backend == "pkcs11":
            env.update(get_token_env(Path(manifest.dir)))
        signer.pid = process.spawn(get_signer_argv(manifest, signer), log, env=env)
    write_manifest(manifest)
    deadline = time.monotonic() + timeout_s
    for signer in signers:
        _wait_ready(signer, offsets[signer.name], deadline)
        report(f"{signer.name}: pid {signer.pid}, {signer.backend} key for {signer.node}, "
               f"listens on {signer.address}")


def _wait_ready(signer: SignerEntry, offset: int, deadline: float) -> None:
    log = Path(signer.log)
    while True:
        text = _read_from(log, offset)
        ready = next((line.split() for line in text.splitlines()
                      if line.startswith("signer ready ")), None)
        if ready is not None:
            announced = ready[3] if len(ready) > 3 else ""
            if announced != signer.public_key:
                raise DevnetError(f"{signer.name} holds key {announced}, not "
                                  f"{signer.public_key} ({signer.node}'s): see {log}")
            return
        if not is_signer_running(signer):
            last = text.strip().splitlines()[-1:] or ["no output"]
            raise DevnetError(f"{signer.name} exited at start: {last[0]} (see {log})")
        if time.monotonic() > deadline:
            raise DevnetError(f"{signer.name} is not ready in time: see {log}")
        time.sleep(0.05)


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20).decode(errors="replace")
    except FileNotFoundError:
        return ""


def stop_signer(signer: SignerEntry, *, kill: bool) -> str:
    """SIGTERM (or SIGKILL) the signer and wait until it is gone; say what happened."""
    if signer.pid is None or not is_signer_running(signer):
        signer.pid = None
        return "was not running"
    if kill:
        process.kill_group(signer.pid)
        outcome = "killed"
    else:
        outcome = process.stop_group(signer.pid)
    signer.pid = None
    return outcome
