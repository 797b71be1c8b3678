"""State sync's proofs (chain.snapshot): light-block walks, manifests and chunks.

Each rejection a hostile peer could cause has its test_invalid_* case with the typed
error it must raise."""

from __future__ import annotations

import dataclasses

import pytest

from chain import codec
from chain.errors import (
    InvalidChunkError,
    MalformedError,
    ManifestMismatchError,
    TooLargeError,
    UnprovenHeaderError,
)
from chain.snapshot import (
    MAX_CHUNK_BYTES,
    SnapshotChunk,
    SnapshotManifest,
    SnapshotOffer,
    get_genesis_trust,
    validate_manifest,
    verify_checkpoint,
    verify_chunk,
    verify_light_block,
)
from chain.state_proof import BUCKET_COUNT, EMPTY_BUCKET_HASH
from tests.chain.snapshot_builders import (
    CHAIN_ID,
    GENESIS,
    KEYS,
    SET_A,
    SET_B,
    SET_C,
    build_chain,
    certify,
    make_chunk,
    make_manifest,
    make_state,
)

STATE = make_state(3000)
STARTS = (0, 10_000, 30_000, 60_000)


@pytest.fixture(scope="module")
def manifest() -> SnapshotManifest:
    return make_manifest(40, STATE, STARTS)


# ------------------------------------------------------------------ light blocks


def walk(blocks, heights, trust=None):
    trust = trust or get_genesis_trust(GENESIS)
    for h in heights:
        trust = verify_light_block(trust, blocks[h], CHAIN_ID)
    return trust


def test_walk_from_genesis_follows_each_validator_set_change():
    blocks = build_chain(40, {11: SET_B, 26: SET_C})
    # Only the headers before each change (10, 25) and the target are needed.
    trust = walk(blocks, [10, 25, 40])
    assert trust.height == 40 and trust.header == blocks[40].header
    assert trust.next_validator_set == SET_C


def test_walk_needs_no_header_when_the_set_never_changes():
    blocks = build_chain(40, {})
    assert walk(blocks, [40]).next_validator_set == SET_A


def test_invalid_walk_that_skips_a_validator_set_change():
    blocks = build_chain(40, {11: SET_B, 26: SET_C})
    with pytest.raises(UnprovenHeaderError, match="left out"):
        walk(blocks, [10, 40])  # the change at 26 skipped: header 40 names SET_C


def test_invalid_header_certified_by_an_outdated_set():
    blocks = build_chain(40, {11: SET_B})
    # The old set (A) signs a header of its own at 40: it names A, which the walk
    # through 10 says is no longer the set.
    forged_header = dataclasses.replace(blocks[40].header, validator_set_hash=SET_A.hash,
                                        next_validator_set_hash=SET_A.hash)
    forged = dataclasses.replace(blocks[40], header=forged_header,
                                 certificate=certify(forged_header, SET_A), validator_set=SET_A)
    trust = walk(blocks, [10])
    with pytest.raises(UnprovenHeaderError):
        verify_light_block(trust, forged, CHAIN_ID)


def test_invalid_certificate_short_of_a_quorum():
    blocks = build_chain(5, {})
    light = blocks[5]
    weak = dataclasses.replace(light, certificate=certify(light.header, SET_A, KEYS[:2]))
    with pytest.raises(UnprovenHeaderError, match="does not verify"):
        verify_light_block(get_genesis_trust(GENESIS), weak, CHAIN_ID)


def test_invalid_certificate_of_another_block():
    blocks = build_chain(5, {})
    swapped = dataclasses.replace(blocks[5], certificate=blocks[4].certificate)
    with pytest.raises(UnprovenHeaderError):
        verify_light_block(get_genesis_trust(GENESIS), swapped, CHAIN_ID)


def test_invalid_next_validator_set_not_the_one_named():
    blocks = build_chain(12, {11: SET_B})
    wrong = dataclasses.replace(blocks[10], next_validator_set=SET_C)
    with pytest.raises(UnprovenHeaderError, match="next validator set"):
        verify_light_block(get_genesis_trust(GENESIS), wrong, CHAIN_ID)
    missing = dataclasses.replace(blocks[10], next_validator_set=None)
    with pytest.raises(UnprovenHeaderError, match="next validator set"):
        verify_light_block(get_genesis_trust(GENESIS), missing, CHAIN_ID)


def test_invalid_light_block_not_above_the_trust_point():
    blocks = build_chain(12, {})
    trust = walk(blocks, [8])
    with pytest.raises(UnprovenHeaderError, match="not above"):
        verify_light_block(trust, blocks[8], CHAIN_ID)


def test_invalid_light_block_of_another_chain():
    blocks = build_chain(3, {})
    with pytest.raises(UnprovenHeaderError, match="chain"):
        verify_light_block(get_genesis_trust(GENESIS), blocks[3], "other-chain")


def test_checkpoint_trusts_its_block_and_the_walk_continues_from_it():
    blocks = build_chain(40, {11: SET_B, 26: SET_C})
    trust = verify_checkpoint(blocks[20], CHAIN_ID, 20, blocks[20].header.hash)
    assert trust.next_validator_set == SET_B
    assert walk(blocks, [25, 40], trust).header == blocks[40].header


def test_invalid_checkpoint_block_of_another_hash():
    blocks = build_chain(20, {})
    with pytest.raises(UnprovenHeaderError, match="trusted checkpoint"):
        verify_checkpoint(blocks[20], CHAIN_ID, 20, blocks[19].header.hash)


def test_light_block_encoding_round_trips():
    blocks = build_chain(12, {11: SET_B})
    for light in (blocks[10], blocks[12]):
        assert type(light).decode(light.encode()) == light


def test_snapshot_offer_round_trips_and_refuses_height_zero():
    offer = SnapshotOffer(7, GENESIS.hash, 3)
    assert SnapshotOffer.from_value(codec.decode(codec.encode(offer.to_value()))) == offer
    with pytest.raises(MalformedError):
        SnapshotOffer.from_value((0, GENESIS.hash, 3))


# ------------------------------------------------------------------ manifests


def test_manifest_is_compact_and_round_trips(manifest):
    small = make_manifest(3, make_state(5))
    assert len(small.encoded) < 9 * 1024  # the bitmap and five hashes, not 2 MiB
    for m in (manifest, small):
        decoded = SnapshotManifest.decode(m.encoded)
        assert decoded == m and decoded.hash == m.hash
    assert manifest.chunk_count == 4
    assert manifest.get_chunk_range(3) == (60_000, BUCKET_COUNT)


def test_manifest_proven_by_the_certified_header(manifest):
    blocks = build_chain(40, {}, state_root=manifest.state_root)
    validate_manifest(manifest, blocks[40].header)


def test_invalid_manifest_whose_bucket_hashes_do_not_give_the_root(manifest):
    blocks = build_chain(40, {}, state_root=manifest.state_root)
    hashes = bytearray(manifest.bucket_hashes)
    hashes[64:96] = b"\x07" * 32  # bucket 2 altered, the claimed root kept
    forged = dataclasses.replace(manifest, bucket_hashes=bytes(hashes))
    with pytest.raises(ManifestMismatchError, match="give root"):
        validate_manifest(forged, blocks[40].header)


def test_invalid_manifest_of_another_height_or_root(manifest):
    blocks = build_chain(41, {}, state_root=manifest.state_root)
    with pytest.raises(ManifestMismatchError, match="height"):
        validate_manifest(manifest, blocks[41].header)
    other = build_chain(40, {})
    with pytest.raises(ManifestMismatchError, match="claims"):
        validate_manifest(manifest, other[40].header)


@pytest.mark.parametrize("change, match", [
    (lambda v: [2, *v[1:]], "format"),
    (lambda v: [*v[:3], v[3][:-1], *v[4:]], "bitmap"),
    (lambda v: [*v[:4], v[4] + bytes(32), v[5]], "hashes"),
    (lambda v: [*v[:5], [1, 5]], "rise"),
    (lambda v: [*v[:5], [0, 5, 5]], "rise"),
    (lambda v: [*v[:5], []], "chunk starts"),
])
def test_invalid_manifest_encodings(manifest, change, match):
    with pytest.raises(MalformedError, match=match):
        SnapshotManifest.decode(codec.encode(change(manifest.to_value())))


def test_invalid_manifest_listing_an_empty_bucket_hash():
    value = make_manifest(3, make_state(1)).to_value()
    bitmap = bytearray(value[3])
    bucket = next(b for b in range(BUCKET_COUNT) if not bitmap[b >> 3] & (0x80 >> (b & 7)))
    bitmap[bucket >> 3] |= 0x80 >> (bucket & 7)
    hashes = value[4] + EMPTY_BUCKET_HASH  # appended: right only if after the other
    value = [*value[:3], bytes(bitmap), hashes if bucket > 0 else EMPTY_BUCKET_HASH + value[4],
             value[5]]
    with pytest.raises(MalformedError, match="empty hash"):
        SnapshotManifest.decode(codec.encode(value))


# ------------------------------------------------------------------ chunks


def test_each_chunk_verifies_against_the_manifest(manifest):
    total = 0
    for index in range(manifest.chunk_count):
        chunk = make_chunk(manifest, index, STATE)
        verified = verify_chunk(manifest, index, SnapshotChunk.decode(chunk.encode()))
        total += len(verified.chunk.entries)
        for bucket, _, bucket_hash in verified.buckets:
            assert manifest.get_bucket_hash(bucket) == bucket_hash
    assert total == len(STATE)


def test_invalid_chunk_with_a_changed_value(manifest):
    chunk = make_chunk(manifest, 1, STATE)
    key, _ = chunk.entries[5]
    bad = dataclasses.replace(chunk, entries=(*chunk.entries[:5], (key, b"stolen"),
                                              *chunk.entries[6:]))
    with pytest.raises(InvalidChunkError, match="bucket hash"):
        verify_chunk(manifest, 1, bad)


def test_invalid_chunk_missing_an_entry(manifest):
    chunk = make_chunk(manifest, 2, STATE)
    with pytest.raises(InvalidChunkError, match="bucket hash"):
        verify_chunk(manifest, 2, dataclasses.replace(chunk, entries=chunk.entries[1:]))


def test_invalid_chunk_with_an_entry_of_another_range(manifest):
    chunk = make_chunk(manifest, 0, STATE)
    foreign = make_chunk(manifest, 3, STATE).entries[0]
    with pytest.raises(InvalidChunkError, match="outside its range"):
        verify_chunk(manifest, 0, dataclasses.replace(chunk,
                                                      entries=(*chunk.entries, foreign)))


def test_invalid_chunk_out_of_order_or_repeating_a_key(manifest):
    chunk = make_chunk(manifest, 1, STATE)
    entries = chunk.entries
    with pytest.raises(InvalidChunkError, match="ascending"):
        verify_chunk(manifest, 1, dataclasses.replace(
            chunk, entries=(entries[1], entries[0], *entries[2:])))
    with pytest.raises(InvalidChunkError, match="ascending"):
        verify_chunk(manifest, 1, dataclasses.replace(
            chunk, entries=(entries[0], entries[0], *entries[1:])))


def test_invalid_chunk_of_another_index_range_or_height(manifest):
    chunk = make_chunk(manifest, 1, STATE)
    with pytest.raises(InvalidChunkError, match="asked for chunk 2"):
        verify_chunk(manifest, 2, chunk)
    with pytest.raises(InvalidChunkError, match="covers"):
        verify_chunk(manifest, 1, dataclasses.replace(chunk, end_bucket=30_001))
    with pytest.raises(InvalidChunkError, match="height"):
        verify_chunk(manifest, 1, dataclasses.replace(chunk, height=39))
    with pytest.raises(InvalidChunkError, match="no chunk 9"):
        verify_chunk(manifest, 9, chunk)


def test_invalid_chunk_over_the_size_limit_is_refused_unread():
    with pytest.raises(TooLargeError):
        SnapshotChunk.decode(b"\x00" * (MAX_CHUNK_BYTES + 1))


def test_invalid_chunk_in_a_non_canonical_encoding():
    canonical = SnapshotChunk(3, 0, 0, BUCKET_COUNT, ((b"k", b"v"),)).encode()
    assert SnapshotChunk.decode(canonical).height == 3
    longer = canonical.replace(b"\x96\x01\x03", b"\x96\x01\xcd\x00\x03", 1)  # uint16 3
    assert longer != canonical
    with pytest.raises(MalformedError, match="canonical"):
        SnapshotChunk.decode(longer)


def test_invalid_chunk_encodings():
    good = SnapshotChunk(3, 0, 0, BUCKET_COUNT, ((b"k", b"v"),)).to_value()
    for bad in ([2, *good[1:]], [*good[:5], [[b"k"]]], [*good[:5], [[b"k", "text"]]],
                [*good[:3], 0, 0, good[5]]):
        with pytest.raises(MalformedError):
            SnapshotChunk.decode(codec.encode(bad))
