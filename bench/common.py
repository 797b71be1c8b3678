"""Shared pieces of the govchain benchmarks: chains with funded senders, pre-signed load,
node processes, and the figures every benchmark prints."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chain.crypto import KeyPair
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.tx import Transaction, make_transaction
from chain.vote import Validator, ValidatorSet
from devnet.ports import get_free_port
from sdk import AsyncClient, RpcClientError

ROOT = Path(__file__).resolve().parent.parent
ASSET = "GOV"


def make_keys(count: int, salt: int) -> list[KeyPair]:
    return [KeyPair.from_seed(salt.to_bytes(4, "big") + i.to_bytes(28, "big"))
            for i in range(count)]


def make_genesis(chain_id: str, validators: list[KeyPair], senders: list[KeyPair],
                 params: ChainParams) -> Genesis:
    return Genesis(
        chain_id=chain_id, genesis_time_ms=int(time.time() * 1000) - 1000,
        validator_set=ValidatorSet(tuple(Validator(k.public_key, f"validator-{i}")
                                         for i, k in enumerate(validators))),
        accounts=tuple(GenesisAccount(k.address, {ASSET: 10**15}) for k in senders),
        params=params)


def presign_transfers(chain_id: str, senders: list[KeyPair], count: int
                      ) -> list[Transaction]:
    """`count` transfers spread round-robin over `senders`, nonces in order."""
    txs = []
    for i in range(count):
        sender = senders[i % len(senders)]
        receiver = senders[(i + 1) % len(senders)]
        txs.append(make_transaction(chain_id, sender, i // len(senders), "transfer",
                                    {"to": receiver.address, "asset": ASSET, "amount": 1}))
    for tx in txs:
        _ = tx.encoded
    return txs


@dataclass
class NodeProcess:
    name: str
    home: Path
    rpc_url: str
    p2p_port: int
    process: subprocess.Popen[bytes] | None = None
    run_args: tuple[str, ...] = ()
    """More `govchain run` arguments (e.g. --rpc-listen for a home made elsewhere)."""

    def start(self) -> None:
        log = open(self.home / "node.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "--home", str(self.home), *self.run_args],
            stdout=log, stderr=log, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def memory_mib(self) -> dict[str, float]:
        """VmRSS (resident now) and VmHWM (peak resident) of the process, in MiB; zeros
        once it has exited."""
        found = {"VmRSS": 0.0, "VmHWM": 0.0}
        if not self.process:
            return found
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return found
        for line in text.splitlines():
            name = line.split(":", 1)[0]
            if name in found:
                found[name] = int(line.split()[1]) / 1024
        return found

    def peak_rss_mb(self) -> float:
        return self.memory_mib()["VmHWM"]


def dir_size_bytes(path: Path) -> int:
    """Bytes of the regular files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def init_node(workdir: Path, name: str, genesis: Genesis, key: KeyPair | None,
              peers: list[str], p2p_port: int, log_level: str = "WARNING",
              settings: dict[str, object] | None = None) -> NodeProcess:
    """`govchain init` a node home, then set `log_level` and any other `settings` (config
    keys, e.g. rpc_rate_limit_per_s) in its config.toml."""
    genesis_path = workdir / "genesis.json"
    genesis_path.write_text(genesis.to_json())
    rpc_port = get_free_port()
    home = workdir / name
    args = [sys.executable, "-m", "cli", "init", "--home", str(home), "--genesis",
            str(genesis_path), "--rpc-listen", f"127.0.0.1:{rpc_port}",
            "--p2p-listen", f"127.0.0.1:{p2p_port}", "--no-peer-exchange"]
    if key is not None:
        key_path = workdir / f"{name}_key.json"
        key_path.write_text(json.dumps({"public_key": key.public_key.hex(),
                                        "secret_seed": key.seed.hex()}))
        args += ["--validator-key", str(key_path)]
    for peer in peers:
        args += ["--peer", peer]
    subprocess.run(args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    # init writes these keys commented out; set them at the end of the file.
    lines = [f"{key} = {json.dumps(value)}"
             for key, value in {"log_level": log_level, **(settings or {})}.items()]
    with open(home / "config.toml", "a") as config:
        config.write("\n# Set by the benchmark.\n" + "\n".join(lines) + "\n")
    return NodeProcess(name, home, f"http://127.0.0.1:{rpc_port}", p2p_port)


async def wait_ready(clients: list[AsyncClient], deadline_s: float) -> None:
    """Return once every node answers node_status; raise at the deadline."""
    deadline = time.monotonic() + deadline_s
    for client in clients:
        while True:
            try:
                await client.call("node_status")
                break
            except RpcClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
