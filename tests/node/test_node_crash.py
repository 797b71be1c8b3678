"""A real node process killed with SIGKILL under load, three times, then restarted.

Every transaction the RPC reported final before a kill must still be final afterwards
at the same height and index, the head must be consistent (every block up to it with
its certificate), balances must be conserved, and the chain must go on.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from chain.crypto import KeyPair
from chain.genesis import ChainParams
from chain.tx import make_transaction
from chain.vote import CommitCertificate, validate_certificate
from node.client import Client, RpcClientError
from tests.node.conftest import ACCOUNT_KEYS, BALANCE, CHAIN_ID, make_genesis
from tests.node.procs import NodeProcess

pytestmark = pytest.mark.slow

PARAMS = ChainParams(block_interval_ms=50, empty_block_interval_ms=500)


class Load:
    """Submits transfers from every dev account in a thread until stopped."""

    def __init__(self, client: Client, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.final: dict[str, tuple[int, int]] = {}
        self.pending: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self._one_round()
            except (RpcClientError, OSError):
                time.sleep(0.05)  # the node is down: the test restarts it

    def _one_round(self) -> None:
        txs = []
        for key in ACCOUNT_KEYS:
            nonce = self.client.next_nonce(key.address)
            to = self.rng.choice([k for k in ACCOUNT_KEYS if k is not key])
            txs.append(make_transaction(CHAIN_ID, key, nonce, "transfer",
                                        {"to": to.address, "asset": "GOV",
                                         "amount": self.rng.randint(1, 1000)}))
        for tx in txs:
            self.client.submit(tx)
            self.pending.append(tx.hash.hex())
        still = []
        for tx_hash in self.pending:
            info = self.client.get_tx(tx_hash)
            if info["status"] == "final":
                self.final[tx_hash] = (info["height"], info["index"])
            elif info["status"] == "pending":
                still.append(tx_hash)
        self.pending = still[-200:]


def check_consistent(client: Client, genesis, load: Load) -> int:
    head = client.status()["height"]
    for height in range(1, head + 1):
        block = client.call("chain_block", height=height)
        cert = CommitCertificate.decode(bytes.fromhex(block["certificate"]["encoded"]))
        validate_certificate(cert, genesis.validator_set, CHAIN_ID, height=height,
                             block_hash=bytes.fromhex(block["hash"]))
    for tx_hash, (height, index) in load.final.items():
        info = client.get_tx(tx_hash)
        assert info["status"] == "final", f"{tx_hash} was final before the crash: {info}"
        assert (info["height"], info["index"]) == (height, index)
    total = sum(client.call("state_account", address=k.address.hex())["balances"]["GOV"]
                for k in ACCOUNT_KEYS)
    assert total == BALANCE * len(ACCOUNT_KEYS), "balances not conserved"
    return head


def test_sigkill_under_load_loses_nothing(tmp_path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    print(f"CRASH_SEED={seed}")
    rng = random.Random(seed)
    validator = KeyPair.from_seed(b"\x42" * 32)
    genesis = make_genesis([validator], PARAMS)
    node = NodeProcess(tmp_path / "node", genesis, validator)
    load = Load(node.client, rng)
    try:
        node.start()
        for round_ in range(3):
            load.start()
            time.sleep(rng.uniform(1.0, 3.0))
            node.kill()
            load.stop()
            assert load.final, f"round {round_}: nothing became final before the kill"
            node.start()
            head = check_consistent(node.client, genesis, load)
            deadline = time.monotonic() + 20
            while node.client.status()["height"] <= head + 1:
                assert time.monotonic() < deadline, "the chain did not go on after restart"
                time.sleep(0.1)
        assert node.stop() == 0
    finally:
        load.stop()
        node.kill()
