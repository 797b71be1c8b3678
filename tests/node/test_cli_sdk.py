"""The CLI's integrator commands against a real node: --json, tables, progress."""

from __future__ import annotations

import asyncio
import io
import json

from cli.main import main
from cli.sdk import Progress, render_table
from sdk import save_key
from tests.node.conftest import CHAIN_ID, wait_for
from tests.node.test_rpc import ALICE, BOB


async def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_transfer_shows_progress_and_prints_json(single_node, tmp_path, capsys):
    key = save_key(tmp_path / "alice.json", ALICE)
    url = single_node.service.rpc_url
    code, out, err = await run_cli(capsys, "tx", "transfer", "--key", str(key),
                                   "--to", BOB.address.hex(), "--amount", "3", "--rpc", url,
                                   "--json")  # --json after the subcommand works too
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "final" and doc["code"] == "ok"
    assert "waiting for finality" in err
    code, out, _ = await run_cli(capsys, "tx", "status", doc["hash"], "--rpc", url)
    assert code == 0 and "status" in out and "final" in out  # a human table


async def test_offline_build_sign_then_send_file(single_node, tmp_path, capsys):
    key = save_key(tmp_path / "alice.json", ALICE)
    file = tmp_path / "pay.json"
    code, out, err = await run_cli(
        capsys, "--json", "tx", "build", "--type", "transfer", "--field",
        f"to=0x{BOB.address.hex()}", "--field", "asset=GOV", "--field", "amount=4",
        "--sender", ALICE.address.hex(), "--chain-id", CHAIN_ID, "--nonce", "0",
        "--out", str(file))
    assert code == 0, err
    assert json.loads(out)["signers"] == []  # built offline, not signed
    code, out, err = await run_cli(capsys, "--json", "tx", "sign", str(file), "--key", str(key))
    assert code == 0 and len(json.loads(out)["signers"]) == 1
    code, out, err = await run_cli(capsys, "--json", "tx", "send-file", str(file),
                                   "--rpc", single_node.service.rpc_url)
    assert code == 0, err
    assert json.loads(out)["status"] == "final"


async def test_admin_rpc_and_subscribe_commands(single_node, capsys):
    url = single_node.service.rpc_url
    await wait_for(lambda: _has_block(single_node), 10, "block 1")
    code, out, _ = await run_cli(capsys, "admin", "peers", "--rpc", url)
    assert code == 0 and out.strip() == "(none)"
    code, out, _ = await run_cli(capsys, "admin", "mempool-flush", "--rpc", url, "--json")
    assert json.loads(out) == {"flushed": 0}
    code, out, _ = await run_cli(capsys, "rpc", "chain_block", '{"height": 1}', "--rpc", url,
                                 "--json")
    assert json.loads(out)["height"] == 1
    code, out, _ = await run_cli(capsys, "--json", "subscribe", "blocks", "--from-height", "1",
                                 "--count", "3", "--rpc", url)
    assert code == 0
    assert [json.loads(line)["height"] for line in out.splitlines()] == [1, 2, 3]


async def _has_block(running) -> bool:
    return running.node.store.head_height >= 1


async def test_invalid_cli_errors_are_one_line(single_node, capsys):
    code, _out, err = await run_cli(capsys, "rpc", "tx_get", '{"hash": "zz"}', "--rpc",
                                   single_node.service.rpc_url)
    assert code == 1 and err.strip().startswith("govchain: error: invalid_params")


def test_table_and_progress_rendering():
    table = render_table([{"a": 1, "b": None}, {"a": 22, "c": {"x": 1}}])
    assert table.splitlines()[0].split() == ["a", "b", "c"]
    assert "-" in table.splitlines()[1]
    stream = io.StringIO()
    progress = Progress("waiting", stream)
    progress.update({"waiting_for": "nonce 0"})
    progress.done("final")
    assert "waiting ..." in stream.getvalue() and "waiting: final after" in stream.getvalue()
