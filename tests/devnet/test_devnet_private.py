"""The private licence's worked story (docs/ledger.md) on a real 4-validator devnet.

Governance creates the private namespace "drivers", held by the ministries of validators
0 and 1, with a writer and a court; then, through the command line against the node
processes: the ministry issues a licence (only its commitment goes on the chain), the
citizen proves it against the chain, the bank reads it with the citizen's grant, the
citizen lists who read it, the court orders erasure. Afterwards RPC says "erased on
<date> by <court>", no file of any node home holds the payload or its key, and
`govchain audit` passes on a stopped node. Black-box over RPC and the CLI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import KeyPair
from node.config import write_key_file
from storage.private_store import KEY_SLOT_BYTES
from tests.devnet.test_devnet_faults import PARAMS, run_ok
from tests.devnet.test_devnet_governance import Chain, poll
from tests.devnet.test_devnet_integration import govchain, leftover_processes

pytestmark = pytest.mark.slow
MARKER = b"MARKER-devnet-private-5e81d0"
PAYLOAD = b"%PDF-1.7 driving licence B, holder Aida Bekova, " + MARKER
BANK = KeyPair.from_seed(b"\x42" * 32)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    path = tmp_path_factory.mktemp("private") / "devnet"
    run_ok("devnet", "up", "--detach", "--nodes", "4", "--accounts", "7", "--base-port", "0",
           "--dir", str(path), "--params", json.dumps(PARAMS))
    try:
        yield Chain(path)
    finally:
        govchain("devnet", "down", "--dir", str(path))
        assert leftover_processes(path) == []


def files_holding(path: Path, needle: bytes) -> list[str]:
    return [str(p) for p in path.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_the_private_licence_story_on_a_devnet(chain: Chain, tmp_path: Path) -> None:
    writer, citizen, court = chain.accounts[4:7]
    voters = chain.validators[:3]
    homes = [Path(n["home"]) for n in chain.manifest["nodes"]]
    rpc = [n["rpc_url"] for n in chain.manifest["nodes"]]

    def cli(*args: str) -> Any:
        return json.loads(run_ok("--json", *args))

    # the namespace, by governance from the command line: held by validators 0 and 1
    validator_keys = [str(chain.path / "genesis" / f"validator{i}_key.json") for i in range(3)]
    proposal = cli("tx", "propose", "--key", validator_keys[0], "--action",
                   "create_private_namespace", "--args", json.dumps({
                       "name": "drivers", "description": "driving licences",
                       "holders": [chain.validators[0].public_key.hex(),
                                   chain.validators[1].public_key.hex()],
                       "metadata_keys": ["class"]}), "--rpc", rpc[0])
    assert proposal["code"] == "ok", proposal
    for i in (1, 2):
        vote = cli("tx", "vote", "--key", validator_keys[i], "--proposal",
                   str(proposal["events"][0]["attributes"]["id"]), "--rpc", rpc[i])
        assert vote["code"] == "ok", vote
    assert vote["events"][-1]["kind"] == "namespace_created"
    for role, account in (("writer", writer), ("authority", court)):
        assert chain.decide(voters, "grant_role", {"role": role, "scope": "drivers",
                                                   "address": account.address}
                            ) == "role_granted"
    keys = {}
    for name, key in (("writer", writer), ("citizen", citizen), ("bank", BANK),
                      ("court", court)):
        keys[name] = str(tmp_path / f"{name}.json")
        write_key_file(Path(keys[name]), key)

    # 1. the ministry (validator 0's node) issues the licence: the commitment on chain
    licence = tmp_path / "licence.pdf"
    licence.write_bytes(PAYLOAD)
    put = cli("private", "put", "drivers/lic-42", "--key", keys["writer"], "--payload",
              str(licence), "--subject", citizen.address.hex(), "--meta", "class=B",
              "--rpc", rpc[0])
    salt = (tmp_path / "licence.pdf.salt").read_text().strip()
    assert put["salt_file"] == str(tmp_path / "licence.pdf.salt")

    def held(index: int) -> bool:
        answer = chain.client(index).call("state_private_record", namespace="drivers",
                                          key="lic-42")
        return bool(answer["held"])
    assert held(0)
    poll(lambda: held(1), "the payload fetched by the other holder over p2p")
    assert not held(2) and not held(3)
    # the citizen proves the licence against the chain at a node that never saw it
    genesis = str(chain.path / "genesis" / "genesis.json")
    proof = cli("verify-private", "drivers/lic-42", "--payload", str(licence), "--salt", salt,
                "--genesis", genesis, "--rpc", rpc[3])
    assert proof["record"]["commitment"] == put["commitment"]
    forged = tmp_path / "forged.pdf"
    forged.write_bytes(PAYLOAD + b" forged")
    assert govchain("verify-private", "drivers/lic-42", "--payload", str(forged), "--salt",
                    salt, "--genesis", genesis, "--rpc", rpc[3]).returncode == 1

    # 2. the bank reads: refused without a grant (and logged), served with one
    out = tmp_path / "read.pdf"
    refused = govchain("private", "read", "drivers/lic-42", "--key", keys["bank"], "--out",
                       str(out), "--rpc", rpc[1])
    assert refused.returncode != 0 and "no_grant" in refused.stderr + refused.stdout
    cli("private", "grant", "drivers/lic-42", "--key", keys["citizen"], "--grantee",
        BANK.address.hex(), "--hours", "1", "--rpc", rpc[1])
    read = cli("private", "read", "drivers/lic-42", "--key", keys["bank"], "--out", str(out),
               "--rpc", rpc[1])
    assert read["basis"] == "grant" and read["opens_commitment"] is True
    assert out.read_bytes() == PAYLOAD

    # 3. the citizen sees both of the bank's requests in the holder's read log
    reads = cli("private", "reads", "drivers/lic-42", "--key", keys["citizen"], "--rpc", rpc[1])
    bank_reads = [e["entry"]["outcome"] for e in reads["entries"]
                  if e["entry"]["reader"] == BANK.address.hex()
                  and e["entry"]["action"] == "read"]
    assert bank_reads == ["no_grant", "ok"]
    refused = govchain("private", "reads", "drivers/lic-42", "--key", keys["bank"],
                       "--rpc", rpc[1])
    assert refused.returncode != 0  # the bank may not see the citizen's read log

    # 4. the court orders erasure, sent through a node that holds nothing
    box_keys = [slot[32:] for home in homes[:2] for path in (home / "private" / "keys").iterdir()
                for data in [path.read_bytes()]
                for slot in (data[i:i + KEY_SLOT_BYTES]
                             for i in range(0, len(data), KEY_SLOT_BYTES))]
    assert len(box_keys) == 2  # one record, its key at each holder
    erased = cli("private", "erase", "drivers/lic-42", "--key", keys["court"], "--reason",
                 "court order 2026/77", "--rpc", rpc[2])
    poll(lambda: not held(0) and not held(1), "the payload erased at both holders")
    for index in range(4):
        answer = chain.client(index).call("state_record", namespace="drivers", key="lic-42")
        assert answer["record"]["commitment"] == put["commitment"]  # the record stays
        day = time.strftime("%Y-%m-%d", time.gmtime(answer["erased"]["timestamp_ms"] / 1000))
        assert answer["erased"]["text"] == f"erased on {day} by {court.address.hex()}"
    refused = govchain("private", "read", "drivers/lic-42", "--key", keys["citizen"],
                       "--out", str(out), "--rpc", rpc[0])
    assert refused.returncode != 0 and "record_erased" in refused.stderr + refused.stdout
    assert chain.client(3).status()["height"] >= erased["height"]

    # no file of any node home keeps the payload, nor its key
    for home in homes:
        assert files_holding(home, MARKER) == [], home
        for box_key in box_keys:
            assert files_holding(home, box_key) == [], f"an erased key lingers in {home}"
    for home in homes[:2]:
        assert (home / "private" / "payloads").is_dir()
        assert list((home / "private" / "keys").iterdir()) == []
    run_ok("devnet", "stop", "node3", "--dir", str(chain.path))
    audit = govchain("audit", "--home", str(homes[3]))
    assert audit.returncode == 0, audit.stderr
