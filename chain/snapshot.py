"""State sync's objects and their proofs: light blocks, snapshot manifests and chunks.

A joining node trusts only the genesis or the operator's checkpoint. Light blocks
carry that trust across the validator-set changes to one certified header; its state
root proves a manifest's 65,536 bucket hashes, and they prove each chunk's entries.
Pure: no I/O. Nothing from a peer may be stored before its proof passed here.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain import codec
from chain.block import BlockHeader
from chain.crypto import HASH_SIZE, Hash32, compute_hash
from chain.errors import (
    ChainError,
    InvalidChunkError,
    MalformedError,
    ManifestMismatchError,
    TooLargeError,
    UnprovenHeaderError,
)
from chain.genesis import Genesis
from chain.state_proof import (
    BUCKET_COUNT,
    EMPTY_BUCKET_HASH,
    compute_bucket_hash,
    compute_tree_root,
)
from chain.vote import CommitCertificate, ValidatorSet, validate_certificate

SNAPSHOT_FORMAT = 1
"""Version of the manifest and chunk encodings; a node serves and reads only its own."""

KiB = 1024
MiB = 1024 * KiB
CHUNK_TARGET_BYTES = 4 * MiB
"""A chunk is closed before its entries would pass this size (unless it holds only one
bucket): what a peer sends per request, and what a syncing node holds per peer."""
MAX_CHUNK_BYTES = 8 * MiB
"""The largest chunk encoding, refused unread beyond it (the CHUNK frame limit). A
bucket bigger than this cannot be served: see docs/state-sync.md, "Limits"."""
MAX_MANIFEST_BYTES = 4 * MiB
"""Bitmap (8 KiB) + at most 65,536 hashes (2 MiB) + at most 65,536 chunk starts."""
MAX_LIGHT_BLOCK_BYTES = 256 * KiB
"""A header, a certificate of up to 256 signatures and two validator sets."""
BITMAP_BYTES = BUCKET_COUNT // 8


@dataclass(frozen=True)
class SnapshotOffer:
    """What a peer says it serves: one snapshot, named by its manifest's hash."""

    height: int
    """The committed height whose state the snapshot holds."""
    manifest_hash: Hash32
    """sha256 of the manifest's encoding: peers with the same hash serve the same chunks."""
    chunk_count: int
    """How many chunks the manifest lists (informational until the manifest is read)."""

    def to_value(self) -> list[Any]:
        return [self.height, self.manifest_hash, self.chunk_count]

    @classmethod
    def from_value(cls, value: Any) -> SnapshotOffer:
        height, manifest_hash, chunk_count = codec.expect_tuple(value, 3, "snapshot offer")
        return cls(codec.expect_int(height, "offer height", lo=1),
                   Hash32(codec.expect_bytes(manifest_hash, "offer manifest hash",
                                             size=HASH_SIZE)),
                   codec.expect_int(chunk_count, "offer chunk count", lo=1, hi=BUCKET_COUNT))


# ------------------------------------------------------------------ manifests


@dataclass(frozen=True)
class SnapshotManifest:
    """The bucket hashes of a state and how its buckets are cut into chunks."""

    height: int
    """The committed height whose state this is."""
    state_root: Hash32
    """The root the bucket hashes give (checked; compared with a certified header's)."""
    bucket_hashes: bytes
    """The 65,536 bucket hashes in bucket order, 32 bytes each (empty: EMPTY_BUCKET_HASH)."""
    chunk_starts: tuple[int, ...]
    """The first bucket of each chunk, rising from 0; a chunk ends where the next one
    starts, the last one at 65,536."""

    @property
    def chunk_count(self) -> int:
        return len(self.chunk_starts)

    def get_bucket_hash(self, bucket: int) -> bytes:
        return self.bucket_hashes[bucket * HASH_SIZE:(bucket + 1) * HASH_SIZE]

    def get_chunk_range(self, index: int) -> tuple[int, int]:
        """[first, end) buckets of chunk `index`; InvalidChunkError if there is none."""
        if not 0 <= index < self.chunk_count:
            raise InvalidChunkError(f"the manifest has no chunk {index} "
                                    f"(it has {self.chunk_count})")
        end = self.chunk_starts[index + 1] if index + 1 < self.chunk_count else BUCKET_COUNT
        return self.chunk_starts[index], end

    def compute_root(self) -> Hash32:
        hashes = self.bucket_hashes
        return compute_tree_root({
            b: hashes[b * HASH_SIZE:(b + 1) * HASH_SIZE] for b in range(BUCKET_COUNT)
            if hashes[b * HASH_SIZE:(b + 1) * HASH_SIZE] != EMPTY_BUCKET_HASH})

    def to_value(self) -> list[Any]:
        """[format, height, state_root, bitmap, hashes, chunk_starts]: the bitmap has a
        bit per bucket (bucket 0 is the high bit of byte 0), set for a non-empty bucket;
        `hashes` holds the hashes of those buckets only, in bucket order."""
        bitmap = bytearray(BITMAP_BYTES)
        present = []
        for bucket in range(BUCKET_COUNT):
            bucket_hash = self.get_bucket_hash(bucket)
            if bucket_hash != EMPTY_BUCKET_HASH:
                bitmap[bucket >> 3] |= 0x80 >> (bucket & 7)
                present.append(bucket_hash)
        return [SNAPSHOT_FORMAT, self.height, self.state_root, bytes(bitmap), b"".join(present),
                list(self.chunk_starts)]

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_value())

    @cached_property
    def hash(self) -> Hash32:
        return compute_hash(self.encoded)

    @classmethod
    def from_value(cls, value: Any) -> SnapshotManifest:
        version, height, state_root, bitmap, present, starts = codec.expect_tuple(
            value, 6, "snapshot manifest")
        if version != SNAPSHOT_FORMAT:
            raise MalformedError(f"snapshot manifest format {version!r} is not supported")
        bitmap = codec.expect_bytes(bitmap, "manifest bitmap", size=BITMAP_BYTES)
        count = int.from_bytes(bitmap, "big").bit_count()
        present = codec.expect_bytes(present, "manifest hashes", size=count * HASH_SIZE)
        return cls(height=codec.expect_int(height, "manifest height", lo=1),
                   state_root=Hash32(codec.expect_bytes(state_root, "manifest state root",
                                                        size=HASH_SIZE)),
                   bucket_hashes=_expand_bucket_hashes(bitmap, present),
                   chunk_starts=_check_chunk_starts(starts))

    @classmethod
    def decode(cls, data: bytes) -> SnapshotManifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise TooLargeError(f"manifest of {len(data)} bytes exceeds {MAX_MANIFEST_BYTES}")
        manifest = cls.from_value(codec.decode(data, max_size=MAX_MANIFEST_BYTES))
        manifest.__dict__["encoded"] = bytes(data)
        return manifest


def _expand_bucket_hashes(bitmap: bytes, present: bytes) -> bytes:
    parts = []
    taken = 0
    for bucket in range(BUCKET_COUNT):
        if bitmap[bucket >> 3] & (0x80 >> (bucket & 7)):
            bucket_hash = present[taken:taken + HASH_SIZE]
            if bucket_hash == EMPTY_BUCKET_HASH:
                # One state, one encoding: an empty bucket is a clear bit, never its hash.
                raise MalformedError(f"manifest lists bucket {bucket} with the empty hash")
            parts.append(bucket_hash)
            taken += HASH_SIZE
        else:
            parts.append(EMPTY_BUCKET_HASH)
    return b"".join(parts)


def _check_chunk_starts(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not value or len(value) > BUCKET_COUNT:
        raise MalformedError("manifest chunk starts: expected 1 to 65,536 bucket numbers")
    starts = tuple(codec.expect_int(s, "manifest chunk start", hi=BUCKET_COUNT - 1)
                   for s in value)
    if starts[0] != 0 or any(a >= b for a, b in itertools.pairwise(starts)):
        raise MalformedError("manifest chunk starts must rise strictly from bucket 0")
    return starts


def validate_manifest(manifest: SnapshotManifest, header: BlockHeader) -> None:
    """Raise ManifestMismatchError unless `manifest` is the state after `header`, whose
    certificate the caller verified: same height, and the bucket hashes fold to the
    header's state root."""
    if manifest.height != header.height:
        raise ManifestMismatchError(f"the manifest is of height {manifest.height}, the "
                                    f"certified header of height {header.height}")
    if manifest.state_root != header.state_root:
        raise ManifestMismatchError(
            f"the manifest claims state root {manifest.state_root.hex()}, the certified "
            f"header at {header.height} has {header.state_root.hex()}")
    root = manifest.compute_root()
    if root != header.state_root:
        raise ManifestMismatchError(
            f"the manifest's bucket hashes give root {root.hex()}, not the certified "
            f"state root {header.state_root.hex()} of height {header.height}")


# ------------------------------------------------------------------ chunks


@dataclass(frozen=True)
class SnapshotChunk:
    """The state entries of a range of buckets."""

    height: int
    """The snapshot's height."""
    index: int
    """The chunk's place in the manifest."""
    first_bucket: int
    """The first bucket of its range."""
    end_bucket: int
    """The bucket after its range (65,536 for the last chunk)."""
    entries: tuple[tuple[bytes, bytes], ...]
    """(state key, value) of every entry in the range, in ascending sha256(key) order."""

    def to_value(self) -> list[Any]:
        return [SNAPSHOT_FORMAT, self.height, self.index, self.first_bucket, self.end_bucket,
                [[key, value] for key, value in self.entries]]

    def encode(self) -> bytes:
        # Integers and byte strings only, no maps: canonical as it stands, so the walk
        # codec.encode makes over a million entries is skipped (same bytes).
        return codec.pack_unchecked(self.to_value())

    @classmethod
    def from_value(cls, value: Any) -> SnapshotChunk:
        version, height, index, first, end, entries = codec.expect_tuple(
            value, 6, "snapshot chunk")
        if version != SNAPSHOT_FORMAT:
            raise MalformedError(f"snapshot chunk format {version!r} is not supported")
        if not isinstance(entries, tuple):
            raise MalformedError("snapshot chunk entries: expected an array")
        for entry in entries:
            if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not bytes \
                    or type(entry[1]) is not bytes:
                raise MalformedError("snapshot chunk entry: expected [key bytes, value bytes]")
        return cls(height=codec.expect_int(height, "chunk height", lo=1),
                   index=codec.expect_int(index, "chunk index", hi=BUCKET_COUNT - 1),
                   first_bucket=codec.expect_int(first, "chunk first bucket",
                                                 hi=BUCKET_COUNT - 1),
                   end_bucket=codec.expect_int(end, "chunk end bucket", lo=1, hi=BUCKET_COUNT),
                   entries=entries)

    @classmethod
    def decode(cls, data: bytes) -> SnapshotChunk:
        """Refuses more than MAX_CHUNK_BYTES before parsing anything.

        from_value checks every field's type, so canonical form is checked by packing
        the value again (in C), not by codec.decode's walk over every entry."""
        if len(data) > MAX_CHUNK_BYTES:
            raise TooLargeError(f"chunk of {len(data)} bytes exceeds {MAX_CHUNK_BYTES}")
        value = codec.unpack_unchecked(bytes(data))
        chunk = cls.from_value(value)
        if codec.pack_unchecked(value) != data:
            raise MalformedError("snapshot chunk: encoding is not canonical")
        return chunk


@dataclass(frozen=True)
class VerifiedChunk:
    """A chunk whose entries give exactly the manifest's bucket hashes of its range."""

    chunk: SnapshotChunk
    """The chunk."""
    buckets: tuple[tuple[int, bytes, bytes], ...]
    """(bucket, sorted key-hash ‖ value-hash entries, bucket hash) of each non-empty
    bucket of the range: what the state tree stores for it."""


def verify_chunk(manifest: SnapshotManifest, index: int, chunk: SnapshotChunk) -> VerifiedChunk:
    """The chunk's bucket entries, once they are proven by `manifest` (itself proven by
    `validate_manifest`); raise InvalidChunkError otherwise."""
    first, end = manifest.get_chunk_range(index)
    if (chunk.height, chunk.index) != (manifest.height, index):
        raise InvalidChunkError(f"asked for chunk {index} of height {manifest.height}, got "
                                f"chunk {chunk.index} of height {chunk.height}")
    if (chunk.first_bucket, chunk.end_bucket) != (first, end):
        raise InvalidChunkError(f"chunk {index} covers buckets [{chunk.first_bucket}, "
                                f"{chunk.end_bucket}), the manifest says [{first}, {end})")
    computed = _compute_bucket_entries(chunk, first, end)
    buckets = []
    for bucket in range(first, end):
        entries = computed.get(bucket, b"")
        bucket_hash = compute_bucket_hash(entries) if entries else EMPTY_BUCKET_HASH
        if bucket_hash != manifest.get_bucket_hash(bucket):
            raise InvalidChunkError(f"chunk {index}: the entries of bucket {bucket} do not "
                                    "give the manifest's bucket hash")
        if entries:
            buckets.append((bucket, entries, bucket_hash))
    return VerifiedChunk(chunk, tuple(buckets))


def _compute_bucket_entries(chunk: SnapshotChunk, first: int, end: int) -> dict[int, bytes]:
    """Bucket -> its sorted (key hash ‖ value hash) entries, checking order and range.

    The hot loop of a restore (a million entries for a 40 MB state): names are bound
    locally, and since entries are sorted a bucket's entries are contiguous."""
    sha256 = hashlib.sha256
    grouped: dict[int, bytes] = {}
    parts: list[bytes] = []
    current = -1
    previous = b""
    for key, value in chunk.entries:
        key_hash = sha256(key).digest()
        if key_hash <= previous:
            # Strict order makes the encoding unique and a repeated key impossible.
            raise InvalidChunkError(f"chunk {chunk.index}: entries are not in strictly "
                                    "ascending key-hash order")
        previous = key_hash
        bucket = (key_hash[0] << 8) | key_hash[1]
        if bucket != current:
            if parts:
                grouped[current] = b"".join(parts)
            if not first <= bucket < end:
                raise InvalidChunkError(f"chunk {chunk.index}: a key of bucket {bucket} is "
                                        f"outside its range [{first}, {end})")
            current, parts = bucket, []
        parts.append(key_hash + sha256(value).digest())
    if parts:
        grouped[current] = b"".join(parts)
    return grouped


# ------------------------------------------------------------------ light blocks


@dataclass(frozen=True)
class LightBlock:
    """A header with its commit certificate and the validator sets it names."""

    header: BlockHeader
    """The block header."""
    certificate: CommitCertificate
    """The quorum's precommits for it."""
    validator_set: ValidatorSet
    """The set that certifies this height (its hash is the header's validator_set_hash)."""
    next_validator_set: ValidatorSet | None
    """The set of the next height when it differs (the header's next_validator_set_hash),
    else None."""

    def get_next_validator_set(self) -> ValidatorSet:
        return self.validator_set if self.next_validator_set is None \
            else self.next_validator_set

    def to_value(self) -> list[Any]:
        following = None if self.next_validator_set is None \
            else self.next_validator_set.to_value()
        return [self.header.to_value(), self.certificate.to_value(),
                self.validator_set.to_value(), following]

    def encode(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_value(cls, value: Any) -> LightBlock:
        header, certificate, validator_set, following = codec.expect_tuple(
            value, 4, "light block")
        return cls(BlockHeader.from_value(header), CommitCertificate.from_value(certificate),
                   ValidatorSet.from_value(validator_set),
                   None if following is None else ValidatorSet.from_value(following))

    @classmethod
    def decode(cls, data: bytes) -> LightBlock:
        return cls.from_value(codec.decode(data, max_size=MAX_LIGHT_BLOCK_BYTES))


@dataclass(frozen=True)
class TrustPoint:
    """How far the light-client walk has proven the chain."""

    height: int
    """The last proven height (0: the genesis)."""
    block_hash: Hash32
    """The hash of that block (the genesis hash at 0)."""
    header: BlockHeader | None
    """That block's header (None at the genesis)."""
    next_validator_set: ValidatorSet
    """The set that certifies height + 1, and every height up to its next change."""


def get_genesis_trust(genesis: Genesis) -> TrustPoint:
    """Trust in the genesis alone: its validator set certifies height 1."""
    return TrustPoint(0, genesis.hash, None, genesis.validator_set)


def verify_checkpoint(light_block: LightBlock, chain_id: str, height: int,
                      block_hash: bytes) -> TrustPoint:
    """Trust in the operator's checkpoint (height and block hash from a source they
    trust): `light_block` must be that very block; its sets are then proven by hash."""
    header = light_block.header
    if header.height != height or header.hash != block_hash:
        raise UnprovenHeaderError(
            f"the peer's block at height {header.height} has hash {header.hash.hex()}, not "
            f"the trusted checkpoint {bytes(block_hash).hex()} at height {height}")
    _validate_light_block_sets(light_block, chain_id)
    _validate_certificate(light_block, light_block.validator_set, chain_id)
    return TrustPoint(height, header.hash, header, light_block.get_next_validator_set())


def verify_light_block(trust: TrustPoint, light_block: LightBlock, chain_id: str) -> TrustPoint:
    """The trust point after `light_block`, a later header certified by the set `trust`
    holds; raise UnprovenHeaderError otherwise.

    A walk shows the headers where the validator set changes, then its target. A peer
    that leaves out a change is caught: the next header names a set other than the
    one trusted.
    """
    header = light_block.header
    if header.height <= trust.height:
        raise UnprovenHeaderError(f"light block {header.height} is not above the trusted "
                                  f"height {trust.height}")
    if header.validator_set_hash != trust.next_validator_set.hash:
        raise UnprovenHeaderError(
            f"the header at {header.height} names validator set "
            f"{header.validator_set_hash.hex()[:16]}..., but the set proven up to it is "
            f"{trust.next_validator_set.hash.hex()[:16]}...: a validator set change between "
            f"{trust.height} and {header.height} was left out")
    _validate_light_block_sets(light_block, chain_id)
    _validate_certificate(light_block, trust.next_validator_set, chain_id)
    return TrustPoint(header.height, header.hash, header, light_block.get_next_validator_set())


def _validate_light_block_sets(light_block: LightBlock, chain_id: str) -> None:
    header = light_block.header
    if header.chain_id != chain_id:
        raise UnprovenHeaderError(f"the header at {header.height} is of chain "
                                  f"{header.chain_id!r}, not {chain_id!r}")
    if light_block.validator_set.hash != header.validator_set_hash:
        raise UnprovenHeaderError(f"the validator set given with header {header.height} is "
                                  "not the one it names")
    changes = header.next_validator_set_hash != header.validator_set_hash
    following = light_block.next_validator_set
    if changes and (following is None or following.hash != header.next_validator_set_hash):
        raise UnprovenHeaderError(f"the next validator set given with header "
                                  f"{header.height} is not the one it names")
    if not changes and following is not None:
        raise UnprovenHeaderError(f"header {header.height} keeps its validator set, but a "
                                  "next one was given")


def _validate_certificate(light_block: LightBlock, validator_set: ValidatorSet,
                          chain_id: str) -> None:
    header = light_block.header
    try:
        validate_certificate(light_block.certificate, validator_set, chain_id,
                             height=header.height, block_hash=header.hash)
    except ChainError as e:
        raise UnprovenHeaderError(f"the certificate of header {header.height} does not "
                                  f"verify: {e.message}") from e
