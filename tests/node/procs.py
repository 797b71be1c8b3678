"""Node processes for tests: init a home, start `govchain run`, kill, restart, reap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chain.crypto import KeyPair
from chain.genesis import Genesis
from node.client import Client, RpcClientError
from node.config import write_key_file
from tests.node.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def govchain(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True,
                          text=True, timeout=timeout_s, cwd=ROOT, env=ENV,
                          stdin=subprocess.DEVNULL)


class NodeProcess:
    """One node home and the `govchain run` process serving it."""

    def __init__(self, home: Path, genesis: Genesis, key: KeyPair | None) -> None:
        self.home = home
        self.rpc_port = free_port()
        genesis_path = home.parent / f"{home.name}-genesis.json"
        genesis_path.write_text(genesis.to_json())
        args = ["init", "--home", str(home), "--genesis", str(genesis_path),
                "--rpc-listen", f"127.0.0.1:{self.rpc_port}",
                "--p2p-listen", f"127.0.0.1:{free_port()}"]
        if key is not None:
            key_path = home.parent / f"{home.name}-key.json"
            write_key_file(key_path, key)
            args += ["--validator-key", str(key_path)]
        result = govchain(*args)
        assert result.returncode == 0, result.stderr
        self.process: subprocess.Popen[bytes] | None = None
        self.client = Client(f"http://127.0.0.1:{self.rpc_port}", timeout_s=5)

    def start(self, ready_timeout_s: float = 30) -> None:
        log = open(self.home / "node.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node", "run", "--home", str(self.home)],
            stdout=log, stderr=log, cwd=ROOT, env=ENV, start_new_session=True)
        log.close()
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                self.client.status()
                return
            except RpcClientError:
                assert self.process.poll() is None, f"node exited: {self.log_tail()}"
                assert time.monotonic() < deadline, f"node not ready: {self.log_tail()}"
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a power cut would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        path = self.home / "node.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
            if path.exists() else ""
