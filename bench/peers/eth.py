"""Peer chains for the side-by-side benchmark: hardhat@2 and ganache@7 from npm.

Installs them with npm into a cache folder outside the repository on first use, makes
a Python environment there with eth-account for pre-signing (govchain never imports
it), starts a peer on 127.0.0.1 with funded senders, and follows its blocks over
JSON-RPC. Every request has a timeout; every process started here is stopped by its
process group id.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.peers.load import Unit

CACHE = Path(os.environ.get("GOVCHAIN_BENCH_CACHE", Path.home() / ".cache" / "govchain-bench"))
NPM_PACKAGES = ("hardhat@2", "ganache@7")
PYPI_PACKAGES = ("eth-account", "coincurve")
"""coincurve makes eth-account sign about 8 times faster (libsecp256k1)."""
SENDER_BALANCE_WEI = 10**24
PRESIGN = Path(__file__).resolve().parent / "presign_eth.py"


@dataclass(frozen=True, slots=True)
class PeerSpec:
    name: str
    """As given to --peers."""
    package: str
    """npm package the peer comes from."""
    chain_id: int
    mode: str
    """How it makes blocks, in words for the report."""


PEERS = {
    "hardhat": PeerSpec("hardhat", "hardhat", 31337, "1 s blocks"),
    "hardhat-automine": PeerSpec("hardhat-automine", "hardhat", 31337, "automine"),
    "ganache": PeerSpec("ganache", "ganache", 1337, "defaults (instamine)"),
}


def npm_dir() -> Path:
    return CACHE / "peers"


def package_version(package: str) -> str | None:
    path = npm_dir() / "node_modules" / package / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_npm_packages() -> None:
    """npm install hardhat@2 and ganache@7 into the cache folder unless already there."""
    if all(package_version(p.split("@")[0]) for p in NPM_PACKAGES):
        return
    folder = npm_dir()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": "govchain-bench-peers", "private": True}))
    print(f"installing {' '.join(NPM_PACKAGES)} into {folder} (first use) ...", flush=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", *NPM_PACKAGES],
                   cwd=folder, check=True, timeout=900, stdout=subprocess.DEVNULL)


def ensure_eth_python(explicit: str | None) -> str:
    """A Python that can import eth_account: `explicit`, else this interpreter if it can,
    else a virtualenv in the cache folder, created on first use."""
    if explicit:
        return explicit
    probe = subprocess.run([sys.executable, "-c", "import eth_account"], capture_output=True)
    if probe.returncode == 0:
        return sys.executable
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    ready = python.exists() and subprocess.run(
        [str(python), "-c", "import eth_account"], capture_output=True).returncode == 0
    if not ready:
        print(f"creating {venv} with {' '.join(PYPI_PACKAGES)} (first use) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PYPI_PACKAGES],
                       check=True, timeout=900)
    return str(python)


@dataclass(frozen=True, slots=True)
class EthLoad:
    """Pre-signed transfers for one chain id: sender keys and transactions in
    round-robin sender order."""

    chain_id: int
    sender_keys: tuple[str, ...]
    units: tuple[Unit, ...]


def presign(eth_python: str, chain_id: int, txs: int, senders: int, workdir: Path) -> EthLoad:
    out = workdir / f"eth-{chain_id}-{txs}-{senders}.json"
    if not out.exists():
        print(f"pre-signing {txs} transfers for chain id {chain_id} ...", flush=True)
        subprocess.run([eth_python, str(PRESIGN), "--chain-id", str(chain_id), "--txs",
                        str(txs), "--senders", str(senders), "--out", str(out)],
                       check=True, timeout=1800)
    doc = json.loads(out.read_text())
    return EthLoad(chain_id, tuple(s["key"] for s in doc["senders"]),
                   tuple(Unit((normalize_hash(t["hash"]),), t["raw"]) for t in doc["txs"]))


def normalize_hash(value: str) -> str:
    return value.lower().removeprefix("0x")


def hardhat_config(spec: PeerSpec, sender_keys: tuple[str, ...]) -> str:
    mining = ("{ auto: false, interval: 1000 }" if spec.name == "hardhat"
              else "{ auto: true }")
    accounts = ",\n".join(f'      {{ privateKey: "{k}", balance: "{SENDER_BALANCE_WEI}" }}'
                          for k in sender_keys)
    return ("module.exports = {\n  networks: {\n    hardhat: {\n"
            f"      chainId: {spec.chain_id},\n      blockGasLimit: 1000000000,\n"
            f"      mining: {mining},\n      accounts: [\n{accounts}\n      ],\n"
            "    },\n  },\n};\n")


def peer_command(spec: PeerSpec, sender_keys: tuple[str, ...], port: int,
                 workdir: Path) -> list[str]:
    bin_dir = npm_dir() / "node_modules" / ".bin"
    if spec.package == "hardhat":
        config = workdir / f"{spec.name}.config.js"
        config.write_text(hardhat_config(spec, sender_keys))
        return [str(bin_dir / "hardhat"), "--config", str(config), "node",
                "--hostname", "127.0.0.1", "--port", str(port)]
    return [str(bin_dir / "ganache"), "--server.host", "127.0.0.1", "--server.port",
            str(port), "--chain.chainId", str(spec.chain_id),
            *(f"--wallet.accounts={k},{SENDER_BALANCE_WEI}" for k in sender_keys)]


class PeerProcess:
    """One peer chain process (and whatever it starts), in its own process group."""

    def __init__(self, spec: PeerSpec, sender_keys: tuple[str, ...], port: int,
                 workdir: Path) -> None:
        self.spec = spec
        self.rpc_url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{spec.name}-{port}.log"
        self.command = peer_command(spec, sender_keys, port, workdir)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            self.command, cwd=npm_dir(), stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"})

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def peak_rss_mb(self) -> float:
        """Sum of the peak RSS (VmHWM) of the process and its descendants."""
        if self.process is None:
            return 0.0
        total, todo = 0.0, [self.process.pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        return total


class EthRpc:
    """A minimal Ethereum JSON-RPC client over aiohttp, with batch calls."""

    def __init__(self, url: str, *, timeout_s: float = 60.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, doc: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=256))
        async with self._session.post(self.url, json=doc) as response:
            return await response.json(content_type=None)

    async def call(self, method: str, *params: Any) -> Any:
        answer = await self._post({"jsonrpc": "2.0", "id": next(self._ids),
                                   "method": method, "params": list(params)})
        if "error" in answer:
            raise EthRpcError(str(answer["error"].get("message", answer["error"])))
        return answer["result"]

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        docs = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)]
        answers = await self._post(docs)
        by_id = {a.get("id"): a for a in answers}
        out = []
        for i in range(len(calls)):
            answer = by_id.get(i) or {}
            if "result" not in answer:
                raise EthRpcError(f"{calls[i][0]}: {answer.get('error')}")
            out.append(answer["result"])
        return out


class EthRpcError(Exception):
    """The peer answered a call with an error."""


async def wait_ready(rpc: EthRpc, chain_id: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            answer = int(await rpc.call("eth_chainId"), 16)
            if answer != chain_id:
                raise RuntimeError(f"peer answers chain id {answer}, expected {chain_id}")
            return
        except (aiohttp.ClientError, EthRpcError, TimeoutError, ValueError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def make_send(rpc: EthRpc) -> Any:
    async def send(lane: int, unit: Unit) -> list[str]:
        try:
            await rpc.call("eth_sendRawTransaction", unit.payload)
        except (aiohttp.ClientError, EthRpcError, TimeoutError) as e:
            return [f"{type(e).__name__}: {e}"]
        return []
    return send


class EthFollower:
    """Reads mined blocks by number (up to `max_batch` per request) and reports their
    transaction hashes. A local peer chain has no reorgs, so mined is final here."""

    def __init__(self, rpc: EthRpc, height: int, max_batch: int = 200) -> None:
        self.rpc = rpc
        self.height = height
        self.max_batch = max_batch

    @classmethod
    async def create(cls, rpc: EthRpc) -> EthFollower:
        return cls(rpc, int(await rpc.call("eth_blockNumber"), 16))

    async def poll(self) -> list[list[str]]:
        try:
            head = int(await self.rpc.call("eth_blockNumber"), 16)
            if head <= self.height:
                return []
            heights = range(self.height + 1, min(head, self.height + self.max_batch) + 1)
            blocks = await self.rpc.batch([("eth_getBlockByNumber", [hex(h), False])
                                           for h in heights])
        except (aiohttp.ClientError, EthRpcError, TimeoutError) as e:
            print(f"  follower: {type(e).__name__}: {e}", flush=True)
            return []
        # A peer may report a head whose newest blocks it cannot serve yet (null): take
        # the blocks up to the first missing one and ask for the rest on the next poll.
        found = []
        for block in blocks:
            if block is None:
                break
            found.append([normalize_hash(h) for h in block["transactions"]])
        self.height += len(found)
        return found
