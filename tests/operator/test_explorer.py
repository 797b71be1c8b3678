"""The explorer page: every label in three languages, and a real headless Chromium
driving it against a running node over the DevTools protocol (aiohttp WebSocket)."""

from __future__ import annotations

import json
import re

import pytest

from rpc.operator import EXPLORER_DIR
from tests.operator.browser import open_browser, submit_search
from tests.operator.chain_builder import BOB, transfer

LANGUAGES = ("en", "ru", "ky")


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
