"""Proof bundles: made from a live node by `govchain proof`, checked offline by `govchain
verify` and sdk.bundle.verify_bundle, and each kind of tampering refused with its own error.

The node tests run one validator in the test loop (real LevelDB, real sockets). The
tampering tests use a chain of real signatures whose validators change (built like the
benchmark's, bench/bench_verify_bundle.py), since a live chain with many set changes is
slow to make; the set changes of a live network are checked in test_ledger_network.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.bench_verify_bundle import build_chain_bundle, certify, make_header
from chain import codec, merkle
from chain.block import BlockHeader
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.genesis import Genesis
from chain.vote import CommitCertificate, Validator, ValidatorSet
from cli.ledger import add_dev_ledger
from cli.main import main as cli_main
from sdk import Client
from sdk.bundle import (
    BadCertificateError,
    BadSignatureError,
    BundleError,
    Checkpoint,
    CheckpointError,
    DocumentMismatchError,
    MalformedBundleError,
    MissingSetChangeError,
    ResultNotProvenError,
    SetChangeUnprovenError,
    TxNotProvenError,
    UnsupportedBundleError,
    ValueNotProvenError,
    WrongChainError,
    WrongGenesisError,
    WrongRecordError,
    check_document,
    check_result_section,
    verify_bundle,
)
from sdk.bundle_builder import build_payment_bundle
from tests.node.conftest import (
    ACCOUNT_KEYS,
    BALANCE,
    make_genesis,
    make_home,
    running_node,
)
from tests.node.conftest import (
    send_final as send,
)

VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
ISSUER, _AUDITOR, _COMPLIANCE, WRITER = ACCOUNT_KEYS
DOCUMENT = b"%PDF-1.7 licence of Crypto Exchange LLC, class A\n"


# ------------------------------------------------------------------ offline: a chain of sets


@pytest.fixture(scope="module")
def chain_of_sets():
    """(genesis, bundle) of a chain with 6 validator-set changes and a record after them."""
    return build_chain_bundle(6)


def tampered(bundle, change):
    doc = copy.deepcopy(bundle)
    change(doc)
    return doc


def flip_hex(text: str, at: int) -> str:
    data = bytearray(bytes.fromhex(text))
    data[at] ^= 0x01
    return data.hex()


def test_bundle_with_set_changes_verifies_and_names_the_signers(chain_of_sets):
    genesis, bundle = chain_of_sets
    fact = verify_bundle(json.dumps(bundle).encode(), genesis)
    assert (fact.kind, fact.set_changes, fact.set_size, fact.quorum) == ("record", 6, 4, 3)
    assert fact.height == bundle["block"]["height"] and fact.trusted_from == "genesis"
    assert fact.subject["value"] == b"Crypto Exchange LLC"
    assert fact.subject["doc_hash"] == compute_hash(b"the licence")
    check_document(fact, compute_hash(b"the licence"))
    with pytest.raises(DocumentMismatchError, match="is not the hash the record holds"):
        check_document(fact, compute_hash(b"the licence, altered"))
    # after six replacements no genesis validator is left: names are the bundle's word
    assert len(fact.signers) == 4 and not any(s.name_proven for s in fact.signers)
    assert {s.name for s in fact.signers} == {"ministry-6", "ministry-7", "ministry-8",
                                              "ministry-9"}


def test_invalid_flipped_signature_in_a_set_change(chain_of_sets):
    genesis, bundle = chain_of_sets

    def flip(doc):
        by = doc["validator_sets"][3]["certified_by"]
        by["certificate"] = flip_hex(by["certificate"], -1)  # last byte: a signature's
    height = bundle["validator_sets"][3]["from_height"] - 1
    with pytest.raises(BadSignatureError, match=f"on block {height} does not verify"):
        verify_bundle(tampered(bundle, flip), genesis)


def test_a_set_change_is_proven_by_a_quorum_of_its_certificate(chain_of_sets):
    # A set change certified by all four: the first three signatures (a quorum) prove
    # it and the fourth is not checked; a bad one among the three is refused. Of the
    # final block every signature is checked (they are the names shown).
    genesis, bundle = chain_of_sets
    keys = _chain_keys(2)  # the set that certifies the third change
    header = BlockHeader.decode(bytes.fromhex(
        bundle["validator_sets"][3]["certified_by"]["header"]))
    full = certify(header, keys)
    assert len(full.signatures) == 4

    def with_bad(certificate, index):
        key, sig = certificate.signatures[index]
        bad = (key, sig[:-1] + bytes([sig[-1] ^ 1]))
        signatures = list(certificate.signatures)
        signatures[index] = bad
        return CommitCertificate(certificate.height, certificate.round,
                                 certificate.block_hash, tuple(signatures)).encoded.hex()

    def set_change_certificate(hex_cert):
        return lambda doc: doc["validator_sets"][3]["certified_by"].update(
            certificate=hex_cert)
    fact = verify_bundle(tampered(bundle, set_change_certificate(with_bad(full, 3))), genesis)
    assert fact.set_changes == 6
    with pytest.raises(BadSignatureError, match=f"on block {header.height} does not verify"):
        verify_bundle(tampered(bundle, set_change_certificate(with_bad(full, 0))), genesis)
    final = CommitCertificate.decode(bytes.fromhex(bundle["block"]["certificate"]))
    assert len(final.signatures) == 4
    with pytest.raises(BadSignatureError):
        verify_bundle(tampered(bundle, lambda doc: doc["block"].update(
            certificate=with_bad(final, 3))), genesis)


def test_invalid_flipped_byte_in_the_final_header(chain_of_sets):
    genesis, bundle = chain_of_sets

    def flip(doc):  # the last byte, in next_validator_set_hash: its hash changes
        doc["block"]["header"] = flip_hex(doc["block"]["header"], -1)
    with pytest.raises(BadCertificateError, match="for another block"):
        verify_bundle(tampered(bundle, flip), genesis)


def test_invalid_wrong_genesis(chain_of_sets):
    _, bundle = chain_of_sets
    other, _ = build_chain_bundle(1, seed=1)
    with pytest.raises(WrongGenesisError):
        verify_bundle(bundle, other)


def test_invalid_missing_set_change(chain_of_sets):
    genesis, bundle = chain_of_sets
    with pytest.raises(MissingSetChangeError, match="change before it is missing"):
        verify_bundle(tampered(bundle, lambda d: d["validator_sets"].pop(2)), genesis)
    with pytest.raises(MissingSetChangeError):  # the last change: the final block says so
        verify_bundle(tampered(bundle, lambda d: d["validator_sets"].pop()), genesis)


def test_invalid_validator_set_not_derived_from_genesis(chain_of_sets):
    genesis, bundle = chain_of_sets
    intruder = KeyPair.from_seed(b"\x66" * 32)

    def swap(doc):  # a consistent entry: its hash restated for its keys
        entry = doc["validator_sets"][4]
        entry["validators"][0]["public_key"] = intruder.public_key.hex()
        entry["hash"] = _vset(entry).hash.hex()
    with pytest.raises(SetChangeUnprovenError, match="not the one certified block"):
        verify_bundle(tampered(bundle, swap), genesis)

    def first(doc):
        entry = doc["validator_sets"][0]
        entry["validators"][0]["public_key"] = intruder.public_key.hex()
        entry["hash"] = _vset(entry).hash.hex()
    with pytest.raises(SetChangeUnprovenError, match="genesis set"):
        verify_bundle(tampered(bundle, first), genesis)


def test_invalid_forged_record_value(chain_of_sets):
    genesis, bundle = chain_of_sets

    def forge(doc):
        record = codec.decode(bytes.fromhex(doc["proof"]["value"]))
        doc["proof"]["value"] = codec.encode({**record, "value": b"Forged LLC"}).hex()
    with pytest.raises(ValueNotProvenError):
        verify_bundle(tampered(bundle, forge), genesis)


def test_invalid_header_from_another_chain(chain_of_sets):
    genesis, bundle = chain_of_sets
    # the same validators sign a block of another chain id at the same height
    vset_doc = bundle["validator_sets"][-1]
    vset = ValidatorSet(tuple(Validator(bytes.fromhex(v["public_key"]), v["name"])
                              for v in vset_doc["validators"]))
    keys = _chain_keys(6)
    header = make_header(bundle["block"]["height"], vset, vset, chain_id="govchain-other")

    def swap(doc):
        doc["block"]["header"] = header.encoded.hex()
        doc["block"]["certificate"] = certify(header, keys).encoded.hex()
    with pytest.raises(WrongChainError, match="govchain-other"):
        verify_bundle(tampered(bundle, swap), genesis)


def _chain_keys(changes: int) -> list[KeyPair]:
    """The validators in force after `changes` days of build_chain_bundle (seed 0)."""
    members = [KeyPair.from_seed(compute_hash(b"bundle 0 %d" % i)) for i in range(4)]
    for day in range(1, changes + 1):
        members = [*members[1:], KeyPair.from_seed(compute_hash(b"bundle 0 new %d" % day))]
    return members


def test_invalid_form_and_version(chain_of_sets):
    genesis, bundle = chain_of_sets
    with pytest.raises(MalformedBundleError):
        verify_bundle(b"{not json", genesis)
    with pytest.raises(UnsupportedBundleError):
        verify_bundle(tampered(bundle, lambda d: d.update(version=9)), genesis)
    with pytest.raises(MalformedBundleError):
        verify_bundle(tampered(bundle, lambda d: d["block"].pop("certificate")), genesis)


def test_checkpoint_trust_root(chain_of_sets):
    genesis, bundle = chain_of_sets
    # a bundle from the change at index 3: its certified header is the checkpoint
    by = bundle["validator_sets"][3]["certified_by"]
    header = BlockHeader.decode(bytes.fromhex(by["header"]))
    short = copy.deepcopy(bundle)
    first = short["validator_sets"][3]
    short["validator_sets"] = [{**first, "certified_by": None}, *short["validator_sets"][4:]]
    short["checkpoint"] = {"height": header.height, "header": by["header"]}
    stated = Checkpoint(header.height, header.hash)
    fact = verify_bundle(short, genesis, checkpoint=stated)
    assert fact.set_changes == 3 and fact.trusted_from.startswith(f"checkpoint {header.height}:")
    assert Checkpoint.parse(f"{header.height}:{header.hash.hex()}") == stated
    with pytest.raises(CheckpointError, match="state the checkpoint"):
        verify_bundle(short, genesis)
    stale = Checkpoint(header.height, Hash32(compute_hash(b"another block")))
    with pytest.raises(CheckpointError, match="not the stated"):
        verify_bundle(short, genesis, checkpoint=stale)


def test_result_section_checked_only_against_a_results_root():
    tx_hash = compute_hash(b"a payment")
    leaves = [codec.encode([compute_hash(b"other"), "ok", compute_hash(b"e")]),
              codec.encode([tx_hash, "account_frozen", compute_hash(codec.encode([]))])]
    root = merkle.compute_root(leaves)
    section = {"leaf": leaves[1].hex(), "path": [p.hex() for p in merkle.compute_proof(leaves, 1)]}
    header = SimpleNamespace(height=5, results_root=root)
    result = check_result_section(section, header, tx_hash, 1, 2)
    assert result is not None and (result["code"], result["ok"]) == ("account_frozen", False)
    with pytest.raises(ResultNotProvenError):  # a refusal presented as a success
        forged = {**section, "leaf": codec.encode([tx_hash, "ok", compute_hash(b"e")]).hex()}
        check_result_section(forged, header, tx_hash, 1, 2)
    with pytest.raises(ResultNotProvenError):  # another transaction's result
        check_result_section(section, header, compute_hash(b"x"), 1, 2)
    # a header that commits no results proves none: the section is not taken as proof
    assert check_result_section(section, SimpleNamespace(height=5), tx_hash, 1, 2) is None


# ------------------------------------------------------------------ a live node


@pytest.fixture
async def ledger_node(tmp_path):
    genesis = add_dev_ledger(make_genesis([VALIDATOR]), list(ACCOUNT_KEYS), BALANCE)
    (tmp_path / "genesis.json").write_text(genesis.to_json())
    async with running_node(make_home(tmp_path / "node0", genesis, VALIDATOR)) as running:
        yield running




def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli_main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def test_record_payment_account_bundles_round_trip(ledger_node, tmp_path, capsys):
    rpc, genesis_file = ledger_node.service.rpc_url, str(tmp_path / "genesis.json")
    put = await send(ledger_node, WRITER, "record_put", {
        "namespace": "licenses", "key": "vasp-0001", "value": b"Crypto Exchange LLC",
        "doc_hash": compute_hash(DOCUMENT)})
    assert put["code"] == "ok"
    paid = await send(ledger_node, ISSUER, "transfer", {
        "to": WRITER.address, "asset": "GOV", "amount": 1234})
    assert paid["code"] == "ok"

    def cli(*argv: str) -> tuple[int, str, str]:
        return run_cli(capsys, *argv)

    record = tmp_path / "record.json"
    status, out, err = await asyncio.to_thread(
        cli, "proof", "record", "licenses/vasp-0001", "--out", str(record),
        "--genesis", genesis_file, "--rpc", rpc)
    assert status == 0, err
    status, out, err = cli("verify", str(record), "--genesis", genesis_file)
    assert status == 0, err
    assert "signed by 1 of 1 validators (quorum 1): ministry-0" in out
    assert "record licenses/vasp-0001: version 1, status active" in out
    assert "value: Crypto Exchange LLC" in out

    # from an operator's checkpoint (block 1) instead of genesis
    block = await ledger_node.client.call("chain_block", height=1)
    checkpoint = f"1:{block['hash']}"
    short = tmp_path / "record-from-checkpoint.json"
    status, out, err = await asyncio.to_thread(
        cli, "proof", "record", "licenses/vasp-0001", "--out", str(short), "--genesis",
        genesis_file, "--checkpoint", checkpoint, "--rpc", rpc)
    assert status == 0, err
    status, out, err = cli("verify", str(short), "--genesis", genesis_file)
    assert status == 2 and "NOT VERIFIED: checkpoint_mismatch" in err
    status, out, err = cli("verify", str(short), "--genesis", genesis_file, "--checkpoint",
                           checkpoint)
    assert status == 0 and "VERIFIED against the stated checkpoint 1:" in out, err
    status, out, err = cli("verify", str(short), "--genesis", genesis_file, "--checkpoint",
                           "1:beef")
    assert status == 1 and "HEIGHT:HASH" in err

    payment = tmp_path / "payment.json"
    status, out, err = await asyncio.to_thread(
        cli, "proof", "payment", paid["hash"], "--out", str(payment), "--genesis",
        genesis_file, "--rpc", rpc)
    assert status == 0, err
    status, out, err = cli("--json", "verify", str(payment), "--genesis", genesis_file)
    assert status == 0, err
    fact = json.loads(out)
    assert fact["kind"] == "tx" and fact["height"] == paid["height"]
    assert fact["subject"]["hash"] == paid["hash"]
    assert fact["subject"]["fields"]["amount"] == 1234
    assert fact["subject"]["reported"]["status"] == "final"

    account = tmp_path / "account.json"
    status, out, err = await asyncio.to_thread(
        cli, "proof", "account", WRITER.address.hex(), "--asset", "GOV", "--out",
        str(account), "--genesis", genesis_file, "--rpc", rpc)
    assert status == 0, err
    status, out, err = cli("--json", "verify", str(account), "--genesis", genesis_file)
    assert status == 0, err
    balances = json.loads(out)["subject"]["balances"]
    assert balances["GOV"]["amount"] == BALANCE + 1234

    # the files stand alone: another genesis refuses them with a typed error, exit 2
    other = tmp_path / "other-genesis.json"
    other.write_text(add_dev_ledger(make_genesis([KeyPair.from_seed(b"\x09" * 32)]),
                                    list(ACCOUNT_KEYS), BALANCE).to_json())
    status, out, err = cli("verify", str(record), "--genesis", str(other))
    assert status == 2 and "NOT VERIFIED: wrong_genesis" in err

    # a payment's bytes altered in the file: the inclusion no longer holds
    doc = json.loads(payment.read_text())
    doc["proof"]["path"] = [flip_hex(doc["proof"]["path"][0], 0)] if doc["proof"]["path"] \
        else [compute_hash(b"x").hex()]
    with pytest.raises(TxNotProvenError):
        verify_bundle(doc, make_genesis_from(genesis_file))

    # verify-document: the citizen's copy matches; an altered copy does not
    held, altered = tmp_path / "licence.pdf", tmp_path / "altered.pdf"
    held.write_bytes(DOCUMENT)
    altered.write_bytes(DOCUMENT.replace(b"class A", b"class B"))
    status, out, err = cli("verify-document", str(held), "--record", "licenses/vasp-0001",
                           "--bundle", str(record), "--genesis", genesis_file)
    assert status == 0 and out.startswith("MATCH:"), err
    status, out, err = cli("verify-document", str(altered), "--record", "licenses/vasp-0001",
                           "--bundle", str(record), "--genesis", genesis_file)
    assert status == 2 and "NOT VERIFIED: document_mismatch" in err
    status, out, err = await asyncio.to_thread(
        cli, "verify-document", str(held), "--record", "licenses/vasp-0001", "--rpc", rpc,
        "--genesis", genesis_file)
    assert status == 0 and out.startswith("MATCH:"), err
    status, out, err = cli("verify-document", str(held), "--record", "licenses/other",
                           "--bundle", str(record), "--genesis", genesis_file)
    assert status == 2 and "NOT VERIFIED: wrong_record" in err
    status, out, err = await asyncio.to_thread(
        cli, "verify-document", str(held), "--record", "licenses/none", "--rpc", rpc,
        "--genesis", genesis_file)
    assert status == 2 and "does not exist at block" in err and "proven absent" in err
    status, out, err = cli("verify", str(payment), "--genesis", genesis_file)
    assert status == 0 and "transfer by" in out and "outcome" in out, err


def make_genesis_from(path: str) -> Genesis:
    return Genesis.from_json(Path(path).read_text())


async def test_payment_refused_at_execution_is_not_shown_as_proven(ledger_node, tmp_path):
    genesis = make_genesis_from(str(tmp_path / "genesis.json"))
    refused = await send(ledger_node, ISSUER, "transfer", {
        "to": WRITER.address, "asset": "GOV", "amount": BALANCE * 10})
    assert (refused["status"], refused["code"]) == ("rejected", "insufficient_balance")
    bundle = await asyncio.to_thread(build_payment_bundle,
                                     Client(ledger_node.service.rpc_url), genesis,
                                     bytes.fromhex(refused["hash"]))
    fact = verify_bundle(bundle, genesis)
    assert fact.subject["reported"]["code"] == "insufficient_balance"
    if "results_root" in BlockHeader.__dataclass_fields__:
        # headers commit results: the refusal itself is proven
        assert fact.subject["results_committed"]
        assert fact.subject["result"]["code"] == "insufficient_balance"
        assert not fact.subject["result"]["ok"]
    else:
        # included, and the refusal is the node's report: nothing claims it was proven
        assert not fact.subject["results_committed"] and fact.subject["result"] is None
    with pytest.raises(WrongRecordError):
        check_document(fact, compute_hash(DOCUMENT))


UNPROVEN = {"name", "reported"}
"""Bundle fields no proof covers: names of validators (keys are signed, names are not) and
what the node reported about a transaction's outcome."""


def hex_fields(doc, path=()):
    """The paths of every hex string in `doc` that some check covers."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key not in UNPROVEN:
                yield from hex_fields(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from hex_fields(value, (*path, i))
    elif isinstance(doc, str) and len(doc) >= 2 and all(c in "0123456789abcdef" for c in doc):
        yield path


def test_invalid_a_flipped_digit_in_any_proven_field(chain_of_sets):
    genesis, bundle = chain_of_sets
    small = copy.deepcopy(bundle)
    small["validator_sets"] = small["validator_sets"][:1]  # keep it quick: no set change
    vset = small["validator_sets"][0]
    header = make_header(2, _vset(vset), _vset(vset), BlockHeader.decode(
        bytes.fromhex(bundle["block"]["header"])).state_root)
    small["block"] = {"height": 2, "header": header.encoded.hex(),
                      "certificate": certify(header, _chain_keys(0)).encoded.hex()}
    small["proof"]["state_proof"]["height"] = 2
    for doc in (small, bundle):
        verify_bundle(doc, genesis)
        paths = list(hex_fields(doc))
        assert len(paths) > 20
        for n, path in enumerate(paths):
            forged = copy.deepcopy(doc)
            target = forged
            for step in path[:-1]:
                target = target[step]
            text = target[path[-1]]
            at = (n * 7919) % len(text)
            target[path[-1]] = text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1:]
            with pytest.raises(BundleError):
                verify_bundle(forged, genesis)
        if doc is small:
            continue
        # every byte of the file: a change is refused, or it left the proven content
        # the same (JSON whitespace, a validator's name)
        data = json.dumps(doc).encode()
        for at in range(0, len(data), 211):
            flipped = bytearray(data)
            flipped[at] ^= 0x01
            try:
                verify_bundle(bytes(flipped), genesis)
            except BundleError:
                continue
            assert _without_unproven(json.loads(bytes(flipped))) == _without_unproven(doc), at


def _vset(entry) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(bytes.fromhex(v["public_key"]), v["name"])
                              for v in entry["validators"]))


def _without_unproven(doc):
    if isinstance(doc, dict):
        return {k: _without_unproven(v) for k, v in doc.items() if k not in UNPROVEN}
    if isinstance(doc, list):
        return [_without_unproven(v) for v in doc]
    return doc
