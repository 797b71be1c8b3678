"""The explorer page: every label in three languages, and a real headless Chromium
driving it against a running node over the DevTools protocol (aiohttp WebSocket)."""

from __future__ import annotations

import json
import re

import pytest

from ledger.execution import Ledger, default_modules
from ledger.registry import STATUSES
from rpc.operator import EXPLORER_DIR
from tests.operator.browser import open_browser, submit_search
from tests.operator.chain_builder import BOB, transfer

LANGUAGES = ("en", "ru", "ky")


def load_i18n() -> dict[str, dict[str, str]]:
    doc: dict[str, dict[str, str]] = json.loads((EXPLORER_DIR / "i18n.json").read_text())
    return doc


def used_keys() -> set[str]:
    """Every label key the page can show, the ones it builds from data included."""
    html = (EXPLORER_DIR / "index.html").read_text()
    js = (EXPLORER_DIR / "app.js").read_text()
    verify_js = (EXPLORER_DIR / "verify.js").read_text()
    keys = set(re.findall(r'data-i18n(?:-placeholder)?="([a-z_]+)"', html))
    keys |= set(re.findall(r'\bt[fp]?\("([a-z_]+)"', js))
    keys |= set(re.findall(r'"(status_[a-z]+)"', js))
    # tp("base", n): a singular and a plural form
    keys |= {f"{base}_{form}" for base in re.findall(r'\btp\("([a-z_]+)"', js)
             for form in ("one", "other")}
    keys -= set(re.findall(r'\btp\("([a-z_]+)"', js))
    # every kind of transaction the ledger executes has a name
    keys |= {f"kind_{tx_type}" for tx_type in Ledger(default_modules()).tx_types}
    keys |= {f"record_status_{status}" for status in STATUSES}
    # the verifier's failure codes (VerifyError codes), worded as fail_<code>
    codes = set()
    for source in (js, verify_js):
        codes |= set(re.findall(r'(?:\bfail|VerifyError)\(\s*"([a-z_]+)"', source))
        for pair in re.findall(r'\bfail\([^"()]*\?\s*"([a-z_]+)"\s*:\s*"([a-z_]+)"', source):
            codes |= set(pair)
        codes |= set(re.findall(r'\brenamed\([^;]*?"([a-z_]+)"\);', source, re.S))
        codes |= set(re.findall(r'\bcode: "([a-z_]+)"', source))
    keys |= {f"fail_{code}" for code in codes}
    # the verify box of each kind of page, and its success sentence
    kinds = set(re.findall(r'verifyPanel\("([a-z]+)"', js))
    assert kinds == {"block", "record", "account", "tx"}
    keys |= {f"{prefix}_{kind}" for kind in kinds for prefix in ("verify_hint", "ok")}
    keys |= {f"fail_{kind}_changed" for kind in ("record", "account")}
    return keys


def test_the_label_check_sees_the_built_keys() -> None:
    keys = used_keys()
    assert {"kind_transfer", "kind_record_put", "fail_cert_bad_signature", "fail_broken_link",
            "fail_genesis_mismatch", "fail_record_altered", "fail_account_altered",
            "fail_rpc_failed", "signed_by_names_one", "signed_by_names_other",
            "ok_record", "record_status_revoked"} <= keys


def test_placeholders_are_the_same_in_every_language() -> None:
    i18n = load_i18n()
    for key, english in i18n["en"].items():
        wanted = sorted(re.findall(r"\{([a-z_]+)\}", english))
        for lang in ("ru", "ky"):
            got = sorted(re.findall(r"\{([a-z_]+)\}", i18n[lang][key]))
            assert got == wanted, f"{lang} {key}: placeholders {got}, English has {wanted}"


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
        assert balance == f"{account['balances']['GOV']:,} GOV"  # GOV has no decimals

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
