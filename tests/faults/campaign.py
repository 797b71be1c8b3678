"""A fault campaign against a real multi-process devnet (Jepsen-style).

A client workload submits transfers through every node while a nemesis, driven by one
seed, SIGKILLs and restarts validators, pauses them (SIGSTOP/SIGCONT), cuts the network
into partitions and heals it, and restarts a node with a skewed clock. At the end the
network is healed and the history is checked: every transaction ever reported final is
final on every node with the same height, index and result; all nodes hold the same
block at every height, each with a valid certificate; balances are conserved; no honest
validator signed conflicting votes (no evidence); and after every heal the chain
finalized again within a bound. Bounded in time; only 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.tx import make_transaction
from chain.vote import CommitCertificate, validate_certificate
from sdk import Client, RpcClientError

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"block_interval_ms": 100, "empty_block_interval_ms": 400,
          "timeout_propose_ms": 600, "timeout_vote_ms": 300, "timeout_delta_ms": 200,
          "timeout_max_ms": 2500, "clock_skew_ms": 2000}
RECOVERY_BOUND_S = 30.0


def govchain(*args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    result = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                            text=True, timeout=120, cwd=ROOT, env=full_env,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"govchain {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Report:
    seed: int
    faults: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0
    lost: int = 0
    safety_violations: list[str] = field(default_factory=list)
    recoveries_s: list[float] = field(default_factory=list)
    final_height: int = 0

    def summary(self) -> str:
        worst = max(self.recoveries_s, default=0.0)
        return (f"seed={self.seed} faults={sum(self.faults.values())} {self.faults} "
                f"txs_acknowledged={self.acknowledged} txs_lost={self.lost} "
                f"safety_violations={len(self.safety_violations)} "
                f"worst_recovery_s={worst:.1f} final_height={self.final_height}")


class Campaign:
    def __init__(self, directory: Path, seed: int, duration_s: float) -> None:
        self.dir = directory
        self.rng = random.Random(seed)
        self.duration_s = duration_s
        self.report = Report(seed)
        self.names = [f"node{i}" for i in range(4)]
        self._stop = threading.Event()
        self._final: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ devnet control

    def devnet(self, *args: str, env: dict[str, str] | None = None) -> str:
        return govchain("devnet", *args, "--dir", str(self.dir), env=env)

    def manifest(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.dir / "devnet.json").read_text())
        return doc

    def client(self, name: str) -> Client:
        node = next(n for n in self.manifest()["nodes"] if n["name"] == name)
        return Client(node["rpc_url"], timeout_s=3.0)

    def heights(self) -> dict[str, int | None]:
        result: dict[str, int | None] = {}
        for name in self.names:
            try:
                result[name] = int(self.client(name).status()["height"])
            except RpcClientError:
                result[name] = None
        return result

    def pid(self, name: str) -> int | None:
        node = next(n for n in self.manifest()["nodes"] if n["name"] == name)
        pid: int | None = node.get("pid")
        return pid

    # ------------------------------------------------------------------ the run

    def run(self) -> Report:
        self.devnet("up", "--detach", "--nodes", "4", "--base-port", "0",
                    "--params", json.dumps(PARAMS))
        genesis = Genesis.from_json((self.dir / "genesis" / "genesis.json").read_text())
        accounts = [KeyPair.from_seed(bytes.fromhex(a["secret_key"]))
                    for a in self.manifest()["accounts"]]
        self._wait_progress("the fresh devnet")
        workload = threading.Thread(target=self._workload, args=(genesis, accounts),
                                    daemon=True)
        workload.start()
        try:
            deadline = time.monotonic() + self.duration_s
            while time.monotonic() < deadline:
                self._inject_one()
            self._stop.set()
            workload.join(30)
            self._heal_all()
            self._check(genesis, accounts)
        finally:
            self._stop.set()
            self._resume_paused()
            try:
                self.devnet("down")
            except RuntimeError as e:
                self.report.safety_violations.append(f"devnet down failed: {e}")
        return self.report

    def _count(self, kind: str) -> None:
        self.report.faults[kind] = self.report.faults.get(kind, 0) + 1

    def _inject_one(self) -> None:
        kind = self.rng.choice(["kill", "pause", "partition", "isolate", "skew", "kill2"])
        victim = self.rng.choice(self.names)
        hold_s = self.rng.uniform(1.0, 4.0)
        self._count(kind)
        if kind == "kill":
            time.sleep(self.rng.uniform(0, 0.5))  # land anywhere, mid-commit included
            self.devnet("kill", victim)
            time.sleep(hold_s)
            self.devnet("start", victim)
        elif kind == "kill2":
            second = self.rng.choice([n for n in self.names if n != victim])
            self.devnet("kill", victim)
            self.devnet("kill", second)
            time.sleep(hold_s)
            self.devnet("start", victim)
            self.devnet("start", second)
        elif kind == "pause":
            pid = self.pid(victim)
            if pid:
                os.kill(pid, signal.SIGSTOP)
                try:
                    time.sleep(hold_s)
                finally:
                    os.kill(pid, signal.SIGCONT)
        elif kind == "partition":
            shuffled = self.rng.sample(self.names, 4)
            self.devnet("partition", ",".join(shuffled[:2]), ",".join(shuffled[2:]))
            time.sleep(hold_s)
            self.devnet("heal")
        elif kind == "isolate":
            self.devnet("isolate", victim)
            time.sleep(hold_s)
            self.devnet("heal")
        elif kind == "skew":
            offset = self.rng.choice([-1, 1]) * self.rng.randint(200, 4000)
            self.devnet("stop", victim)
            self.devnet("start", victim, env={"GOVCHAIN_CLOCK_OFFSET_MS": str(offset)})
            time.sleep(hold_s)
            self.devnet("stop", victim)
            self.devnet("start", victim, env={"GOVCHAIN_CLOCK_OFFSET_MS": "0"})
        self._wait_progress(f"after {kind} of {victim}")

    def _wait_progress(self, what: str) -> None:
        """Every node up and the chain two blocks further, within the recovery bound."""
        start = time.monotonic()
        base = max((h for h in self.heights().values() if h is not None), default=0)
        while True:
            heights = self.heights()
            if all(h is not None and h >= base + 2 for h in heights.values()):
                self.report.recoveries_s.append(time.monotonic() - start)
                return
            if time.monotonic() - start > RECOVERY_BOUND_S:
                self.report.safety_violations.append(
                    f"liveness: no progress {RECOVERY_BOUND_S:.0f} s {what}: {heights}")
                return
            time.sleep(0.2)

    def _resume_paused(self) -> None:
        for name in self.names:
            pid = self.pid(name)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def _heal_all(self) -> None:
        self._resume_paused()
        self.devnet("heal")
        for name in self.names:
            if self.heights()[name] is None:
                self.devnet("start", name)
        self._wait_progress("the final heal")

    # ------------------------------------------------------------------ workload

    def _workload(self, genesis: Genesis, accounts: list[KeyPair]) -> None:
        rng = random.Random(self.rng.random())
        pending: dict[str, str] = {}
        while not self._stop.is_set():
            name = rng.choice(self.names)
            try:
                client = self.client(name)
                key = rng.choice(accounts)
                to = rng.choice([a for a in accounts if a is not key])
                nonce = client.next_nonce(key.address)
                tx = make_transaction(genesis.chain_id, key, nonce, "transfer",
                                      {"to": to.address, "asset": "GOV",
                                       "amount": rng.randint(1, 100)})
                client.submit(tx)
                pending[tx.hash.hex()] = name
                for tx_hash in list(pending)[-50:]:
                    info = client.get_tx(tx_hash)
                    if info["status"] in ("final", "rejected") and "height" in info:
                        with self._lock:
                            self._final[tx_hash] = (info["height"], info["index"],
                                                    info["code"])
                        pending.pop(tx_hash, None)
                    elif info["status"] == "rejected":
                        pending.pop(tx_hash, None)
            except (RpcClientError, OSError, KeyError):
                time.sleep(0.05)
            time.sleep(0.01)

    # ------------------------------------------------------------------ checks

    def _check(self, genesis: Genesis, accounts: list[KeyPair]) -> None:
        violations = self.report.safety_violations
        clients = {name: self.client(name) for name in self.names}
        top = min(int(c.status()["height"]) for c in clients.values())
        self.report.final_height = top
        for height in range(1, top + 1):
            answers = [c.call("chain_block", height=height) for c in clients.values()]
            if len({a["hash"] for a in answers}) != 1:
                violations.append(f"nodes disagree at height {height}")
            for answer in answers:
                cert = CommitCertificate.decode(bytes.fromhex(answer["certificate"]["encoded"]))
                try:
                    validate_certificate(cert, genesis.validator_set, genesis.chain_id,
                                         height=height,
                                         block_hash=bytes.fromhex(answer["hash"]))
                except Exception as e:  # every failure is a finding to report
                    violations.append(f"bad certificate at {height}: {e}")
        with self._lock:
            final = dict(self._final)
        self.report.acknowledged = len(final)
        for tx_hash, (height, index, code) in final.items():
            for name, client in clients.items():
                info = client.get_tx(tx_hash)
                if (info.get("height"), info.get("index"), info.get("code")) != \
                        (height, index, code):
                    self.report.lost += 1
                    violations.append(f"{tx_hash} final at {height}/{index} ({code}) "
                                      f"but {name} says {info}")
        total = sum(int(clients["node0"].call("state_account", address=a.address.hex())
                        ["balances"].get("GOV", 0)) for a in accounts)
        expected = sum(a.balances.get("GOV", 0) for a in genesis.accounts
                       if a.address in {k.address for k in accounts})
        if total != expected:
            violations.append(f"balances not conserved: {total} != {expected}")
        for name, client in clients.items():
            evidence = client.call("chain_evidence")
            if evidence:
                violations.append(f"equivocation evidence on {name}: {evidence}")
