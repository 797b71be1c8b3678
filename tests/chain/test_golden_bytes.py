"""Golden bytes of the wire formats: a refactor cannot change an encoding silently.

tests/fixtures/golden/wire.json holds the exact bytes (hex) of fixed transactions (one
of each type the ledger knows), votes, proposals, block headers, blocks, a commit
certificate, validator sets, one p2p frame of each message type, the handshake's
HELLO and AUTH, the signing bytes of transactions, votes and proposals, and the
hashes and addresses derived from them. The objects are built in
tests/fixtures/golden/wire_cases.py from fixed seeds, heights, timestamps and hashes.

Each case is (a) encoded and compared with the stored bytes, (b) decoded from the
stored bytes and compared with the object, (c) the decoded object encoded again and
compared with the stored bytes.

The golden file is changed only on purpose, when a format is meant to change:
`python -m tests.fixtures.golden.make` rewrites it from the current code; review the
diff, since every changed case is a changed format.
"""

from __future__ import annotations

import pytest

from chain import codec
from chain.block import Block
from chain.crypto import (
    DOMAIN_PROPOSAL,
    DOMAIN_TX,
    DOMAIN_VOTE,
    is_valid_signature,
)
from chain.tx import Transaction, signatures_verify_encoded, validate_signatures
from chain.vote import CommitCertificate, validate_certificate
from ledger.execution import Ledger, default_modules
from p2p.frames import MessageType, decode_frame
from p2p.handshake import verify_auth
from tests.fixtures.golden import Case, load
from tests.fixtures.golden import wire_cases as w

CASES = w.cases()
GOLDEN = load("wire")
DECODABLE = [case for case in CASES if case.decode is not None]


def _ids(case: Case) -> str:
    return case.name


def test_the_golden_file_holds_exactly_the_cases():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert sorted(GOLDEN) == sorted(names), \
        "cases and wire.json differ: rewrite it with python -m tests.fixtures.golden.make"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_encoding_is_the_golden_bytes(case: Case):
    assert case.encode(case.value).hex() == GOLDEN[case.name].hex()


@pytest.mark.parametrize("case", DECODABLE, ids=_ids)
def test_golden_bytes_decode_to_the_object(case: Case):
    assert case.decode is not None
    assert case.decode(GOLDEN[case.name]) == case.expected


@pytest.mark.parametrize("case", DECODABLE, ids=_ids)
def test_decoded_object_encodes_to_the_golden_bytes(case: Case):
    assert case.decode is not None
    assert case.encode(case.decode(GOLDEN[case.name])).hex() == GOLDEN[case.name].hex()


# ---------------------------------------------------------------- coverage of the cases


def test_every_tx_type_of_the_ledger_has_a_golden_transaction():
    ledger = Ledger(default_modules())
    assert {tx.tx_type for tx in w.TXS.values()} == set(ledger.tx_types)
    for tx in w.TXS.values():
        ledger.validate_fields(tx)  # the fixtures are transactions the ledger accepts


def test_every_message_type_has_a_golden_frame():
    assert {frame.msg_type for frame in w.FRAMES.values()} == set(MessageType)


# ---------------------------------------------------------------- signatures and signing bytes


@pytest.mark.parametrize("name", sorted(w.TXS))
def test_golden_transactions_carry_valid_signatures(name: str):
    data = GOLDEN[f"tx/{name}"]
    tx = Transaction.decode(data)
    validate_signatures(tx)
    assert signatures_verify_encoded(data)
    assert tx.hash == GOLDEN[f"tx_hash/{name}"]


@pytest.mark.parametrize("name", ["transfer", "multisig_update"])
def test_tx_signing_bytes_are_the_domain_chain_and_body(name: str):
    golden = GOLDEN[f"signing_bytes/tx/{name}"]
    tx = w.TXS[name]
    assert codec.decode(golden) == (DOMAIN_TX, w.CHAIN_ID, codec.decode(codec.encode(tx.body())))
    # A decoded transaction cuts its signing bytes from its encoding: the same bytes.
    assert Transaction.decode(GOLDEN[f"tx/{name}"]).signing_bytes == golden
    for sig in tx.signatures:
        assert is_valid_signature(sig.public_key, golden, sig.signature)


@pytest.mark.parametrize("name", sorted(w.VOTES))
def test_vote_signing_bytes_verify_the_golden_vote(name: str):
    golden = GOLDEN[f"signing_bytes/vote/{name}"]
    vote = w.decode_vote(GOLDEN[f"vote/{name}"])
    assert codec.decode(golden) == (DOMAIN_VOTE, w.CHAIN_ID,
                                    (int(vote.kind), vote.height, vote.round, vote.block_hash))
    assert is_valid_signature(vote.validator, golden, vote.signature)
    assert vote.is_signature_valid(w.CHAIN_ID)


@pytest.mark.parametrize("name", ["proposal", "proposal_pol_round"])
def test_proposal_signing_bytes_verify_the_golden_proposal(name: str):
    golden = GOLDEN[f"signing_bytes/{name}"]
    proposal = w.decode_proposal(GOLDEN[name])
    assert codec.decode(golden) == (DOMAIN_PROPOSAL, w.CHAIN_ID, (
        proposal.height, proposal.round, proposal.pol_round, GOLDEN["block_hash/block"]))
    assert is_valid_signature(proposal.proposer, golden, proposal.signature)


def test_golden_block_hashes_and_certificate():
    block = Block.decode(GOLDEN["block"])
    assert block.hash == GOLDEN["block_hash/block"] == w.BLOCK.header.hash
    assert block.header.tx_root == GOLDEN["tx_root/block"]
    assert block.header.validator_set_hash == GOLDEN["validator_set_hash"]
    cert = CommitCertificate.decode(GOLDEN["commit_certificate"])
    validate_certificate(cert, w.decode_validator_set(GOLDEN["validator_set"]), w.CHAIN_ID,
                         height=block.height, block_hash=block.hash)


def test_golden_auth_signatures_verify():
    local, peer = w.HELLOS[1], w.HELLOS[0]  # the receiver of HELLOS[0]'s AUTH
    verify_auth(local, peer, GOLDEN["handshake/auth_signature_plain"])
    verify_auth(local, peer, GOLDEN["handshake/auth_signature_tls"], w.CHANNEL_BINDING)
    for name, binding in (("plain", b""), ("tls", w.CHANNEL_BINDING)):
        assert is_valid_signature(peer.node_key, GOLDEN[f"handshake/auth_message_{name}"],
                                  GOLDEN[f"handshake/auth_signature_{name}"])
        assert codec.decode(GOLDEN[f"handshake/auth_message_{name}"])[2][5] == binding
    assert decode_frame(GOLDEN["frame/auth"]).payload == GOLDEN["handshake/auth_signature_tls"]
