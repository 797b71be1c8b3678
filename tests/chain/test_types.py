"""Transactions, blocks, votes and certificates: encodings, signatures and domains."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import codec
from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import (
    DOMAIN_PROPOSAL,
    DOMAIN_TX,
    DOMAIN_VOTE,
    ZERO_HASH,
    KeyPair,
    compute_address,
    compute_hash,
    compute_multisig_address,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import (
    BadSignatureError,
    InvalidCertificateError,
    MalformedError,
    TooLargeError,
    WrongChainError,
)
from chain.tx import (
    Signature,
    Transaction,
    make_transaction,
    signatures_verify_encoded,
    validate_chain_id,
    validate_signatures,
)
from chain.vote import (
    NIL,
    CommitCertificate,
    Proposal,
    Validator,
    ValidatorSet,
    Vote,
    VoteKind,
    validate_certificate,
)

CHAIN = "test-chain"
KEYS = [KeyPair.from_seed(bytes([i]) * 32) for i in range(1, 5)]
VSET = ValidatorSet(tuple(Validator(k.public_key, f"v{i}") for i, k in enumerate(KEYS)))


def transfer(key=KEYS[0], nonce=0, amount=5):
    return make_transaction(CHAIN, key, nonce, "transfer",
                            {"to": KEYS[1].address, "asset": "GOV", "amount": amount})


def test_tx_round_trip_and_hash():
    tx = transfer()
    again = Transaction.decode(tx.encoded)
    assert again == tx
    assert again.hash == tx.hash
    validate_signatures(again)


@given(nonce=st.integers(min_value=0, max_value=2**64 - 1), amount=st.integers(0, 2**64 - 1))
@settings(max_examples=50)
def test_tx_round_trip_property(nonce, amount):
    tx = transfer(nonce=nonce, amount=amount)
    again = Transaction.decode(tx.encoded)
    assert again == tx
    # decode keeps the bytes it was given; encode the decoded fields afresh.
    fresh = Transaction(again.chain_id, again.sender, again.nonce, again.tx_type, again.fields,
                        again.signatures)
    assert fresh.encoded == tx.encoded


@given(chain_id=st.text(max_size=64), nonce=st.integers(0, 2**64 - 1),
       memo=st.text(max_size=300), signers=st.integers(0, 20))
@settings(max_examples=60, deadline=None)
def test_signing_bytes_cut_from_the_encoding_match_the_body(chain_id, nonce, memo, signers):
    # A decoded transaction takes its signing bytes from its own encoding (no second
    # encode); they must be exactly those of the body, for any signature count.
    keys = sorted((KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(signers)),
                  key=lambda k: k.public_key)
    tx = Transaction(chain_id, KEYS[0].address, nonce, "transfer",
                     {"to": KEYS[1].address, "memo": memo, "amount": 1},
                     tuple(Signature(k.public_key, bytes(64)) for k in keys))
    expected = signing_bytes(DOMAIN_TX, chain_id, tx.body())
    decoded = Transaction.decode(tx.encoded)
    assert decoded.signing_bytes == expected
    assert Transaction(chain_id, tx.sender, nonce, "transfer", tx.fields).signing_bytes == \
        expected


@given(signers=st.integers(0, 20), forge=st.integers(-1, 19), amount=st.integers(1, 2**40))
@settings(max_examples=40, deadline=None)
def test_signature_verdict_from_the_encoding_agrees_with_validate_signatures(
        signers, forge, amount):
    # The worker's verdict (read from the encoding alone) must be exactly
    # validate_signatures's on the decoded transaction: with 0 to 20 signers (array
    # headers change at 16), and with any one signature forged.
    keys = sorted((KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(signers)),
                  key=lambda k: k.public_key)
    tx = Transaction(CHAIN, KEYS[0].address, 3, "transfer",
                     {"to": KEYS[1].address, "asset": "GOV", "amount": amount})
    for key in keys:
        tx = tx.with_signature(key)
    if 0 <= forge < len(tx.signatures):
        sigs = list(tx.signatures)
        sigs[forge] = Signature(sigs[forge].public_key, bytes(64))
        tx = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.tx_type, tx.fields, tuple(sigs))
    decoded = Transaction.decode(tx.encoded)
    try:
        validate_signatures(decoded)
        expected = True
    except BadSignatureError:
        expected = False
    assert signatures_verify_encoded(decoded.encoded) is expected
    assert expected is (signers > 0 and not 0 <= forge < signers)


def test_signature_verdict_from_the_encoding_refuses_other_bytes():
    tx = transfer()
    assert signatures_verify_encoded(tx.encoded)
    forged = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.tx_type,
                         {**tx.fields, "amount": 6}, tx.signatures)
    assert not signatures_verify_encoded(forged.encoded)
    for junk in (b"", b"\xc1", codec.encode([1, 2, 3]), codec.encode(["a"] * 6),
                 tx.encoded[:-10]):
        assert not signatures_verify_encoded(junk)


def test_invalid_tx_signature_rejected():
    tx = transfer()
    forged = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.tx_type,
                         {**tx.fields, "amount": 6}, tx.signatures)
    with pytest.raises(BadSignatureError):
        validate_signatures(forged)


def test_invalid_unsigned_tx_rejected():
    tx = Transaction(CHAIN, KEYS[0].address, 0, "transfer", {})
    with pytest.raises(BadSignatureError):
        validate_signatures(Transaction.decode(tx.encoded))


def test_invalid_wrong_chain_rejected():
    with pytest.raises(WrongChainError):
        validate_chain_id(transfer(), "other-chain")


def test_signature_bound_to_chain_id():
    tx = transfer()
    moved = Transaction("other-chain", tx.sender, tx.nonce, tx.tx_type, tx.fields, tx.signatures)
    with pytest.raises(BadSignatureError):
        validate_signatures(moved)


def test_signing_domains_differ():
    payload = [1, 2, 3]
    messages = {signing_bytes(d, CHAIN, payload) for d in (DOMAIN_TX, DOMAIN_VOTE,
                                                             DOMAIN_PROPOSAL)}
    assert len(messages) == 3
    # A vote signature does not verify as a proposal signature over the same numbers.
    vote = Vote.create(CHAIN, KEYS[0], VoteKind.PRECOMMIT, 1, 0, ZERO_HASH)
    proposal_msg = signing_bytes(DOMAIN_PROPOSAL, CHAIN, [1, 0, -1, ZERO_HASH])
    assert not is_valid_signature(KEYS[0].public_key, proposal_msg, vote.signature)


def test_invalid_tx_unsorted_signatures_rejected():
    tx = transfer().with_signature(KEYS[1])
    value = codec.decode(tx.encoded)
    swapped = (*value[:5], tuple(reversed(value[5])))
    with pytest.raises(MalformedError, match="sorted"):
        Transaction.decode(codec.encode(swapped))


def test_invalid_tx_field_types_rejected():
    value = list(codec.decode(transfer().encoded))
    for index, bad in [(0, 5), (1, b"short"), (2, -1), (2, "1"), (3, b"t"), (4, [1])]:
        broken = list(value)
        broken[index] = bad
        with pytest.raises(MalformedError):
            Transaction.decode(codec.encode(broken))
    with pytest.raises(MalformedError):
        Transaction.decode(codec.encode([*value, 1]))  # unknown extra field


def test_invalid_tx_too_large_rejected():
    tx = make_transaction(CHAIN, KEYS[0], 0, "note", {"text": "x" * 2000})
    with pytest.raises(TooLargeError):
        Transaction.decode(tx.encoded, max_size=1000)


def test_addresses():
    assert len(compute_address(KEYS[0].public_key)) == 20
    members = (KEYS[0].public_key, KEYS[1].public_key)
    assert compute_multisig_address(2, members) == compute_multisig_address(2, members[::-1])
    assert compute_multisig_address(1, members) != compute_multisig_address(2, members)


def make_block(height=1, txs=()):
    header = BlockHeader(CHAIN, height, 0, 1000, ZERO_HASH, VSET.get_proposer(height, 0),
                         compute_tx_root(list(txs)), ZERO_HASH, ZERO_HASH, VSET.hash, VSET.hash)
    return Block(header, tuple(txs))


def test_block_round_trip():
    block = make_block(txs=(transfer(), transfer(nonce=1)))
    again = Block.decode(block.encoded)
    assert again == block
    assert again.header == block.header and again.txs == block.txs
    assert again.hash == block.hash
    assert Block(again.header, again.txs).encoded == block.encoded
    assert BlockHeader.decode(block.header.encoded) == block.header


def test_invalid_block_header_version_rejected():
    value = list(make_block().header.to_value())
    value[0] = 3
    with pytest.raises(MalformedError, match="version"):
        BlockHeader.from_value(tuple(value))


def test_invalid_version_1_header_without_results_root_rejected():
    """A header of the format before results_root (11 items, version 1) is refused by
    its version, with a message naming what this node reads."""
    value = list(make_block().header.to_value())
    del value[8]  # results_root
    value[0] = 1
    with pytest.raises(MalformedError, match=r"version 1 is not supported.*results_root"):
        BlockHeader.from_value(tuple(value))
    with pytest.raises(MalformedError, match="version 1"):
        BlockHeader.decode(codec.encode(value))


def test_header_commits_to_results_root():
    header = make_block().header
    other = dataclasses.replace(header, results_root=compute_hash(b"other results"))
    assert other.hash != header.hash
    assert header.to_value()[8] == header.results_root
    assert BlockHeader.decode(other.encoded) == other


def test_proposal_round_trip_and_signature():
    block = make_block()
    proposer = next(k for k in KEYS if k.public_key == block.header.proposer)
    proposal = Proposal.create(CHAIN, proposer, 1, 0, -1, block)
    encoded = codec.encode(proposal.to_value())
    again = Proposal.from_value(codec.decode(encoded))
    assert again == proposal
    assert codec.encode(again.to_value()) == encoded
    assert again.is_signature_valid(CHAIN)
    assert not again.is_signature_valid("other-chain")


@pytest.mark.parametrize("kind", list(VoteKind))
@pytest.mark.parametrize("block_hash", [NIL, compute_hash(b"block")])
def test_vote_round_trip(kind, block_hash):
    vote = Vote.create(CHAIN, KEYS[1], kind, 3, 2, block_hash)
    again = Vote.from_value(codec.decode(vote.encoded))
    assert again == vote
    assert again.encoded == vote.encoded
    assert again.is_signature_valid(CHAIN)


def test_validator_set_round_trip():
    encoded = codec.encode(VSET.to_value())
    again = ValidatorSet.from_value(codec.decode(encoded))
    assert again == VSET
    assert again.hash == VSET.hash
    assert codec.encode(again.to_value()) == encoded


def test_quorum_maths():
    for n, f, q in [(1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 1, 3), (5, 1, 4), (6, 1, 5),
                    (7, 2, 5), (10, 3, 7), (100, 33, 67)]:
        keys = tuple(Validator(KeyPair.from_seed(bytes([i + 1]) * 32).public_key, "")
                     for i in range(n))
        vset = ValidatorSet(keys)
        assert (vset.max_faulty, vset.quorum) == (f, q)
        # Two quorums always share more than f validators.
        assert 2 * q - n > f


def test_proposer_rotation():
    assert [VSET.get_proposer(h, 0) for h in range(4)] == [k.public_key for k in KEYS]
    assert VSET.get_proposer(1, 1) == KEYS[2].public_key


def precommits(block_hash, signers, height=1, round_=0):
    return [Vote.create(CHAIN, k, VoteKind.PRECOMMIT, height, round_, block_hash)
            for k in signers]


def test_certificate_valid_and_round_trip():
    block = make_block()
    cert = CommitCertificate.from_votes(precommits(block.hash, KEYS[:3]))
    again = CommitCertificate.decode(cert.encoded)
    assert again == cert
    assert again.encoded == cert.encoded
    validate_certificate(again, VSET, CHAIN, height=1, block_hash=block.hash)


def test_invalid_certificate_below_quorum():
    block = make_block()
    cert = CommitCertificate.from_votes(precommits(block.hash, KEYS[:2]))
    with pytest.raises(InvalidCertificateError, match="quorum"):
        validate_certificate(cert, VSET, CHAIN, height=1, block_hash=block.hash)


def test_invalid_certificate_prevotes_do_not_count():
    block = make_block()
    votes = [Vote.create(CHAIN, k, VoteKind.PREVOTE, 1, 0, block.hash) for k in KEYS[:3]]
    cert = CommitCertificate.from_votes(votes)
    with pytest.raises(InvalidCertificateError, match="verify"):
        validate_certificate(cert, VSET, CHAIN, height=1, block_hash=block.hash)


def test_invalid_certificate_outsider_and_wrong_block():
    block = make_block()
    outsider = KeyPair.from_seed(b"\x09" * 32)
    cert = CommitCertificate.from_votes(precommits(block.hash, [*KEYS[:2], outsider]))
    with pytest.raises(InvalidCertificateError, match="not a validator"):
        validate_certificate(cert, VSET, CHAIN, height=1, block_hash=block.hash)
    good = CommitCertificate.from_votes(precommits(block.hash, KEYS[:3]))
    with pytest.raises(InvalidCertificateError):
        validate_certificate(good, VSET, CHAIN, height=1, block_hash=ZERO_HASH)
    with pytest.raises(InvalidCertificateError):
        validate_certificate(good, VSET, "other-chain", height=1, block_hash=block.hash)


def _mostly(valid, invalid):
    """Mostly valid (hypothesis leans to the low draws), so that whole transactions are
    often valid and both paths' acceptance is exercised, not only their refusals."""
    return st.integers(0, 7).flatmap(lambda i: invalid if i == 7 else valid)


_good_leaf = st.one_of(st.binary(max_size=40), st.text(max_size=8),
                       st.integers(-2**63, 2**64 - 1), st.booleans(), st.none())
_field_value = _mostly(_good_leaf, st.one_of(
    st.floats(allow_nan=False), st.lists(_good_leaf, max_size=2).map(tuple),
    st.dictionaries(st.text(max_size=3), _good_leaf, max_size=2)))
_fields = st.dictionaries(_mostly(st.text(max_size=4), st.binary(max_size=2)), _field_value,
                          max_size=4).map(lambda d: dict(sorted(d.items()))
                                          if all(isinstance(k, str) for k in d) else d)
_signature = _mostly(st.tuples(st.binary(min_size=32, max_size=32),
                               st.binary(min_size=64, max_size=64)),
                     st.one_of(st.tuples(st.binary(min_size=31, max_size=33),
                                         st.binary(min_size=63, max_size=65)),
                               st.tuples(st.binary(min_size=32, max_size=32))))
_tx_like = st.tuples(
    _mostly(st.text(max_size=64), st.one_of(st.text(min_size=65, max_size=70),
                                            st.binary(max_size=4))),
    _mostly(st.binary(min_size=20, max_size=20), st.one_of(
        st.binary(min_size=19, max_size=19), st.text(max_size=2))),
    _mostly(st.integers(0, 2**64 - 1), st.one_of(st.integers(-5, -1), st.booleans(),
                                                 st.floats(allow_nan=False))),
    _mostly(st.text(max_size=64), st.text(min_size=65, max_size=70)),
    _mostly(_fields, st.binary(max_size=2)),
    st.lists(_signature, max_size=3).map(
        lambda sigs: tuple(sorted(sigs, key=lambda sig: sig[0]))))


def _decode_generic(data: bytes):
    try:
        tx = Transaction.from_value(codec.decode(data))
    except MalformedError:
        return None
    tx.__dict__["encoded"] = data
    return tx


@given(value=_tx_like, unsorted=st.booleans(), cut=st.integers(0, 3))
@settings(max_examples=400, deadline=None)
def test_fast_transaction_decode_agrees_with_the_generic_path(value, unsorted, cut):
    # Transaction.decode takes a fast path for flat fields; it must accept exactly what
    # the generic canonical decode plus from_value accept, and build the same transaction.
    import msgpack

    packed = msgpack.packb(value, use_bin_type=True)
    if unsorted and isinstance(value[4], dict):  # maps in insertion (maybe wrong) order
        packed = msgpack.packb((*value[:4], dict(reversed(value[4].items())), value[5]),
                               use_bin_type=True)
    for data in (packed, packed[:len(packed) - cut] if cut else packed + b"\x00"):
        expected = _decode_generic(data)
        try:
            got = Transaction.decode(data)
        except MalformedError:
            got = None
        assert (got is None) == (expected is None), data.hex()
        if got is not None:
            assert got == expected and got.encoded == data and got.hash == expected.hash


def test_fast_transaction_decode_takes_real_transfers():
    from chain.tx import _decode_common_shape

    tx = transfer()
    fast = _decode_common_shape(Transaction, tx.encoded)
    assert fast == tx and fast.signing_bytes == tx.signing_bytes
