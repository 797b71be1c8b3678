"""The one module that builds every database key.

Each table has its own one-byte prefix; a change to a table's layout takes a new
prefix byte and a new SCHEMA_VERSION, never a silent reinterpretation of old keys.
Heights are 8-byte big-endian so that byte order is height order. Nothing outside
this module may spell a key by hand.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
"""Bumped on any incompatible change; stored in meta and checked at open. Version 2:
block headers of version 2 (with results_root), and final blocks, certificates and tx
records in history segments (storage.history) with the tx index TX_INDEX. A schema 1
directory holds version 1 headers, whose hashes no migration can keep, so it is refused."""
RESULTS_ROOT_SCHEMA_VERSION = 2
"""The first schema whose headers commit to the transactions' results."""

HEIGHT_SIZE = 8
INDEX_SIZE = 4
BUCKET_SIZE = 2
OFFSET_SIZE = 8
TX_KEY_BYTES = 10
"""Bytes of a tx hash in its TX_INDEX key: 2**80 prefixes make a shared one rare, and a
lookup reads the record and checks the whole hash anyway (docs/storage.md, "Tx index")."""

# Table prefixes. Keep this list and the table in docs/storage.md in step.
META = b"\x01"
BLOCK_HASH = b"\x11"
VALIDATOR_SET = b"\x13"
BLOCK_LOCATION = b"\x14"
PROVEN_HEADER = b"\x15"
TX_INDEX = b"\x22"
STATE = b"\x30"
TREE_BUCKET = b"\x31"
TREE_BUCKET_HASH = b"\x32"
SIGN_STATE = b"\x40"
EVIDENCE = b"\x41"
EVIDENCE_HASH = b"\x42"

# Meta keys.
META_SCHEMA_VERSION = META + b"schema_version"
META_GENESIS_HASH = META + b"genesis_hash"
META_GENESIS_STATE_ROOT = META + b"genesis_state_root"
META_HEAD_HEIGHT = META + b"head_height"
META_EVIDENCE_COUNT = META + b"evidence_count"
META_BASE_HEIGHT = META + b"base_height"
"""The lowest height whose block is held (absent: 1): pruning moves it up, a state-sync
restore at height H writes H + 1. Below it only PROVEN_HEADER rows are kept."""
META_RESTORE = META + b"restore_in_progress"
"""Present while a state-sync restore writes: such a directory is never opened as a
chain store (its genesis hash is written only by the restore's last batch)."""

# What `govchain audit` does with each table (docs/operator.md, "8. Audit"); a new
# table goes in one of these.
CHAIN_TABLES = (META, BLOCK_HASH, VALIDATOR_SET, BLOCK_LOCATION, PROVEN_HEADER, TX_INDEX,
                STATE, TREE_BUCKET, TREE_BUCKET_HASH)
"""Tables the chain alone determines: a replay from genesis writes them again, key for
key (meta without LOCAL_META_KEYS)."""
LOCAL_TABLES = (SIGN_STATE, EVIDENCE, EVIDENCE_HASH)
"""Tables of what this node itself signed and saw: no replay derives them."""
LOCAL_META_KEYS = (META_EVIDENCE_COUNT,)
"""The meta keys that belong to the local tables."""
CHAIN_FILES = ("history/NNNNNN.seg",)
"""Files beside LevelDB that the chain alone determines (storage.history): the audit
reads every frame of them, checksums verified, and compares the blocks with its replay."""


def encode_height(height: int) -> bytes:
    return height.to_bytes(HEIGHT_SIZE, "big")


def decode_height(data: bytes) -> int:
    assert len(data) == HEIGHT_SIZE, "a stored height is 8 bytes"
    return int.from_bytes(data, "big")


def block_hash_key(block_hash: bytes) -> bytes:
    """Block hash -> 8-byte height."""
    return BLOCK_HASH + block_hash


def validator_set_key(height: int) -> bytes:
    """The validator set certifying `height`, written at each height where it changes."""
    return VALIDATOR_SET + encode_height(height)


def block_location_key(height: int) -> bytes:
    """Where the block at `height` lies in its history segment (storage.history)."""
    return BLOCK_LOCATION + encode_height(height)


def proven_header_key(height: int) -> bytes:
    """[header, certificate] of a height below the base height that is kept: the trust
    chain (each height after which the validator set changes) and the base's parent."""
    return PROVEN_HEADER + encode_height(height)


def tx_index_prefix(tx_hash: bytes, key_bytes: int = TX_KEY_BYTES) -> bytes:
    """The TX_INDEX keys of every transaction whose hash begins as `tx_hash` does."""
    return TX_INDEX + tx_hash[:key_bytes]


def tx_index_key(tx_hash: bytes, height: int, index: int,
                 key_bytes: int = TX_KEY_BYTES) -> bytes:
    """Tx hash prefix + height + index -> offset (8 bytes) of its record's frame in the
    height's segment. The place is in the key, so two transactions sharing a prefix
    never share a key and a write never reads first."""
    return tx_index_prefix(tx_hash, key_bytes) + tx_location(height, index)


def decode_tx_index_key(key: bytes) -> tuple[int, int]:
    """(height, index) of a TX_INDEX key."""
    size = HEIGHT_SIZE + INDEX_SIZE
    assert key[:1] == TX_INDEX and len(key) > size, "a TX_INDEX key ends with its place"
    return decode_tx_location(key[-size:])


def tx_location(height: int, index: int) -> bytes:
    return encode_height(height) + index.to_bytes(INDEX_SIZE, "big")


def decode_tx_location(data: bytes) -> tuple[int, int]:
    assert len(data) == HEIGHT_SIZE + INDEX_SIZE, "a stored tx location is 12 bytes"
    return int.from_bytes(data[:HEIGHT_SIZE], "big"), int.from_bytes(data[HEIGHT_SIZE:], "big")


def state_key(key: bytes) -> bytes:
    """Ledger state key -> value (the latest committed state only)."""
    return STATE + key


def tree_bucket_key(bucket: int) -> bytes:
    """Sorted (key hash, value hash) entries of one state-tree bucket."""
    return TREE_BUCKET + bucket.to_bytes(BUCKET_SIZE, "big")


def tree_bucket_hash_key(bucket: int) -> bytes:
    """Hash of one non-empty state-tree bucket (read at open to rebuild the tree)."""
    return TREE_BUCKET_HASH + bucket.to_bytes(BUCKET_SIZE, "big")


def decode_tree_bucket_hash_key(key: bytes) -> int:
    assert key[:1] == TREE_BUCKET_HASH and len(key) == 1 + BUCKET_SIZE
    return int.from_bytes(key[1:], "big")


def sign_state_key() -> bytes:
    """The consensus signer's last signed (height, round, step), opaque here."""
    return SIGN_STATE


def sign_lock_key() -> bytes:
    """The block the signer is locked on with its proof of lock, opaque here.

    Kept apart from the sign state because it is large and changes rarely.
    """
    return SIGN_STATE + b"/lock"


def evidence_key(sequence: int) -> bytes:
    """Evidence of misbehaviour, by arrival order."""
    return EVIDENCE + encode_height(sequence)


def evidence_hash_key(evidence_hash: bytes) -> bytes:
    """Evidence hash -> presence, so the same evidence is kept once."""
    return EVIDENCE_HASH + evidence_hash
