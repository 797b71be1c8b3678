"""The emergency path's tooling: export a stopped chain's last state into a recovery
genesis, sign and verify the override, and start the recovered chain from it."""

from __future__ import annotations

import json

from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.tx import Transaction
from cli.ledger import add_dev_ledger
from cli.main import main as cli_main
from cli.service import NodeService
from node.config import NodeHome, write_key_file
from sdk import AsyncClient
from tests.node.conftest import ACCOUNT_KEYS, BALANCE, CHAIN_ID, make_genesis, make_home, wait_for

OLD = KeyPair.from_seed(b"\x01" * 32)
NEW = KeyPair.from_seed(b"\x05" * 32)
WRITER = ACCOUNT_KEYS[3]


async def test_recovery_genesis_restarts_from_the_last_state(tmp_path):
    genesis = add_dev_ledger(make_genesis([OLD]), list(ACCOUNT_KEYS), BALANCE)
    service = NodeService(make_home(tmp_path / "old", genesis, OLD))
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        tx = Transaction(CHAIN_ID, WRITER.address, 0, "record_put", {
            "namespace": "licenses", "key": "vasp-1", "value": b"kept"}).with_signature(WRITER)
        assert (await client.submit(tx, wait="final"))["code"] == "ok"
        head_time = (await client.call("node_status"))["head_time_ms"]
    finally:
        await client.close()
        await service.stop()  # the old chain is gone for good

    key_file = tmp_path / "new_key.json"
    write_key_file(key_file, NEW)
    out = tmp_path / "recovery"

    def cli(*argv: str) -> int:
        return cli_main(["--json", *argv])

    assert cli("recovery", "export", "--home", str(tmp_path / "old"), "--chain-id",
               "govchain-test-r1", "--genesis-time-ms", str(head_time + 1000),
               "--validator", f"{NEW.public_key.hex()}=ministry-r", "--out-dir", str(out)) == 0
    assert cli("recovery", "export", "--home", str(tmp_path / "old"), "--chain-id",
               CHAIN_ID, "--genesis-time-ms", str(head_time + 1000),
               "--out-dir", str(tmp_path / "x")) == 1  # the chain id must change
    verify = ["recovery", "verify", "--override", str(out / "override.json"), "--genesis",
              str(out / "genesis.json"), "--old-home", str(tmp_path / "old")]
    assert cli(*verify) == 1  # nobody signed yet
    assert cli("recovery", "sign", "--override", str(out / "override.json"),
               "--key", str(key_file)) == 0
    assert cli(*verify) == 0
    override = json.loads((out / "override.json").read_text())
    tampered = dict(override, height=override["height"] + 1)
    (out / "bad.json").write_text(json.dumps(tampered))
    assert cli("recovery", "verify", "--override", str(out / "bad.json"), "--genesis",
               str(out / "genesis.json")) == 1

    recovered = Genesis.from_json((out / "genesis.json").read_text())
    home = make_home(tmp_path / "new", recovered, NEW)
    service = NodeService(NodeHome.load(tmp_path / "new"))
    assert home.genesis.hash == recovered.hash
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        await wait_for(lambda: _height(client, 2), 30, "the recovered chain finalizes")
        record = await client.call("state_record", namespace="licenses", key="vasp-1")
        assert record["record"]["value"] == b"kept".hex()
        account = await client.call("state_account", address=WRITER.address.hex())
        assert account["nonce"] == 1 and account["balances"]["GOV"] == BALANCE
        vset = await client.call("chain_validators")
        assert [v["public_key"] for v in vset["validators"]] == [NEW.public_key.hex()]
    finally:
        await client.close()
        await service.stop()


async def _height(client: AsyncClient, height: int) -> bool:
    return (await client.call("node_status"))["height"] >= height


