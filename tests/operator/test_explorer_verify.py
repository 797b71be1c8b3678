"""The explorer on a live node with the devnet's ledger (stablecoin KGS, the licenses
register), in headless Chromium: what each page shows, its "Verify" action in
English, Russian and Kyrgyz, the proof bundle (checked again by the Python code and by
the page's bundle checker), and answers changed on the way to the browser (a proxy
between browser and node) or a genesis file of another chain, each of which must make
the check fail with a message that names what failed. Screenshots of every page are
saved in the test's temporary folder, or under $GOVCHAIN_SCREENSHOTS when it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chain import codec, merkle
from chain.block import BlockHeader
from chain.crypto import KeyPair, compute_address, compute_hash
from chain.genesis import Genesis
from chain.results import ResultLeaf, is_valid_result_proof, validate_result_leaf
from chain.state_proof import StateProof, verify_state_proof
from chain.tx import Transaction, make_transaction
from chain.vote import CommitCertificate, Validator, ValidatorSet, validate_certificate
from cli.ledger import add_dev_ledger
from cli.service import NodeService
from ledger.keys import get_record_key
from sdk import AsyncClient
from sdk.bundle import verify_bundle
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    CHAIN_ID,
    VALIDATOR_KEYS,
    make_genesis,
    make_home,
    start_network,
    stop_network,
)
from tests.operator.browser import DevTools, open_browser, submit_search
from tests.operator.test_explorer import load_i18n

SCREENSHOTS = Path(os.environ.get("GOVCHAIN_SCREENSHOTS", ""))
VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
MINISTRY = "Ministry of Finance"
ISSUER, AUDITOR, _COMPLIANCE, WRITER = ACCOUNT_KEYS
CITIZEN = KeyPair.from_seed(b"\x33" * 32)
RESERVE = 200_000_000  # 2,000,000.00 KGS
PAID = 5_000  # 50.00 KGS, so the citizen keeps 199,995,000: 1,999,950.00 KGS
TEXT_RECORD = "licenses/vasp-0001"
BINARY_RECORD = "licenses/vasp-0002"
LANGUAGES = ("en", "ru", "ky")


@dataclass
class LedgerChain:
    service: NodeService
    client: AsyncClient
    genesis: Genesis
    txs: dict[str, Transaction]
    heights: dict[str, int]

    @property
    def url(self) -> str:
        return self.service.rpc_url


def ledger_genesis() -> Genesis:
    genesis = add_dev_ledger(make_genesis([VALIDATOR]), list(ACCOUNT_KEYS), BALANCE)
    return replace(genesis, validator_set=ValidatorSet(
        (Validator(VALIDATOR.public_key, MINISTRY),)))


@pytest.fixture
async def ledger_chain(tmp_path: Path) -> AsyncIterator[LedgerChain]:
    """One validator; an attested reserve, money issued to a citizen who pays 50.00 KGS,
    a text record and a binary one, each final."""
    genesis = ledger_genesis()
    service = NodeService(make_home(tmp_path / "node0", genesis, VALIDATOR))
    await service.start()
    client = AsyncClient(service.rpc_url)
    txs = {
        "attest": make_transaction(CHAIN_ID, AUDITOR, 0, "attest", {
            "asset": "KGS", "reserve": RESERVE, "report_hash": compute_hash(b"audit 2"),
            "timestamp_ms": genesis.genesis_time_ms + 1}),
        "mint": make_transaction(CHAIN_ID, ISSUER, 0, "mint", {
            "asset": "KGS", "to": CITIZEN.address, "amount": RESERVE}),
        "payment": make_transaction(CHAIN_ID, CITIZEN, 0, "transfer", {
            "to": ISSUER.address, "asset": "KGS", "amount": PAID}),
        "record": make_transaction(CHAIN_ID, WRITER, 0, "record_put", {
            "namespace": "licenses", "key": "vasp-0001", "value": b"Crypto Exchange LLC",
            "doc_hash": compute_hash(b"licence scan"), "metadata": {"class": "A"}}),
        "binary": make_transaction(CHAIN_ID, WRITER, 1, "record_put", {
            "namespace": "licenses", "key": "vasp-0002", "value": bytes(range(32))}),
    }
    heights = {}
    try:
        for name, tx in txs.items():
            status = await client.submit(tx, wait="final")
            assert status["status"] == "final", (name, status)
            heights[name] = status["height"]
        yield LedgerChain(service, client, genesis, txs, heights)
    finally:
        await client.close()
        await service.stop()


async def add_refused_payment(chain: LedgerChain) -> Transaction:
    """A transfer in a block but refused at execution: the issuer holds only the 50.00
    KGS it was paid. Added only by the tests that need it (the overview lists the
    latest transactions)."""
    tx = make_transaction(CHAIN_ID, ISSUER, 1, "transfer", {
        "to": CITIZEN.address, "asset": "KGS", "amount": PAID + 1})
    status = await chain.client.submit(tx, wait="final")
    assert (status["status"], status["code"]) == ("rejected", "insufficient_balance"), status
    chain.txs["refused"], chain.heights["refused"] = tx, status["height"]
    return tx


# ------------------------------------------------------------------ a proxy that lies

Tamper = Callable[[str, dict[str, Any], Any], Any]


@dataclass
class LyingProxy:
    """Serves the explorer and forwards /rpc to the node; `tamper` may change any answer."""

    target: str
    tamper: Tamper | None = None
    url: str = ""
    runner: web.AppRunner | None = None
    session: aiohttp.ClientSession | None = None
    changed: list[str] = field(default_factory=list)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/rpc", self.forward_rpc)
        app.router.add_get("/{path:.*}", self.forward_get)
        self.session = aiohttp.ClientSession()
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.session:
            await self.session.close()
        if self.runner:
            await self.runner.cleanup()

    async def forward_get(self, request: web.Request) -> web.Response:
        assert self.session is not None
        async with self.session.get(self.target + request.path_qs) as answer:
            return web.Response(body=await answer.read(), status=answer.status,
                                content_type=answer.content_type)

    async def forward_rpc(self, request: web.Request) -> web.Response:
        assert self.session is not None
        body = await request.read()
        async with self.session.post(self.target + "/rpc", data=body,
                                     headers={"Content-Type": "application/json"}) as answer:
            doc = await answer.json()
        calls = json.loads(body)
        if self.tamper is not None:
            pairs = zip(calls, doc, strict=True) if isinstance(calls, list) else [(calls, doc)]
            for call, reply in pairs:
                if "result" in reply:
                    changed = self.tamper(call["method"], call.get("params") or {},
                                          reply["result"])
                    if changed is not reply["result"]:
                        self.changed.append(call["method"])
                        reply["result"] = changed
        return web.json_response(doc)


@contextlib.asynccontextmanager
async def lying_proxy(target: str) -> AsyncIterator[LyingProxy]:
    proxy = LyingProxy(target)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def flip_hex(hex_: str, position: int) -> str:
    """`hex_` with one bit flipped in the byte at `position` (negative: from the end)."""
    data = bytearray(bytes.fromhex(hex_))
    data[position] ^= 0x01
    return data.hex()


# ------------------------------------------------------------------ page helpers


async def open_page(devtools: DevTools, base: str, route: str, lang: str) -> None:
    """Load the explorer afresh (a new page: nothing verified yet) at `route`."""
    await devtools.call("Page.navigate", url=f"{base}/explorer/?lang={lang}#/{route}")
    await devtools.wait_for(
        "document.documentElement.lang === " + json.dumps(lang) + " && "
        "document.getElementById('view-detail').hidden === false && "
        "document.getElementById('detail-title').textContent !== '' && "
        "document.getElementById('detail-title').textContent !== "
        + json.dumps(load_i18n()[lang]["loading"]), f"the page {route}")


async def click_verify(devtools: DevTools, timeout_s: float = 30.0) -> dict[str, Any]:
    await devtools.wait_for("!!document.getElementById('verify-button')", "the Verify button")
    await devtools.evaluate("document.getElementById('verify-button').click(); true")
    await devtools.wait_for(
        "['ok', 'failed'].includes(document.getElementById('verify-result').dataset.state)",
        "the verification to end", timeout_s)
    return await read_outcome(devtools, "verify-result")


async def read_outcome(devtools: DevTools, box: str) -> dict[str, Any]:
    result: dict[str, Any] = await devtools.evaluate(f"""(() => {{
        const box = document.getElementById({json.dumps(box)});
        const text = (sel) => {{
          const n = box.querySelector(sel);
          return n ? n.textContent : null;
        }};
        return {{state: box.dataset.state, code: box.dataset.code, headline: text('.headline'),
                 reason: text('.reason'),
                 checks: [...box.querySelectorAll('.checks li')].map((li) => li.textContent),
                 notes: [...box.querySelectorAll('.note')].map((p) => p.className.split(' ')[1]),
                 bundle: box.querySelector('.bundle-link') &&
                         box.querySelector('.bundle-link').getAttribute('download')}};
    }})()""")
    return result


async def text_of(devtools: DevTools, selector: str) -> str | None:
    value: str | None = await devtools.evaluate(
        f"(() => {{ const n = document.querySelector({json.dumps(selector)});"
        " return n ? n.textContent : null; })()")
    return value


def fill(template: str, **params: Any) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: str(params[m.group(1)]), template)


def signed_by(lang: str, signers: int = 1, total: int = 1, names: str = MINISTRY) -> str:
    form = "one" if total == 1 else "other"
    return fill(load_i18n()[lang][f"signed_by_names_{form}"], signers=signers, total=total,
                names=names)


@pytest.fixture(autouse=True)
def _screenshots_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Screenshots go to $GOVCHAIN_SCREENSHOTS when set, else into the test's tmp_path."""
    if not os.environ.get("GOVCHAIN_SCREENSHOTS"):
        monkeypatch.setattr(sys.modules[__name__], "SCREENSHOTS", tmp_path / "screenshots")


async def screenshot(devtools: DevTools, name: str) -> Path:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    await devtools.evaluate("window.scrollTo(0, 0); true")
    return await devtools.screenshot(SCREENSHOTS / f"{name}.png")


async def downloaded_bundle(devtools: DevTools) -> dict[str, Any]:
    """The proof bundle behind the page's download link, as the file would hold it."""
    text = await devtools.evaluate(
        "fetch(document.querySelector('#verify-result .bundle-link').href).then(r => r.text())")
    bundle: dict[str, Any] = json.loads(text)
    return bundle


def check_bundle_in_python(bundle: dict[str, Any], genesis: Genesis) -> BlockHeader:
    """The downloaded bundle holds what the page claims: checked with chain/ alone."""
    assert bundle["format"] == "govchain-proof-bundle" and bundle["version"] == 1
    assert bundle["checkpoint"] is None
    assert bundle["genesis_hash"] == genesis.hash.hex()
    assert bundle["chain_id"] == genesis.chain_id
    assert [s["hash"] for s in bundle["validator_sets"]] == [genesis.validator_set.hash.hex()]
    header = BlockHeader.decode(bytes.fromhex(bundle["block"]["header"]))
    assert header.height == bundle["block"]["height"]
    certificate = CommitCertificate.decode(bytes.fromhex(bundle["block"]["certificate"]))
    validate_certificate(certificate, genesis.validator_set, genesis.chain_id,
                         height=header.height, block_hash=header.hash)
    # and by the verifier of `govchain verify`
    fact = verify_bundle(bundle, genesis)
    assert (fact.kind, fact.height, fact.block_hash) == (bundle["kind"], header.height,
                                                         header.hash)
    return header


# ------------------------------------------------------------------ the pages


@pytest.mark.slow
async def test_overview_names_kinds_and_the_stablecoin(ledger_chain: LedgerChain,
                                                        chromium: str) -> None:
    en = load_i18n()["en"]
    async with open_browser(chromium) as devtools:
        await devtools.call("Page.navigate", url=f"{ledger_chain.url}/explorer/?lang=en")
        await devtools.wait_for("document.querySelectorAll('#blocks tbody tr').length > 0 && "
                                "!document.getElementById('chart-summary').hidden",
                                "the overview with its stablecoin panel")
        makers = await devtools.evaluate("[...document.querySelectorAll('#blocks .proposer')]"
                                         ".map(n => [n.textContent, n.title])")
        assert makers and all(m == [MINISTRY, VALIDATOR.public_key.hex()] for m in makers)
        assert await text_of(devtools, "#coin-supply") == "2,000,000.00 KGS"
        assert await text_of(devtools, "#coin-reserve") == "2,000,000.00 KGS"
        assert await devtools.evaluate("document.getElementById('chart-missing').hidden")
        kinds = await devtools.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#txs .kind')]"
            ".map(n => [n.dataset.type, n.textContent]))")
        assert kinds == {"attest": en["kind_attest"], "mint": en["kind_mint"],
                         "transfer": en["kind_transfer"], "record_put": en["kind_record_put"]}
        await screenshot(devtools, "home-en")
        for lang in ("ru", "ky"):
            await devtools.evaluate(
                f"(() => {{ const s = document.getElementById('lang'); s.value = '{lang}';"
                "s.dispatchEvent(new Event('change')); return true; })()")
            kinds = await devtools.evaluate(
                "[...document.querySelectorAll('#txs .kind')].map(n => n.textContent)")
            assert load_i18n()[lang]["kind_record_put"] in kinds
        # Russian groups with a no-break space and writes a decimal comma.
        supply = await text_of(devtools, "#coin-supply")
        assert supply is not None and re.fullmatch(r"2\s000\s000,00 KGS", supply), supply
        await screenshot(devtools, "home-ky")
        assert await devtools.evaluate("document.getElementById('coin-expired') === null")
        # Governance gives KGS a reserve policy its attestation is already too old for:
        # the panel says, in red, that minting stopped.
        await expire_attestation(ledger_chain)
        await devtools.call("Page.navigate", url=f"{ledger_chain.url}/explorer/?lang=en")
        await devtools.wait_for("document.getElementById('coin-expired') !== null",
                                "the expired attestation in the stablecoin panel")
        assert await text_of(devtools, "#coin-expired") == en["attestation_expired"]
        assert await devtools.evaluate(
            "getComputedStyle(document.getElementById('coin-expired')).color") == \
            "rgb(176, 0, 32)"
        assert (await text_of(devtools, "#coin-attestation-age") or "").startswith(
            "Reserve confirmed")
        await screenshot(devtools, "home-expired")
        assert devtools.exceptions == [], devtools.exceptions


async def expire_attestation(chain: LedgerChain) -> None:
    validator = compute_address(VALIDATOR.public_key)
    account = await chain.client.call("state_account", address=validator.hex())
    status = await chain.client.call("node_status")
    tx = Transaction(CHAIN_ID, validator, account["next_nonce"], "propose", {
        "action": "set_reserve_policy", "expiry_height": status["height"] + 100,
        "args": {"asset": "KGS", "max_age_ms": 1, "units_per_fine_mg": 1}})
    result = await chain.client.submit(tx.with_signature(VALIDATOR), wait="final")
    assert "proposal_passed" in [e["kind"] for e in result["events"]], result


@pytest.mark.slow
async def test_record_page_shows_text_and_verifies_in_three_languages(
        ledger_chain: LedgerChain, chromium: str) -> None:
    i18n = load_i18n()
    async with open_browser(chromium) as devtools:
        await devtools.call("Page.navigate", url=f"{ledger_chain.url}/explorer/?lang=en")
        await devtools.wait_for("Number(document.getElementById('st-height').textContent) >= 1",
                                "the page to start")
        await submit_search(devtools, TEXT_RECORD)  # the search finds a record by register/key
        await devtools.wait_for("!!document.getElementById('record-content')", "the record")
        assert await text_of(devtools, "#record-content") == "Crypto Exchange LLC"
        assert await text_of(devtools, "#record-status") == i18n["en"]["record_status_active"]
        await devtools.evaluate("document.getElementById('record-toggle').click(); true")
        assert await text_of(devtools, "#record-content") == b"Crypto Exchange LLC".hex()
        await devtools.evaluate("document.getElementById('record-toggle').click(); true")

        for lang in LANGUAGES:
            await open_page(devtools, ledger_chain.url, f"record/{TEXT_RECORD}", lang)
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            height = int(re.findall(r"\d+", outcome["headline"])[-1])
            assert outcome["headline"] == fill(i18n[lang]["ok_record"], signed=signed_by(lang),
                                               height=height)
            assert fill(i18n[lang]["check_record"], version=1, height=height) in outcome["checks"]
            # no validator-set change on this chain: the genesis set, named by the block
            assert fill(i18n[lang]["check_chain"], height=height) in outcome["checks"]
            assert "note-anchor" in outcome["notes"]  # the genesis came from this node
            assert outcome["bundle"] == f"govchain-record-{height}.json"
            await screenshot(devtools, f"record-verified-{lang}")

        bundle = await downloaded_bundle(devtools)
        header = check_bundle_in_python(bundle, ledger_chain.genesis)
        proof = StateProof.from_json(bundle["proof"]["state_proof"])
        assert verify_state_proof(proof, get_record_key("licenses", "vasp-0001"),
                                  bytes.fromhex(bundle["proof"]["value"]), header.state_root)
        assert codec.decode(bytes.fromhex(bundle["proof"]["value"]))["value"] == \
            b"Crypto Exchange LLC"

        await open_page(devtools, ledger_chain.url, f"record/{BINARY_RECORD}", "en")
        assert await devtools.evaluate(
            "document.getElementById('record-content').dataset.form") == "hex"
        assert await text_of(devtools, "#record-content") == bytes(range(32)).hex()
        assert await devtools.evaluate("!document.getElementById('record-toggle')")
        assert devtools.exceptions == [], devtools.exceptions


@pytest.mark.slow
async def test_payment_account_and_block_pages_verify(ledger_chain: LedgerChain,
                                                      chromium: str, tmp_path: Path) -> None:
    i18n = load_i18n()
    payment = ledger_chain.txs["payment"]
    paid_at = ledger_chain.heights["payment"]
    async with open_browser(chromium) as devtools:
        for lang in LANGUAGES:
            await open_page(devtools, ledger_chain.url, f"tx/{payment.hash.hex()}", lang)
            assert await text_of(devtools, "#tx-kind") == i18n[lang]["kind_transfer"]
            amount = await text_of(devtools, "#tx-amount")
            assert amount is not None and re.fullmatch(r"50[.,]00 KGS", amount), amount
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            assert outcome["headline"] == fill(i18n[lang]["ok_tx"], signed=signed_by(lang),
                                               height=paid_at)
            assert fill(i18n[lang]["check_tx_included"], position=1, height=paid_at) \
                in outcome["checks"]
            assert i18n[lang]["check_tx_signed"] in outcome["checks"]
            # success is proven by the results root, not the node's word
            assert fill(i18n[lang]["check_tx_succeeded"], height=paid_at) in outcome["checks"]
            await screenshot(devtools, f"tx-verified-{lang}")
        bundle = await downloaded_bundle(devtools)
        header = check_bundle_in_python(bundle, ledger_chain.genesis)
        tx_proof = bundle["proof"]
        assert bytes.fromhex(tx_proof["tx"]) == payment.encoded
        assert merkle.is_valid_proof(payment.hash, tx_proof["index"], tx_proof["tx_count"],
                                     [bytes.fromhex(p) for p in tx_proof["path"]],
                                     header.tx_root)
        assert bundle["reported"] == {"status": "final", "code": "ok", "message": None}
        result = bundle["proof"]["result"]
        assert is_valid_result_proof(bytes.fromhex(result["leaf"]), tx_proof["index"],
                                     tx_proof["tx_count"],
                                     [bytes.fromhex(p) for p in result["path"]],
                                     header.results_root)
        assert validate_result_leaf(bytes.fromhex(result["leaf"]), payment.hash).is_ok
        assert verify_bundle(bundle, ledger_chain.genesis).subject["result"]["ok"]
        bundle_file = tmp_path / "payment-bundle.json"
        bundle_file.write_text(json.dumps(bundle))

        refused = await add_refused_payment(ledger_chain)
        for lang in LANGUAGES:  # a refused payment proves its refusal, never a success
            await open_page(devtools, ledger_chain.url, f"tx/{refused.hash.hex()}", lang)
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            assert fill(i18n[lang]["check_tx_refused"], height=ledger_chain.heights["refused"],
                        code="insufficient_balance") in outcome["checks"]
            assert not any(fill(i18n[lang]["check_tx_succeeded"],
                                height=ledger_chain.heights["refused"]) == check
                           for check in outcome["checks"])
        # the page's bundle of the refused payment proves the refusal to `govchain verify`
        fact = verify_bundle(await downloaded_bundle(devtools), ledger_chain.genesis)
        assert fact.subject["hash"] == refused.hash
        assert fact.subject["result"]["code"] == "insufficient_balance"
        assert not fact.subject["result"]["ok"]

        for lang in LANGUAGES:
            await open_page(devtools, ledger_chain.url, f"account/{CITIZEN.address.hex()}", lang)
            balance = await text_of(devtools, "#balances .balance")
            assert balance is not None and re.fullmatch(r"1[,\s]999[,\s]950[.,]00 KGS",
                                                        balance), balance
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            height = int(re.findall(r"\d+", outcome["headline"])[-1])
            assert outcome["headline"] == fill(i18n[lang]["ok_account"], signed=signed_by(lang),
                                               height=height)
            assert fill(i18n[lang]["check_account"], height=height, nonce=1,
                        balances=balance) in outcome["checks"]
            await screenshot(devtools, f"account-verified-{lang}")

        for lang in LANGUAGES:
            await open_page(devtools, ledger_chain.url, f"block/{paid_at}", lang)
            proposer = await devtools.evaluate(
                "[document.querySelector('#block-proposer .validator').firstChild.textContent,"
                " document.querySelector('#block-proposer .validator').title]")
            assert proposer == [MINISTRY, VALIDATOR.public_key.hex()]
            assert await text_of(devtools, "#block-signed-count") == \
                f"{fill(i18n[lang]['signers_of_one'], signers=1, total=1)} " \
                f"({fill(i18n[lang]['quorum_is'], quorum=1)})"
            assert await text_of(devtools, "#block-signer-names") == MINISTRY
            assert await text_of(devtools, "#cert-round") == "0"
            assert await devtools.evaluate(
                "document.querySelectorAll('#cert-signatures tbody tr').length") == 1
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            assert outcome["headline"] == fill(i18n[lang]["ok_block"], signed=signed_by(lang),
                                               height=paid_at)
            await screenshot(devtools, f"block-verified-{lang}")

        # The bundle file, checked on the overview against the genesis alone.
        await devtools.call("Page.navigate", url=f"{ledger_chain.url}/explorer/?lang=en")
        await devtools.wait_for("!!document.getElementById('bundle-file')", "the overview")
        await devtools.set_file_input("#bundle-file", bundle_file)
        await devtools.wait_for("document.getElementById('bundle-result').dataset.state "
                                "!== 'idle'", "the bundle check")
        outcome = await read_outcome(devtools, "bundle-result")
        assert outcome["state"] == "ok", outcome
        assert outcome["headline"] == fill(i18n["en"]["ok_tx"], signed=signed_by("en"),
                                           height=paid_at)
        await devtools.evaluate("document.getElementById('bundle-card').scrollIntoView(); true")
        await devtools.screenshot(SCREENSHOTS / "home-bundle-checked-en.png")
        # A bundle changed after download (another amount) is refused.
        forged = json.loads(bundle_file.read_text())
        tx_value = list(codec.decode(bytes.fromhex(forged["proof"]["tx"])))
        tx_value[4] = {**tx_value[4], "amount": PAID * 100}
        forged["proof"]["tx"] = codec.encode(tx_value).hex()
        forged_file = tmp_path / "forged-bundle.json"
        forged_file.write_text(json.dumps(forged))
        await devtools.set_file_input("#bundle-file", forged_file)
        await devtools.wait_for("document.getElementById('bundle-result').dataset.state "
                                "=== 'failed'", "the forged bundle to fail")
        outcome = await read_outcome(devtools, "bundle-result")
        assert outcome["reason"] == i18n["en"]["fail_tx_hash_mismatch"]
        # A file that is not a whole bundle is named as such, not blamed on the node.
        del forged["block"]
        forged_file.write_text(json.dumps(forged))
        await devtools.set_file_input("#bundle-file", forged_file)
        await devtools.wait_for("document.getElementById('bundle-result').dataset.code "
                                "=== 'bundle_invalid'", "the incomplete bundle to fail")
        assert devtools.exceptions == [], devtools.exceptions


# ------------------------------------------------------------------ lies and other genesis files


def change_record_text(method: str, params: dict[str, Any], result: Any) -> Any:
    """The node says the licence holder is another company (a consistent, canonical lie)."""
    if method != "state_record":
        return result
    record = dict(codec.decode(bytes.fromhex(result["value"])))
    record["value"] = b"Crypto Exchange LTD"
    value = codec.encode(record)
    return {**result, "value": value.hex(), "record": {**result["record"],
                                                        "value": record["value"].hex()}}


def change_shown_record_only(method: str, params: dict[str, Any], result: Any) -> Any:
    """The record the page shows is a lie; the one sent with the proof is true."""
    return result if params.get("proof") else change_record_text(method, params, result)


def raise_shown_balance(method: str, params: dict[str, Any], result: Any) -> Any:
    if method != "state_account":
        return result
    return {**result, "balances": {k: v + 1 for k, v in result["balances"].items()}}


def flip_certificate_signature(method: str, params: dict[str, Any], result: Any) -> Any:
    if method != "state_record" or "proof" not in result:
        return result
    proof = {**result["proof"], "certificate": flip_hex(result["proof"]["certificate"], -1)}
    return {**result, "proof": proof}


def flip_block_2_signature(method: str, params: dict[str, Any], result: Any) -> Any:
    if method != "chain_block" or params.get("height") != 2:
        return result
    certificate = {**result["certificate"],
                   "encoded": flip_hex(result["certificate"]["encoded"], -1)}
    return {**result, "certificate": certificate}


def change_payment_amount(method: str, params: dict[str, Any], result: Any) -> Any:
    if method != "chain_block" or not params.get("full"):
        return result
    txs = [{**tx, "fields": {**tx["fields"], "amount": PAID * 100}}
           if tx["type"] == "transfer" and tx["fields"].get("asset") == "KGS" else tx
           for tx in result["txs"]]
    return {**result, "txs": txs}


def claim_refused_paid(method: str, params: dict[str, Any], result: Any) -> Any:
    """A node that serves the refused transfer's result leaf with the code "ok"."""
    if method != "tx_proof":
        return result
    leaf = ResultLeaf.decode(bytes.fromhex(result["result"]["leaf"]))
    forged = ResultLeaf(leaf.tx_hash, "ok", leaf.events_hash)
    return {**result, "result": {**result["result"], "code": "ok",
                                 "leaf": forged.encoded.hex()}}


def stretch_tx_proof(method: str, params: dict[str, Any], result: Any) -> Any:
    if method != "tx_proof":
        return result
    return {**result, "tx_count": result["tx_count"] + 1}


def raise_balance(method: str, params: dict[str, Any], result: Any) -> Any:
    key = bytes.fromhex(params.get("key", "")) if method == "state_proof" else b""
    if not key.startswith(b"bal/v1/"):
        return result
    return {**result, "value": codec.encode(codec.decode(bytes.fromhex(result["value"]))
                                            + 1).hex()}


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    # (tamper, page, expected code, message parameters)
    ("record_text", change_record_text, f"record/{TEXT_RECORD}", "record_altered"),
    ("record_shown_only", change_shown_record_only, f"record/{TEXT_RECORD}", "record_changed"),
    ("record_signature", flip_certificate_signature, f"record/{TEXT_RECORD}",
     "cert_bad_signature"),
    ("block_2_signature", flip_block_2_signature, "block/2", "cert_bad_signature"),
    ("payment_amount", change_payment_amount, "tx/PAYMENT", "tx_fields_mismatch"),
    ("payment_proof", stretch_tx_proof, "tx/PAYMENT", "tx_not_included"),
    ("refused_as_paid", claim_refused_paid, "tx/REFUSED", "result_unproven"),
    ("balance", raise_balance, f"account/{CITIZEN.address.hex()}", "account_altered"),
    ("balance_shown_only", raise_shown_balance, f"account/{CITIZEN.address.hex()}",
     "account_changed"),
], ids=lambda case: case[0])
async def test_a_changed_answer_fails_verification_visibly(
        ledger_chain: LedgerChain, chromium: str, case: tuple[Any, ...]) -> None:
    name, tamper, route, code = case
    route = route.replace("PAYMENT", ledger_chain.txs["payment"].hash.hex())
    if "REFUSED" in route:
        route = route.replace("REFUSED", (await add_refused_payment(ledger_chain)).hash.hex())
    i18n = load_i18n()
    async with lying_proxy(ledger_chain.url) as proxy, open_browser(chromium) as devtools:
        proxy.tamper = tamper
        for lang in LANGUAGES:
            await open_page(devtools, proxy.url, route, lang)
            if name in ("record_text", "record_shown_only"):  # the lie shows until checked
                assert await text_of(devtools, "#record-content") == "Crypto Exchange LTD"
            outcome = await click_verify(devtools)
            assert outcome["state"] == "failed", (name, outcome)
            assert outcome["code"] == code, (name, outcome)
            assert outcome["headline"] == i18n[lang]["verify_failed"]
            template = i18n[lang][f"fail_{code}"]
            pattern = re.escape(template)
            for placeholder in re.findall(r"\\\{([a-z_]+)\\\}", pattern):
                pattern = pattern.replace(f"\\{{{placeholder}\\}}", "(.+)")
            assert re.fullmatch(pattern, outcome["reason"]), (lang, outcome["reason"], template)
            if name == "block_2_signature":  # the block page's own certificate
                assert outcome["reason"] == fill(template, name=MINISTRY, height=2)
            elif name == "record_signature":  # the certificate sent with the record's proof
                assert MINISTRY in outcome["reason"]
                assert outcome["reason"] != fill(template, name=MINISTRY, height=2)
            if lang == "en":
                await screenshot(devtools, f"failed-{name}-en")
        assert proxy.changed, "the proxy changed nothing"
        assert devtools.exceptions == [], devtools.exceptions


@pytest.mark.slow
async def test_a_genesis_file_of_another_chain_fails(ledger_chain: LedgerChain,
                                                     chromium: str, tmp_path: Path) -> None:
    """The reader's own genesis file is the trust anchor: one with another validator key
    (a forged chain's) does not verify the node's blocks; the right file does."""
    i18n = load_i18n()
    other = replace(ledger_chain.genesis, validator_set=ValidatorSet(
        (Validator(KeyPair.from_seed(b"\x66" * 32).public_key, MINISTRY),)))
    other_file = tmp_path / "genesis-other.json"
    other_file.write_text(other.to_json())
    right_file = tmp_path / "genesis.json"
    right_file.write_text(ledger_chain.genesis.to_json())
    broken_file = tmp_path / "genesis-broken.json"
    broken_file.write_text('{"chain_id": "x"}')
    async with open_browser(chromium) as devtools:
        for lang in LANGUAGES:
            await open_page(devtools, ledger_chain.url, f"record/{TEXT_RECORD}", lang)
            await devtools.set_file_input("#genesis-file", other_file)
            await devtools.wait_for("document.getElementById('anchor-text').textContent"
                                    ".includes('genesis-other.json')", "the chosen genesis")
            outcome = await click_verify(devtools)
            assert outcome["state"] == "failed" and outcome["code"] == "genesis_mismatch", outcome
            assert outcome["reason"] == i18n[lang]["fail_genesis_mismatch"]
            if lang == "en":
                await screenshot(devtools, "failed-other-genesis-en")
        await devtools.set_file_input("#genesis-file", broken_file)
        await devtools.wait_for("document.getElementById('verify-result').dataset.state "
                                "=== 'failed'", "the broken genesis to be refused")
        outcome = await read_outcome(devtools, "verify-result")
        assert outcome["code"] == "genesis_invalid", outcome
        await devtools.set_file_input("#genesis-file", right_file)
        await devtools.wait_for("document.getElementById('anchor-text').textContent"
                                ".includes('genesis.json')", "the right genesis")
        outcome = await click_verify(devtools)
        assert outcome["state"] == "ok", outcome
        genesis_check = fill(i18n["ky"]["check_genesis_file"], file="genesis.json",
                             chain=CHAIN_ID, hash=f"{ledger_chain.genesis.hash.hex()[:8]}…"
                             f"{ledger_chain.genesis.hash.hex()[-6:]}")
        assert genesis_check in outcome["checks"]
        assert "note-anchor" not in outcome["notes"]  # the reader's file, not the node's
        await screenshot(devtools, "record-verified-own-genesis-ky")
        assert devtools.exceptions == [], devtools.exceptions


FOUR_MINISTRIES = ("Finance", "Justice", "Health", "Interior")


@pytest.mark.slow
async def test_four_ministries_sign_and_the_page_names_them(tmp_path: Path,
                                                            chromium: str) -> None:
    """Four validators: the block page and Verify count the signers against the set of
    four and its quorum of three, and name them."""
    i18n = load_i18n()
    keys = VALIDATOR_KEYS[:4]
    genesis = add_dev_ledger(make_genesis(keys), list(ACCOUNT_KEYS), BALANCE)
    genesis = replace(genesis, validator_set=ValidatorSet(tuple(
        Validator(k.public_key, name) for k, name in zip(keys, FOUR_MINISTRIES, strict=True))))
    nodes = await start_network(tmp_path, 4, genesis)
    try:
        status = await nodes[0].client.submit(make_transaction(
            CHAIN_ID, WRITER, 0, "record_put", {"namespace": "licenses", "key": "vasp-0001",
                                                "value": b"Crypto Exchange LLC"}), wait="final")
        height = status["height"]
        block = await nodes[0].client.call("chain_block", height=height)
        signers = len(block["certificate"]["signatures"])
        assert signers >= 3
        async with open_browser(chromium) as devtools:
            await open_page(devtools, nodes[0].service.rpc_url, f"block/{height}", "en")
            assert await text_of(devtools, "#block-signed-count") == \
                f"{signers} of 4 validators (quorum 3)"
            names = (await text_of(devtools, "#block-signer-names") or "").split(", ")
            assert len(names) == signers and set(names) <= set(FOUR_MINISTRIES)
            assert names == [n for n in FOUR_MINISTRIES if n in names]  # in the set's order
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            assert outcome["headline"] == fill(i18n["en"]["ok_block"], height=height,
                                               signed=signed_by("en", signers, 4, ", ".join(names)))
            assert fill(i18n["en"]["check_certificate"], height=height, signers=signers,
                        total=4, quorum=3, round=block["certificate"]["round"]) \
                in outcome["checks"]
            await screenshot(devtools, "block-four-ministries-en")
            await open_page(devtools, nodes[0].service.rpc_url, f"record/{TEXT_RECORD}", "ru")
            outcome = await click_verify(devtools)
            assert outcome["state"] == "ok", outcome
            assert re.fullmatch(r"Подписи: [34] из 4 министерств — .+; запись доказана в блоке "
                                r"\d+\.", outcome["headline"]), outcome["headline"]
            await screenshot(devtools, "record-four-ministries-ru")
            assert devtools.exceptions == [], devtools.exceptions
    finally:
        await stop_network(nodes)


async def test_the_node_serves_its_genesis_to_the_page(ledger_chain: LedgerChain) -> None:
    async with aiohttp.ClientSession() as session, \
            session.get(ledger_chain.url + "/explorer/genesis.json") as answer:
        assert answer.status == 200
        served = Genesis.from_json(await answer.text())
    assert served.hash == ledger_chain.genesis.hash
    assert served.hash.hex() == (await ledger_chain.client.call("node_status"))["genesis_hash"]


async def test_tx_proof_and_state_assets_answers(ledger_chain: LedgerChain) -> None:
    """tx_proof checks with chain.merkle against the certified header, in a block of many."""
    client = ledger_chain.client
    nonce = (await client.call("state_account", address=CITIZEN.address.hex()))["next_nonce"]
    txs = [make_transaction(CHAIN_ID, CITIZEN, nonce + i, "transfer", {
        "to": ISSUER.address, "asset": "KGS", "amount": 1 + i}) for i in range(7)]
    await client.submit_batch(txs)
    statuses = [await client.submit(tx, wait="final") for tx in txs]
    for tx, status in zip(txs, statuses, strict=True):
        answer = await client.call("tx_proof", hash=tx.hash.hex())
        block = await client.call("chain_block", height=answer["height"])
        header = BlockHeader.decode(bytes.fromhex(block["header"]))
        assert (answer["height"], answer["index"]) == (status["height"], status["index"])
        assert answer["tx_count"] == len(block["txs"])
        assert bytes.fromhex(answer["tx"]) == tx.encoded
        assert merkle.is_valid_proof(tx.hash, answer["index"], answer["tx_count"],
                                     [bytes.fromhex(p) for p in answer["path"]], header.tx_root)
    assert max(s["index"] for s in statuses) > 0, "the transactions shared no block"
    assets = {a["symbol"]: a for a in (await client.call("state_assets"))["assets"]}
    assert assets["KGS"]["decimals"] == 2 and assets["KGS"]["reserve_backed"]
    assert assets["KGS"]["supply"] == RESERVE and assets["KGS"]["reserve"] == RESERVE
    assert assets["GOV"]["decimals"] == 0
