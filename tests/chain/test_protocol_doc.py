"""docs/protocol.md stays true: its worked examples are the example scripts' real output,
and the examples' values can be recomputed from the written rules alone (msgpack,
hashlib and pynacl, no govchain code), except where a test says it runs govchain's."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import msgpack
import nacl.pwhash.argon2id
import nacl.secret
import nacl.signing

from chain import crypto

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
EXAMPLES = ROOT / "docs" / "examples"


def load_script_lines(name: str = "sign_transfer") -> list[str]:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines: list[str] = module.compute_lines()
    return lines


def doc_example_lines(name: str = "sign_transfer") -> list[str]:
    text = DOC.read_text()
    after = text.split(f"<!-- {name}.py output -->", 1)[1]
    match = re.search(r"```text\n(.*?)```", after, re.S)
    assert match is not None, f"the {name} example block is missing from protocol.md"
    return match.group(1).strip().splitlines()


def example(name: str = "sign_transfer") -> dict[str, str]:
    return dict(line.split(": ", 1) for line in doc_example_lines(name))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_doc_example_is_the_script_output():
    assert doc_example_lines() == load_script_lines()


def test_doc_proofs_example_is_the_script_output():
    assert doc_example_lines("prove_result") == load_script_lines("prove_result")


# Written from docs/protocol.md section 6 and 6.1 alone.

def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf)


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def doc_root(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = split(len(hashes))
    return sha256(b"\x01" + doc_root(hashes[:k]) + doc_root(hashes[k:]))


def doc_path(hashes: list[bytes], index: int) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = split(len(hashes))
    if index < k:
        return [*doc_path(hashes[:k], index), doc_root(hashes[k:])]
    return [*doc_path(hashes[k:], index - k), doc_root(hashes[:k])]


def doc_verify(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def hashes_of(text: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in text.split(",")] if text else []


def test_inclusion_paths_follow_the_written_builder_and_verifier():
    ex = example("prove_result")
    leaves = [x.encode() for x in ex["merkle_leaves"].split(",")]
    hashes = [leaf_hash(x) for x in leaves]
    root = doc_root(hashes)
    assert root.hex() == ex["merkle_root_of_a_to_e"]
    assert doc_path(hashes, 2) == hashes_of(ex["merkle_path_of_c"])
    assert doc_path(hashes, 4) == hashes_of(ex["merkle_path_of_e"])
    # the path of c as section 14 reads it
    assert hashes_of(ex["merkle_path_of_c"]) == [
        hashes[3], sha256(b"\x01" + hashes[0] + hashes[1]), hashes[4]]
    for index in range(5):
        path = doc_path(hashes, index)
        assert doc_verify(leaves[index], index, 5, path, root)
        assert not doc_verify(leaves[index], (index + 1) % 5, 5, path, root)
    # the builder of section 6.1 agrees with the code on every size up to 40
    from chain import merkle
    for size in range(1, 41):
        many = [bytes([i]) for i in range(size)]
        for index in range(size):
            assert list(merkle.compute_proof(many, index)) == doc_path(
                [leaf_hash(x) for x in many], index)


def test_results_example_follows_the_written_rules():
    ex = example("prove_result")
    transfer = {k: bytes.fromhex(v) for k, v in example().items() if k != "chain_id"}
    assert ex["paid_tx_hash"] == transfer["tx_hash"].hex()
    events = [["transferred", {"amount": 250, "asset": "GOV",
                               "from": transfer["sender_address"],
                               "to": transfer["recipient_address"]}]]
    events_bytes = msgpack.packb(events, use_bin_type=True)
    assert events_bytes.hex() == ex["paid_events"]
    assert sha256(events_bytes).hex() == ex["paid_events_hash"]
    paid = msgpack.packb([bytes.fromhex(ex["paid_tx_hash"]), "ok", sha256(events_bytes)],
                         use_bin_type=True)
    assert paid.hex() == ex["paid_result_leaf"]
    no_events = sha256(b"\x90")
    assert no_events.hex() == "9e076ceaf246b6003d9c2680a2b4cf0bffd069805902b0b5edeebf49039fe4bd"
    refused = msgpack.packb([bytes.fromhex(ex["refused_tx_hash"]), "account_frozen",
                             no_events], use_bin_type=True)
    assert refused.hex() == ex["refused_result_leaf"]
    root = sha256(b"\x01" + leaf_hash(paid) + leaf_hash(refused))
    assert root.hex() == ex["results_root"]
    path = hashes_of(ex["refused_result_path"])
    assert path == [leaf_hash(paid)]
    assert doc_verify(refused, 1, 2, path, root)
    forged = msgpack.packb([bytes.fromhex(ex["refused_tx_hash"]), "ok", no_events],
                           use_bin_type=True)
    assert not doc_verify(forged, 1, 2, path, root)


def test_results_example_is_what_govchain_verifies():
    """The same bytes through govchain's own checker (chain.results)."""
    from chain.results import ResultLeaf, is_valid_result_proof, validate_result_leaf
    ex = example("prove_result")
    refused = bytes.fromhex(ex["refused_result_leaf"])
    leaf = validate_result_leaf(refused, bytes.fromhex(ex["refused_tx_hash"]))
    assert (leaf.code, leaf.is_ok) == ("account_frozen", False)
    assert is_valid_result_proof(refused, 1, 2, hashes_of(ex["refused_result_path"]),
                                 bytes.fromhex(ex["results_root"]))
    assert ResultLeaf.decode(bytes.fromhex(ex["paid_result_leaf"])).is_ok


def test_genesis_example_hashes_app_state_hex_as_text():
    ex = example("prove_result")
    transfer = example()
    validator = bytes.fromhex(transfer["validator_public_key"])
    sender = bytes.fromhex(transfer["sender_address"])
    params = {"block_interval_ms": 200, "empty_block_interval_ms": 5000,
              "max_block_txs": 10000, "max_block_bytes": 8388608, "max_tx_bytes": 16384,
              "timeout_propose_ms": 1000, "timeout_vote_ms": 500, "timeout_delta_ms": 500,
              "timeout_max_ms": 10000, "clock_skew_ms": 5000}
    value = {"accounts": [[sender, {"GOV": 1000}]],
             "app_state": {"roles": {"grants": [{"address": sender.hex(), "role": "writer",
                                                 "scope": "licenses"}]}},
             "chain_id": "govchain-example", "genesis_time_ms": 1_735_689_600_000,
             "params": dict(sorted(params.items())),
             "validators": [[validator, "ministry-of-finance"]]}
    encoded = msgpack.packb(value, use_bin_type=True)
    assert encoded.hex() == ex["genesis_encoded"]
    assert sha256(encoded).hex() == ex["genesis_hash"]
    # the account address is bin 20, the grant's address str 40 (section 8)
    assert "c414" + sender.hex() in ex["genesis_encoded"]
    assert "d928" + sender.hex().encode().hex() in ex["genesis_encoded"]


def test_key_file_example_opens_by_the_written_rules():
    ex = example("prove_result")
    doc = json.loads(ex["key_file"])
    assert doc["format"] == "govchain-keystore" and doc["version"] == 1
    kdf = doc["kdf"]
    box_key = nacl.pwhash.argon2id.kdf(32, b"correct horse battery staple",
                                       bytes.fromhex(kdf["salt"]), opslimit=kdf["opslimit"],
                                       memlimit=kdf["memlimit"])
    sealed = bytes.fromhex(doc["cipher"]["sealed"])
    assert len(sealed) == 72 and sealed[:24] == bytes(range(24))
    seed = nacl.secret.SecretBox(box_key).decrypt(sealed)
    public_key = bytes(nacl.signing.SigningKey(seed).verify_key)
    assert public_key.hex() == doc["public_key"] == example()["sender_public_key"]
    assert sha256(b"govchain/address/ed25519\x00" + public_key)[:20].hex() == doc["address"]
    # and govchain's reader opens the same document
    from chain.keyfile import decrypt_key, validate_sealed_public_key
    assert decrypt_key(doc, b"correct horse battery staple").seed == seed
    assert validate_sealed_public_key(doc, "example").hex() == doc["public_key"]


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
