"""Node and CLI subprocesses for black-box tests: start, wait, signal, always reap.

Every process goes through a ProcessSet, whose `close` kills and reaps what is still
running, so a failed assertion never leaves a node behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from devnet.ports import get_free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
T = TypeVar("T")


def run_cli(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `govchain ARGS...` to completion and capture its output."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout_s)


def wait_for(probe: Callable[[], T | None], *, timeout_s: float, what: str,
             poll_s: float = 0.05) -> T:
    """Poll `probe` until it returns a value other than None (exceptions count as None)."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except Exception as e:
            last_error, value = e, None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s (last error: {last_error!r})")
        time.sleep(poll_s)


@dataclass
class NodeProcess:
    """A `govchain run --home HOME` process whose output goes to HOME/node.log."""

    home: Path
    rpc_url: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "run", "--home", str(self.home)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV,
                start_new_session=True)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL and reap; nothing the node can do about it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)


@dataclass
class ProcessSet:
    """The node processes of one test; `close` kills and reaps them all."""

    nodes: list[NodeProcess] = field(default_factory=list)

    def add(self, node: NodeProcess) -> NodeProcess:
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            if node.is_running():
                node.signal(signal.SIGKILL)
        for node in self.nodes:
            node.kill()


def init_node(home: Path, genesis: Path, validator_key: Path | None) -> NodeProcess:
    """`govchain init` a home listening on OS-assigned ports; the node is not started."""
    rpc_port = get_free_port()
    args = ["init", "--home", str(home), "--genesis", str(genesis),
            "--rpc-listen", f"127.0.0.1:{rpc_port}", "--p2p-listen", "127.0.0.1:0",
            "--no-peer-exchange"]
    if validator_key is not None:
        args += ["--validator-key", str(validator_key)]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return NodeProcess(home, f"http://127.0.0.1:{rpc_port}")
