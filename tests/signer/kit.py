"""Shared pieces of the signer tests: a signer on a Unix socket in the test's loop, a
signer process, and SoftHSM2 tokens in a temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from chain.crypto import KeyPair
from node.signer.backends import FileKeyBackend
from node.signer.server import ListenAddress, SignerServer
from node.signer.state import SignGuard
from tests.debian import install_debian_package
from tests.node.procs import ROOT, wait_for

CHAIN_ID = "govchain-test"
SOFTHSM_MODULE_PATHS = ("/usr/lib/softhsm/libsofthsm2.so",
                        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
TOKEN_PIN = "5678"


class KeyPairBackend(FileKeyBackend):
    """The file back end over a key already in memory (the file path is tested apart)."""

    def __init__(self, key: KeyPair) -> None:
        self._key = key
        self.public_key = key.public_key


@contextlib.asynccontextmanager
async def running_signer(tmp_path: Path, key: KeyPair, name: str = "signer"
                         ) -> AsyncIterator[SignerServer]:
    address = ListenAddress.parse(f"unix:{tmp_path / (name + '.sock')}")
    server = SignerServer(KeyPairBackend(key), SignGuard(tmp_path / f"{name}.state", CHAIN_ID),
                          address)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll a condition with a deadline (the events it waits for are in other tasks)."""
    async def poll() -> None:
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout_s)


def find_softhsm_module() -> str | None:
    return next((p for p in SOFTHSM_MODULE_PATHS if Path(p).exists()), None)


def get_softhsm_module() -> str:
    """Debian's SoftHSM2; installed with apt-get when missing on CI or as root."""
    module = find_softhsm_module()
    if module and shutil.which("softhsm2-util"):
        return module
    install_debian_package("softhsm2", "softhsm2")
    module = find_softhsm_module()
    if not module:
        pytest.skip("apt-get installed softhsm2 but libsofthsm2.so is not where expected")
    return module


def make_token(tmp_path: Path, label: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SoftHSM2 token in tmp_path (SOFTHSM2_CONF set for this test); returns the
    module path."""
    module = get_softhsm_module()
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                    "--so-pin", "1234", "--pin", TOKEN_PIN], check=True, capture_output=True,
                   timeout=60)
    # python-pkcs11 loads a module once per process, and SoftHSM2 reads its
    # configuration when initialized: initialize it again over this test's tokens.
    with contextlib.suppress(ImportError):
        import pkcs11
        pkcs11.lib(module).reinitialize()
    return module


def run_govchain(*args: str) -> subprocess.CompletedProcess[str]:
    """`govchain ARGS...` with this test's environment (SOFTHSM2_CONF included)."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)


class SignerProcess:
    """A `govchain signer` process; `start` waits for its ready line."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start it; return the public key it announces."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "cli", "signer",
                                             *self.args], cwd=ROOT, env=env, text=True,
                                            stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the barrier: printed once it listens
        if not line.startswith("signer ready "):
            self.kill()
            raise AssertionError(f"signer did not start: {line!r}; "
                                 f"{self.log_path.read_text()[-2000:]}")
        return line.split()[3]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
            if self.process.stdout is not None:
                self.process.stdout.close()
        self.process = None


@contextlib.contextmanager
def signer_process(args: list[str], log_path: Path) -> Iterator[SignerProcess]:
    process = SignerProcess(args, log_path)
    try:
        yield process
    finally:
        process.kill()


__all__ = ["CHAIN_ID", "TOKEN_PIN", "SignerProcess", "make_token", "run_govchain", "running_signer",
           "signer_process", "wait_for", "wait_until"]
