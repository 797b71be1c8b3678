"""docs/protocol.md stays true: its worked example is the example script's real output,
and the example's values can be recomputed from the written rules alone."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import msgpack
import nacl.signing

from chain import crypto

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
SCRIPT = ROOT / "docs" / "examples" / "sign_transfer.py"
MARKER = "<!-- sign_transfer.py output -->"


def load_script_lines() -> list[str]:
    spec = importlib.util.spec_from_file_location("sign_transfer", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines: list[str] = module.compute_lines()
    return lines


def doc_example_lines() -> list[str]:
    text = DOC.read_text()
    after = text.split(MARKER, 1)[1]
    match = re.search(r"```text\n(.*?)```", after, re.S)
    assert match is not None, "the worked example block is missing from protocol.md"
    return match.group(1).strip().splitlines()


def example() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in doc_example_lines())


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_doc_example_is_the_script_output():
    assert doc_example_lines() == load_script_lines()


def test_example_follows_the_written_rules():
    ex = {k: (bytes.fromhex(v) if k != "chain_id" else v) for k, v in example().items()}
    signing_key = nacl.signing.SigningKey(ex["sender_seed"])
    public_key = bytes(signing_key.verify_key)
    assert public_key == ex["sender_public_key"]
    assert sha256(b"govchain/address/ed25519\x00" + public_key)[:20] == ex["sender_address"]
    fields = {"amount": 250, "asset": "GOV", "to": ex["recipient_address"]}
    body = [ex["chain_id"], ex["sender_address"], 0, "transfer", fields]
    signing = msgpack.packb(["govchain/tx/v1", ex["chain_id"], body], use_bin_type=True)
    assert signing == ex["signing_bytes"]
    signing_key.verify_key.verify(signing, ex["signature"])
    assert signing_key.sign(signing).signature == ex["signature"]
    encoded = msgpack.packb([*body, [[public_key, ex["signature"]]]], use_bin_type=True)
    assert encoded == ex["tx_encoded"]
    assert sha256(encoded) == ex["tx_hash"]
    assert sha256(b"\x00" + ex["tx_hash"]) == ex["tx_root_of_this_tx"]


def test_merkle_and_multisig_follow_the_written_rules():
    ex = {k: bytes.fromhex(v) for k, v in example().items() if k != "chain_id"}
    leaf = [sha256(b"\x00" + x) for x in (b"a", b"b", b"c")]
    node = sha256(b"\x01" + leaf[0] + leaf[1])
    assert sha256(b"\x01" + node + leaf[2]) == ex["merkle_root_of_a_b_c"]
    recipient = bytes(nacl.signing.SigningKey(bytes([0x65]) * 32).verify_key)
    members = sorted([recipient, ex["sender_public_key"]])
    payload = msgpack.packb([2, members], use_bin_type=True)
    assert sha256(b"govchain/address/multisig\x00" + payload)[:20] == \
        ex["multisig_2_of_2_address"]


def test_precommit_follows_the_written_rules():
    ex = example()
    block_hash = bytes(range(32))
    signing = msgpack.packb(["govchain/vote/v1", ex["chain_id"], [2, 1, 0, block_hash]],
                            use_bin_type=True)
    assert signing.hex() == ex["precommit_signing_bytes"]
    key = nacl.signing.VerifyKey(bytes.fromhex(ex["validator_public_key"]))
    key.verify(signing, bytes.fromhex(ex["precommit_signature"]))


def test_every_signing_domain_is_documented():
    text = DOC.read_text()
    domains = [value for name, value in vars(crypto).items() if name.startswith("DOMAIN_")]
    assert domains
    for domain in domains:
        assert f"`{domain}`" in text, f"{domain} is not in docs/protocol.md"


def github_anchor(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_links_between_docs_resolve():
    docs = ROOT / "docs"
    for name in ("architecture.md", "protocol.md", "rpc.md"):
        text = (docs / name).read_text()
        for target, anchor in re.findall(r"\]\(([\w.]*\.md)?(?:#([\w\-]+))?\)", text):
            page = docs / (target or name)
            assert page.exists(), f"{name} links to a missing page {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
                anchors = {github_anchor(h) for h in headings}
                assert anchor in anchors, f"{name} links to a missing anchor {target}#{anchor}"
