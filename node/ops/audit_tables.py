"""The audit's check of a node's database, table by table, after its replay.

Each table of storage.schema is a chain table (schema.CHAIN_TABLES), which the replay
writes again and which is compared key by key with the replayed database, or a local
one (schema.LOCAL_TABLES: the signer's state, the evidence this node saw), checked for
what it carries: signatures, hashes, counts, form. The history segments
(schema.CHAIN_FILES) are chain files, read frame by frame with checksums verified
while replaying. Reads only: it never writes.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

from chain import codec
from chain.block import Block
from chain.crypto import compute_hash
from chain.errors import ChainError
from chain.vote import Vote
from node.node import decode_sign_state
from node.ops.errors import AuditDamage, AuditMismatch
from storage import schema
from storage.chain_store import ChainStore
from storage.damage import BY_HEIGHT, HISTORY_PARTS, HISTORY_TX_RECORD, TABLES
from storage.errors import InconsistentDataError, StorageError
from storage.kv import get_error_text

Item = tuple[bytes, bytes]
CHAIN_FILES = {
    schema.CHAIN_FILES[0]: "every block read whole while replaying, each frame's CRC-32 "
                           "verified (a frame that fails, or a segment missing or cut short, "
                           "is DAMAGED naming the file); headers, certificates and tx records "
                           "compared with the replay's",
}
"""The files beside LevelDB the audit reads, and how."""
_PRINTABLE = set(string.ascii_letters + string.digits + "_-/")
_DIFFERENCES = ("stored, but the replay did not write it",
                "written by the replay, but missing from the database",
                "the stored value differs from the replayed one")
"""What differs for a key only stored, only replayed, or in both with other values."""


# ------------------------------------------------------------------ naming


def name_table(prefix: bytes) -> str:
    """'validator sets (0x13)', 'tx records (history segments)', or 'unknown table 0x50'."""
    if prefix in HISTORY_PARTS:
        return HISTORY_PARTS[prefix]
    name = TABLES.get(prefix)
    return f"{name} (0x{prefix.hex()})" if name else f"unknown table 0x{prefix.hex()}"


def locate(key: bytes) -> str:
    """A stored key as a person reads it: 'validator sets (0x13), height 0'."""
    prefix, rest = key[:1], key[1:]
    where = name_table(prefix)
    if prefix in (*BY_HEIGHT, schema.EVIDENCE) and len(rest) >= schema.HEIGHT_SIZE:
        number = schema.decode_height(rest[:schema.HEIGHT_SIZE])
        return f"{where}, {'number' if prefix == schema.EVIDENCE else 'height'} {number}"
    if prefix in (schema.TREE_BUCKET, schema.TREE_BUCKET_HASH) \
            and len(rest) == schema.BUCKET_SIZE:
        return f"{where}, bucket {int.from_bytes(rest, 'big')}"
    if not rest:
        return where
    if set(rest.decode("latin-1")) <= _PRINTABLE:
        return f"{where}, key '{rest.decode()}'"
    return f"{where}, key {rest.hex()}"


def height_of(key: bytes, head: int) -> int:
    """The height a stored key belongs to: its own for tables by height, else the head."""
    if key[:1] in BY_HEIGHT and len(key) >= 1 + schema.HEIGHT_SIZE:
        return schema.decode_height(key[1:1 + schema.HEIGHT_SIZE])
    return head


# ------------------------------------------------------------------ reading the source


def read_source(items: Iterator[Any]) -> Iterator[Any]:
    """`items` read from the audited database: a file LevelDB cannot read there is
    AuditDamage (the audit then locates it), a record that does not decode a mismatch.
    Only reads of the audited database go through here: the replayed one's errors are
    the audit's own and pass as they are."""
    try:
        yield from items
    except InconsistentDataError as e:
        raise AuditMismatch(e.height or 0, e.message) from e
    except StorageError as e:
        cause = e.__cause__
        text = get_error_text(cause) if isinstance(cause, Exception) else e.message
        raise AuditDamage(f"reading the database failed ({text})") from e


# ------------------------------------------------------------------ tx records


def check_stored_records(replayed: ChainStore, block: Block, stored: list[bytes]) -> None:
    """The stored tx records of `block` (transaction, result code, message and events)
    against the ones its replay wrote, byte for byte."""
    records = replayed.tx_records(block.height)
    if records == stored:
        return
    where = f"{name_table(HISTORY_TX_RECORD)}, height {block.height}: "
    if len(stored) != len(records):
        raise AuditMismatch(block.height, where + f"{len(stored)} tx records are stored "
                                                  f"for {len(records)} transactions")
    index = next(i for i, (a, b) in enumerate(zip(stored, records, strict=True)) if a != b)
    what = where + f"transaction {index} ({block.txs[index].hash.hex()}): "
    raise AuditMismatch(block.height, what + _describe_record(stored[index], records[index]))


def _describe_record(stored: bytes, replayed: bytes) -> str:
    mine = codec.decode(replayed)
    try:
        theirs = codec.unpack_unchecked(stored)
    except ChainError:
        theirs = None
    if not isinstance(theirs, tuple) or len(theirs) != 4:
        return "the stored record does not decode"
    if theirs[1] != mine[1]:
        return f"the stored result is {theirs[1]!r}, re-execution gives {mine[1]!r}"
    if theirs[2] != mine[2]:
        return f"the stored result message is {theirs[2]!r}, re-execution gives {mine[2]!r}"
    if theirs[3] != mine[3]:
        return "the stored events differ from the ones re-execution emits"
    return "the stored record is not in canonical form"


# ------------------------------------------------------------------ chain tables


def compare_chain_tables(source: ChainStore, replayed: ChainStore,
                         last_written: dict[bytes, int]) -> None:
    """Raise AuditMismatch at the first key of a chain table whose stored value differs
    from the replayed one, or that only one side holds; then at any key in no table."""
    head = source.head_height
    for prefix in schema.CHAIN_TABLES:
        found = first_difference(read_source(_chain_items(source, prefix, head)),
                                 _chain_items(replayed, prefix, head))
        if found is not None:
            raise _describe_difference(prefix, *found, head=head, last_written=last_written)
    for prefix in (bytes([byte]) for byte in range(256)):
        stray = None if prefix in TABLES else next(read_source(source.iterate_table(prefix)),
                                                   None)
        if stray is not None:
            raise AuditMismatch(head, f"{locate(stray[0])}: stored, but no table of schema "
                                      f"{schema.SCHEMA_VERSION} has this prefix")
    if source.head_state_root != replayed.head_state_root:
        raise AuditMismatch(head, "the stored state tree root differs from the replayed one")


def _chain_items(store: ChainStore, prefix: bytes, head: int) -> Iterator[Item]:
    for key, value in store.iterate_table(prefix):
        if key not in schema.LOCAL_META_KEYS:
            yield key, value


def first_difference(stored: Iterator[Item], replayed: Iterator[Item]
                     ) -> tuple[Item | None, Item | None] | None:
    """Walk two key-ordered (key, value) streams side by side; at the first difference
    return (stored item, replayed item): (item, None) for a key only stored, (None, item)
    for a key only replayed, both for a value that differs. None when they are equal."""
    a, b = next(stored, None), next(replayed, None)
    while a is not None or b is not None:
        if a == b:
            a, b = next(stored, None), next(replayed, None)
        elif b is None or (a is not None and a[0] < b[0]):
            return a, None
        elif a is None or b[0] < a[0]:
            return None, b
        else:
            return a, b
    return None


def _describe_difference(prefix: bytes, a: Item | None, b: Item | None, *, head: int,
                         last_written: dict[bytes, int]) -> AuditMismatch:
    if prefix == schema.TX_INDEX:
        return _describe_tx_index(a, b, head)
    item = a or b
    assert item is not None
    what = _DIFFERENCES[2 if a and b else 0 if a else 1]
    if prefix == schema.STATE:
        written = last_written.get(item[0][1:])
        when = f"last written at height {written}" if written is not None \
            else "never written by any block"
        return AuditMismatch(head, f"{name_table(prefix)}, key {item[0][1:].hex()} ({when}): "
                                   f"{what}")
    return AuditMismatch(height_of(item[0], head), f"{locate(item[0])}: {what}")


def _describe_tx_index(a: Item | None, b: Item | None, head: int) -> AuditMismatch:
    """A tx index entry that differs: indexed where no block has it, missing, malformed,
    or pointing at another offset of its segment than its record's."""
    where = name_table(schema.TX_INDEX)
    item = a or b
    assert item is not None
    place = _tx_place(item[0])
    if place is None:
        return AuditMismatch(head, f"{where}, key {item[0][1:].hex()}: the stored entry is "
                                   "malformed")
    prefix, height, index = place
    what = f"{where}: transaction {prefix} at height {height} index {index}"
    if b is None:
        return AuditMismatch(height, f"{what} is indexed, but no block holds it there")
    if a is None:
        return AuditMismatch(height, f"{what} is missing from the tx index")
    return AuditMismatch(height, f"{what} is indexed at offset {a[1].hex()} of its segment, "
                                 f"its record lies at {b[1].hex()}")


def _tx_place(key: bytes) -> tuple[str, int, int] | None:
    """(hash prefix in hex, height, index) of a TX_INDEX key, or None if malformed."""
    size = schema.HEIGHT_SIZE + schema.INDEX_SIZE
    if len(key) <= 1 + size:
        return None
    return (key[1:-size].hex() + "...", *schema.decode_tx_index_key(key))


# ------------------------------------------------------------------ local tables


def check_local_tables(source: ChainStore, replayed: ChainStore) -> None:
    """Raise AuditMismatch at the first record of a local table that does not hold:
    a sign state that does not decode or lies beyond the next height, evidence whose
    votes are not two signed conflicting votes of a validator, an evidence index or
    count that does not match the evidence."""
    head = source.head_height
    _check_sign_state(dict(read_source(source.iterate_table(schema.SIGN_STATE))), head)
    evidence = list(read_source(source.iterate_table(schema.EVIDENCE)))
    for number, (key, value) in enumerate(evidence):
        if key != schema.evidence_key(number):
            raise AuditMismatch(head, f"{locate(key)}: the evidence numbers skip "
                                      f"{number}")
        problem = _check_evidence(value, source.genesis.chain_id, replayed)
        if problem:
            raise AuditMismatch(head, f"{locate(key)}: {problem}")
    _check_evidence_index(source, [value for _, value in evidence], head)


def _check_sign_state(records: dict[bytes, bytes], head: int) -> None:
    where = name_table(schema.SIGN_STATE)
    for key in records:
        if key not in (schema.sign_state_key(), schema.sign_lock_key()):
            raise AuditMismatch(head, f"{locate(key)}: not a key of this table")
    try:
        state = decode_sign_state(records.get(schema.sign_state_key()),
                                  records.get(schema.sign_lock_key()))
    except (ChainError, ValueError, TypeError) as e:
        raise AuditMismatch(head, f"{where}: does not decode ({e})") from e
    if state is not None and state.height > head + 1:
        raise AuditMismatch(head, f"{where}: records a signature at height {state.height}, "
                                  f"beyond the next height {head + 1}")


def _check_evidence(value: bytes, chain_id: str, replayed: ChainStore) -> str | None:
    """Why one evidence record does not prove an equivocation, or None."""
    try:
        first, second = (Vote.from_value(v) for v in codec.expect_tuple(
            codec.decode(value), 2, "evidence"))
    except (ChainError, ValueError) as e:
        return f"does not decode ({e})"
    if (first.kind, first.height, first.round, first.validator) != \
            (second.kind, second.height, second.round, second.validator) \
            or first.block_hash == second.block_hash:
        return "its two votes are not one validator's conflicting votes of one round"
    if not (first.is_signature_valid(chain_id) and second.is_signature_valid(chain_id)):
        return "a vote's signature does not verify"
    if first.height <= replayed.head_height + 1 and \
            not replayed.get_validator_set(first.height).is_member(first.validator):
        return f"the voter is not a validator at height {first.height}"
    return None


def _check_evidence_index(source: ChainStore, evidence: list[bytes], head: int) -> None:
    hashes = {compute_hash(value): number for number, value in enumerate(evidence)}
    if len(hashes) != len(evidence):
        raise AuditMismatch(head, f"{name_table(schema.EVIDENCE)}: holds the same evidence "
                                  "twice")
    for key, value in read_source(source.iterate_table(schema.EVIDENCE_HASH)):
        if hashes.pop(key[1:], None) is None or value:
            raise AuditMismatch(head, f"{locate(key)}: indexes no recorded evidence")
    for number in hashes.values():
        raise AuditMismatch(head, f"{name_table(schema.EVIDENCE)}, number {number}: "
                                  "missing from the evidence index")
    count = dict(read_source(source.iterate_table(schema.META_EVIDENCE_COUNT))).get(
        schema.META_EVIDENCE_COUNT)
    if count is None and not evidence:
        return
    if count is None or len(count) != schema.HEIGHT_SIZE \
            or schema.decode_height(count) != len(evidence):
        says = "nothing" if count is None else str(schema.decode_height(count)) \
            if len(count) == schema.HEIGHT_SIZE else "a malformed count"
        raise AuditMismatch(head, f"{locate(schema.META_EVIDENCE_COUNT)}: says {says}, the "
                                  f"evidence table holds {len(evidence)} records")
