"""The explorer page: every label in three languages, and a real headless Chromium
driving it against a running node over the DevTools protocol (aiohttp WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rpc.operator import EXPLORER_DIR
from tests.operator.chain_builder import BOB, transfer

LANGUAGES = ("en", "ru", "ky")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--remote-debugging-port=0", "about:blank"]


def load_i18n() -> dict[str, dict[str, str]]:
    doc: dict[str, dict[str, str]] = json.loads((EXPLORER_DIR / "i18n.json").read_text())
    return doc


def used_keys() -> set[str]:
    html = (EXPLORER_DIR / "index.html").read_text()
    js = (EXPLORER_DIR / "app.js").read_text()
    keys = set(re.findall(r'data-i18n(?:-placeholder)?="([a-z_]+)"', html))
    keys |= set(re.findall(r'\bt\("([a-z_]+)"\)', js))
    keys |= set(re.findall(r'"(status_[a-z]+)"', js))
    return keys


def test_every_label_exists_in_all_three_languages() -> None:
    i18n = load_i18n()
    assert set(i18n) == set(LANGUAGES)
    english = set(i18n["en"])
    for lang in LANGUAGES:
        assert set(i18n[lang]) == english, f"{lang} differs: {set(i18n[lang]) ^ english}"
        assert all(text.strip() for text in i18n[lang].values()), f"{lang} has an empty label"
    missing = used_keys() - english
    assert not missing, f"labels used by the page but not translated: {missing}"
    # Russian and Kyrgyz are translations, not copies of the English text.
    for lang in ("ru", "ky"):
        same = [k for k in english if i18n[lang][k] == i18n["en"][k]]
        assert not same, f"{lang} labels left in English: {same}"


# ------------------------------------------------------------------ headless Chromium


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing on CI or as root."""
    path = find_chromium()
    if path:
        return path
    can_install = shutil.which("apt-get") and (os.environ.get("CI") == "true"
                                               or os.geteuid() == 0)
    if not can_install:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get "
                    "as root or CI=true): apt-get install -y chromium")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if done.returncode != 0:
            pytest.skip(f"installing chromium failed ({' '.join(command)}): "
                        f"{done.stderr[-300:]}")
    path = find_chromium()
    if not path:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.exceptions: list[str] = []
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            doc = json.loads(message.data)
            if "id" in doc and doc["id"] in self.pending:
                self.pending.pop(doc["id"]).set_result(doc)
            elif doc.get("method") == "Runtime.exceptionThrown":
                details = doc["params"]["exceptionDetails"]
                self.exceptions.append(json.dumps(details.get("exception", details))[:500])

    async def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        doc = await asyncio.wait_for(future, 15)
        if "error" in doc:
            raise AssertionError(f"{method}: {doc['error']}")
        return doc.get("result")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout_s: float = 15.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        while True:
            value = await self.evaluate(guarded)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def open_browser(binary: str) -> AsyncIterator[DevTools]:
    with tempfile.TemporaryDirectory(prefix="govchain-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            binary, *CHROMIUM_FLAGS[:-1], f"--user-data-dir={profile}", CHROMIUM_FLAGS[-1],
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True)
        session = aiohttp.ClientSession()
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            for _ in range(200):
                if port_file.exists() and port_file.read_text().strip():
                    break
                assert proc.returncode is None, "chromium exited at start"
                await asyncio.sleep(0.05)
            port = int(port_file.read_text().splitlines()[0])
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"],
                                          max_msg_size=0) as ws:
                devtools = DevTools(ws)
                await devtools.call("Runtime.enable")
                await devtools.call("Page.enable")
                try:
                    yield devtools
                finally:
                    devtools.reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await devtools.reader
        finally:
            await session.close()
            # Chromium's helpers (renderer, GPU, crash handler) share its process group and
            # may still write to the profile: stop them all before the profile is removed.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            await wait_group_gone(proc.pid, timeout_s=5.0)


async def wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait (bounded) until no process of group `pgid` is left to reap."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)


async def submit_search(devtools: DevTools, text: str) -> None:
    await devtools.evaluate(
        f"document.getElementById('search').value = {json.dumps(text)};"
        "document.getElementById('search-form').requestSubmit(); true")


@pytest.mark.slow
async def test_explorer_in_headless_chromium(single_node, chromium: str) -> None:
    url = single_node.service.rpc_url
    i18n = load_i18n()
    async with open_browser(chromium) as devtools:
        await devtools.call("Page.navigate", url=f"{url}/explorer/?lang=en")
        await devtools.wait_for(
            "Number(document.getElementById('st-height').textContent) >= 1", "chain status")
        assert await devtools.evaluate("document.getElementById('st-chain').textContent") \
            == single_node.node.chain_id
        await devtools.wait_for("document.querySelectorAll('#validators tbody tr').length",
                                "the validators table")
        first = await devtools.wait_for(
            "Math.max(0, ...[...document.querySelectorAll('#blocks tbody tr')]"
            ".map(r => Number(r.id.replace('block-row-', ''))))", "a block row")
        # A new block appears without reloading the page.
        await devtools.wait_for(f"!!document.getElementById('block-row-{first + 1}')",
                                "a new block to appear live")

        tx = transfer(0, 77)
        await single_node.client.submit(tx, wait="final")
        await devtools.wait_for(
            f"[...document.querySelectorAll('#txs a')].some(a => a.href.endsWith("
            f"'{tx.hash.hex()}'))", "the transaction in the latest transactions")

        await submit_search(devtools, tx.hash.hex())
        status = await devtools.wait_for(
            "document.getElementById('tx-status') && "
            "document.getElementById('tx-status').dataset.status", "the transaction page")
        assert status == "final"

        await submit_search(devtools, BOB.address.hex())
        balance = await devtools.wait_for(
            "document.querySelector('#balances .balance') && "
            "document.querySelector('#balances .balance').textContent", "the account page")
        account = await single_node.client.call("state_account", address=BOB.address.hex())
        assert int(balance) == account["balances"]["GOV"]

        await submit_search(devtools, "land-registry/parcel-42")
        missing = await devtools.wait_for(
            "document.getElementById('record-missing') && "
            "document.getElementById('record-missing').textContent", "the record page")
        assert missing in (i18n["en"]["records_unavailable"], i18n["en"]["not_found"])

        for lang in ("ru", "ky", "en"):
            await devtools.evaluate(
                f"(() => {{ const s = document.getElementById('lang'); s.value = '{lang}';"
                "s.dispatchEvent(new Event('change')); return true; })()")
            title = await devtools.evaluate(
                "document.querySelector('[data-i18n=back]').textContent")
            assert title == i18n[lang]["back"]
            assert await devtools.evaluate("document.documentElement.lang") == lang
        assert devtools.exceptions == [], devtools.exceptions
