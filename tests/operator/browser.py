"""A headless Chromium driven over the DevTools protocol (aiohttp WebSocket), for the
explorer's tests: Debian's chromium with no calls out (no sync, no component updates,
no background networking), one throw-away profile per browser."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.debian import install_debian_package

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--remote-debugging-port=0", "about:blank"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def get_chromium() -> str:
    """Debian's chromium; installed with apt-get when missing on CI or as root."""
    path = find_chromium()
    if path:
        return path
    install_debian_package("chromium", "chromium")
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
        self.console: list[str] = []
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
            elif doc.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in doc["params"]["args"])[:500])

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

    async def screenshot(self, path: Path | str) -> Path:
        """Save a PNG of the whole page (beyond the viewport) at `path`."""
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                               clip={"x": 0, "y": 0, "width": size["width"],
                                     "height": size["height"], "scale": 1})
        target = Path(path)
        await asyncio.to_thread(target.write_bytes, base64.b64decode(shot["data"]))
        return target

    async def set_file_input(self, selector: str, path: Path | str) -> None:
        """Choose the file at `path` in the <input type=file> `selector`, as a user would."""
        document = await self.call("DOM.getDocument")
        found = await self.call("DOM.querySelector", nodeId=document["root"]["nodeId"],
                                selector=selector)
        assert found["nodeId"], f"no element {selector}"
        await self.call("DOM.setFileInputFiles", nodeId=found["nodeId"], files=[str(path)])

    async def wait_for(self, expression: str, what: str, timeout_s: float = 15.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        while True:
            value = await self.evaluate(guarded)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                page = await self.evaluate("document.body ? document.body.innerText : ''")
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; "
                                     f"console: {self.console[-5:]}; exceptions: "
                                     f"{self.exceptions[-3:]}; the page says: "
                                     f"{(page or '')[:1500]!r}")
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
                await devtools.call("Emulation.setDeviceMetricsOverride", width=1200,
                                    height=900, deviceScaleFactor=1, mobile=False)
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
