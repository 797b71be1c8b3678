"""The README's "Using it" and docs/sdk.md stay true: one import path (`sdk`), one key
loader (`load_key`), and the README's Python example runs against a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

from sdk import save_key
from tests.node.conftest import ACCOUNT_KEYS
from tests.node.test_rpc import BOB

ROOT = Path(__file__).resolve().parents[2]


def using_it() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Using it", 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:python|text)\n(.*?)```", text, re.S)


def test_readme_and_sdk_doc_use_one_import_path_and_one_key_loader():
    sdk_doc = (ROOT / "docs" / "sdk.md").read_text()
    for where, text in (("README.md Using it", using_it()), ("docs/sdk.md", sdk_doc)):
        imports = [line for block in code_blocks(text) for line in block.splitlines()
                   if re.match(r"\s*(from|import) ", line)]
        assert imports, where
        assert all(re.match(r"\s*from sdk import ", line) for line in imports), \
            (where, imports)
        for stale in ("read_key_file", "node.config", "node.client", "node/sdk"):
            assert stale not in text, (where, stale)
        assert "load_key(" in text, where
    assert "from sdk import Client, load_key" in using_it()
    assert "from sdk import Client, load_key" in sdk_doc
    assert "`Client.chain_id` is a property" in sdk_doc


async def test_readme_python_example_runs(tmp_path, single_node):
    (code,) = re.findall(r"```python\n(.*?)```", using_it(), re.S)
    key_file = save_key(tmp_path / "account0_key.json", ACCOUNT_KEYS[0])
    code = code.replace("http://127.0.0.1:8545", single_node.service.rpc_url)
    code = code.replace("devnet-data/genesis/account0_key.json", str(key_file))
    code = code.replace("<address>", BOB.address.hex())
    before = await single_node.client.call("state_account", address=BOB.address.hex())
    printed = io.StringIO()

    def run() -> None:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), {})

    await asyncio.to_thread(run)
    assert "'status': 'final'" in printed.getvalue()
    after = await single_node.client.call("state_account", address=BOB.address.hex())
    assert after["balances"]["GOV"] == before["balances"]["GOV"] + 100
