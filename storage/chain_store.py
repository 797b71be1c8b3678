"""ChainStore: the node's database of blocks, certificates, txs, state and safety state.

A block's header, certificate and tx records are appended and synced to its history
segment (storage.history) first; then ONE synced LevelDB batch (its location, indexes,
state, tree buckets, next validator set, new head) makes it committed: after a crash
the store is at height h or h+1, never between, and a segment tail no head names is cut
off at open. In-memory caches move only after the batch is durable. It never executes
transactions or verifies signatures.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chain import codec
from chain.block import HEADER_VERSION, Block, BlockHeader
from chain.crypto import Hash32, compute_hash
from chain.errors import ChainError, MalformedError
from chain.genesis import Genesis
from chain.results import ResultLeaf, is_plain_events
from chain.state_proof import StateProof
from chain.tx import Transaction
from chain.vote import CommitCertificate, ValidatorSet
from storage import schema
from storage.errors import (
    AlreadyInitializedError,
    BlockMismatchError,
    GenesisMismatchError,
    InconsistentDataError,
    NotContiguousError,
    NotInitializedError,
    SchemaVersionError,
    StalePreparedStateError,
    StateRootMismatchError,
    StorageError,
    UnknownHeightError,
)
from storage.history import (
    FRAME,
    BlockLocation,
    HistoryDamagedError,
    HistoryStore,
    StoredBlock,
    get_segment,
    get_segment_last_height,
)
from storage.kv import KVStore, MemoryStore, PlyvelStore, SnapshotView, WriteBatch
from storage.state_tree import PreparedState, StateTree

RECENT_BLOCKS = 64
RECENT_TXS = 20_000
"""The decoded-block cache keeps at most RECENT_BLOCKS blocks and, beyond the head
block, at most RECENT_TXS transactions: a decoded transaction costs a few KiB, and 64
full blocks would be 640,000 of them."""

VALIDATOR_SET_CACHE_HEIGHTS = 64
"""Heights whose validator set is kept decoded between two commits. Every vote and
proposal received asks for its height's set, which is otherwise a reverse scan of the
database; a client may ask for any past height (chain_validators), hence the bound."""

HISTORY_DIR = "history"
"""The history segments' directory, inside the LevelDB data directory (LevelDB leaves
names it does not know alone)."""

FRAME_HEAD = FRAME.size

STATE_CACHE_ENTRIES = 262_144
"""Committed state values kept in memory (about 200 bytes each with the dict's own
cost): the same accounts are read at admission, in the proposer's block, and again in
every block that touches them, and a dict hit costs a fraction of a LevelDB read."""


@dataclass(frozen=True, slots=True)
class Head:
    """The latest committed height and what the next block builds on."""

    height: int
    """0 before the first block."""
    hash: Hash32
    """The head block's hash; the genesis hash at height 0."""
    timestamp_ms: int
    """The head block's timestamp; the genesis time at height 0."""
    state_root: Hash32
    """The state root after the head block (the genesis state root at height 0)."""


@dataclass(frozen=True)
class TxRecord:
    """A committed transaction, where it is, and what executing it did."""

    height: int
    """The block height holding the transaction."""
    index: int
    """Its position in the block."""
    tx: Transaction
    """The transaction."""
    code: str
    """The execution result code ("ok" or a ledger rejection code)."""
    message: str
    """The human message of the result."""
    events: Any
    """Events emitted, as canonical values."""


T = TypeVar("T")

TxResult = tuple[str, str, Any]
"""(code, message, events) of one executed transaction."""


def encode_tx_record(tx_bytes: bytes, code: str, message: str, events: Any) -> bytes:
    """`codec.encode([tx_bytes, code, message, events])`, the stored form of a tx record.

    A record whose events have the usual shape is packed as it is, after one flat check
    (`chain.results.is_plain_events`); anything else takes codec.encode (which sorts keys
    or raises), so the bytes are the same. The generic walk cost 5 % of a loaded node's
    time at commit.
    """
    record = [tx_bytes, code, message, events]
    if type(tx_bytes) is bytes and type(code) is str and type(message) is str \
            and is_plain_events(events):
        return codec.pack_unchecked(record)
    return codec.encode(record)


def _tx_bytes_of_record(raw: bytes) -> bytes:
    """The transaction bytes of a stored tx record, without the canonical checks of the
    rest of the record."""
    record = codec.unpack_unchecked(raw)
    if not isinstance(record, tuple) or len(record) != 4 or not isinstance(record[0], bytes):
        raise MalformedError("expected a tx record [tx, code, message, events]")
    return record[0]


def _result_leaf_of_record(raw: bytes) -> ResultLeaf:
    """The result leaf of a stored tx record: its tx hash, code and events hash."""
    record = codec.decode(raw)
    if not isinstance(record, tuple) or len(record) != 4 or not isinstance(record[0], bytes) \
            or not isinstance(record[1], str) or not isinstance(record[3], tuple):
        raise MalformedError("expected a tx record [tx, code, message, events]")
    return ResultLeaf.of(compute_hash(record[0]), record[1], record[3])


def _tx_of_record(raw: bytes) -> Transaction:
    """The transaction of a stored tx record, decoded and checked."""
    return Transaction.decode(_tx_bytes_of_record(raw))


class ChainStore:
    """The node's database; open with `ChainStore.open(path, genesis)`."""

    def __init__(self, kv: KVStore, genesis: Genesis, *, location: str = "memory",
                 create: bool = True, check_tree: bool = True,
                 history: HistoryStore | None = None, retain_blocks: int = 0,
                 tx_key_bytes: int = schema.TX_KEY_BYTES) -> None:
        """Use `open` or `open_memory`; this checks the store belongs to `genesis`.

        `retain_blocks` N > 0 keeps at least the last N blocks (and their tx index), whole
        history segments older than that are deleted; 0 keeps everything (archive).
        `tx_key_bytes` is how much of a tx hash its index key holds (32: all of it; for
        the benchmark of the alternatives, bench/bench_history.py)."""
        self._kv = kv
        self.genesis = genesis
        self.location = location
        self._history = history if history is not None else HistoryStore(None)
        self.retain_blocks = retain_blocks
        self._tx_key_bytes = tx_key_bytes
        self._head_location: BlockLocation | None = None
        self._pruner: threading.Thread | None = None
        self._lock = threading.RLock()
        self._prune_lock = threading.Lock()
        self._check_identity(create)
        self._base = self._read_base_height()
        self._tree = StateTree(kv)
        self._head_block: Block | None = None
        self._head: Head | None = None
        # Recently committed blocks, already decoded: sync, RPC and subscribers read the
        # newest blocks most, and rebuilding a block decodes every transaction.
        self._recent_blocks: OrderedDict[int, Block] = OrderedDict()
        self._recent_txs = 0
        # Committed state by key (None: absent), kept equal to the database: a read
        # fills it only if no block committed meanwhile (the generation did not move),
        # and each commit writes its changes into it once the batch is durable.
        self._state_cache: dict[bytes, bytes | None] = {}
        self._state_generation = 0
        self._state_cache_lock = threading.Lock()
        # height -> validator set. Correct for ever once read (only heights up to
        # head + 1 are answered, and a commit writes only head + 2's); cleared at each
        # commit anyway, so it holds the heights asked for since, at most
        # VALIDATOR_SET_CACHE_HEIGHTS of them.
        self._validator_sets: dict[int, ValidatorSet] = {}
        self._on_failure: Callable[[StorageError], None] | None = None
        if self.is_initialized:
            self._head = self._load_head()
            self._recover_history(repair=create)
            if check_tree and self._tree.root != self._head.state_root:
                raise InconsistentDataError(
                    f"the state tree in {location} has root {self._tree.root.hex()} but head "
                    f"{self._head.height} commits to {self._head.state_root.hex()}; restore "
                    "the data directory from a backup or resync from peers",
                    height=self._head.height)

    @classmethod
    def open(cls, path: str, genesis: Genesis, *, create: bool = True,
             check_tree: bool = True, retain_blocks: int = 0,
             tx_key_bytes: int = schema.TX_KEY_BYTES) -> ChainStore:
        """Open or create the LevelDB data directory `path` for the chain of `genesis`.

        With `create` False nothing is written: a database holding no govchain data is
        refused (NotInitializedError). With `check_tree` False a state tree whose root
        is not the head's is kept as it is, for the audit to compare it bucket by bucket;
        such a store must not commit blocks or serve proofs.
        """
        kv = PlyvelStore(path)
        history: HistoryStore | None = None
        try:
            history = HistoryStore(os.path.join(path, HISTORY_DIR))
            return cls(kv, genesis, location=path, create=create, check_tree=check_tree,
                       history=history, retain_blocks=retain_blocks,
                       tx_key_bytes=tx_key_bytes)
        except BaseException:
            if history is not None:
                history.close()
            kv.close()
            raise

    @classmethod
    def open_memory(cls, genesis: Genesis, kv: MemoryStore | None = None, *,
                    retain_blocks: int = 0) -> ChainStore:
        """A store in memory, for the deterministic simulation only; with `kv`, the store
        over that data (a simulated node reopening its database after a crash: its
        history segments are kept beside its keys, `MemoryStore.segments`)."""
        kv = kv if kv is not None else MemoryStore()
        return cls(kv, genesis, history=HistoryStore(None, memory=kv.segments),
                   retain_blocks=retain_blocks)

    def close(self) -> None:
        pruner = self._pruner
        if pruner is not None:
            pruner.join()
        with self._lock:
            self._history.close()
            self._kv.close()

    def set_failure_listener(self, listener: Callable[[StorageError], None]) -> None:
        """Tell `listener` of every failed read or write and of every damaged record
        found, from whichever thread met it, before the error is raised."""
        self._on_failure = listener
        if isinstance(self._kv, PlyvelStore):
            self._kv.on_failure = listener

    def _damaged(self, message: str, height: int | None = None) -> InconsistentDataError:
        error = InconsistentDataError(message, height=height)
        if self._on_failure is not None:
            self._on_failure(error)
        return error

    def write_snapshot(self, path: str) -> int:
        """Copy the database as of one committed block into a new directory `path`
        (blocks are committed in one batch, so a snapshot is never between two);
        returns the number of keys copied."""
        if not isinstance(self._kv, PlyvelStore):
            raise StorageError("only a LevelDB store can be snapshotted")
        # Pruning waits (its lock): a segment the copied head still names must not go
        # between the LevelDB copy and the file copy. Bytes a segment gains meanwhile
        # lie beyond the copied head: the copy's first open cuts them off.
        with self._prune_lock:
            copied = self._kv.copy_snapshot_to(path)
            target = HistoryStore(os.path.join(path, HISTORY_DIR))
            for segment in self._history.list_segments():
                self._history.copy_segment_to(segment, target)
            target.close()
        return copied

    # -- identity and genesis -------------------------------------------------

    def _check_identity(self, create: bool) -> None:
        stored_genesis = self._kv.get(schema.META_GENESIS_HASH)
        stored_version = self._kv.get(schema.META_SCHEMA_VERSION)
        if stored_genesis is None:
            if next(self._kv.iterate(b""), None) is not None:
                raise InconsistentDataError(
                    f"the database in {self.location} has data but no genesis hash; it is "
                    "not a govchain data directory or is damaged: choose an empty directory")
            if not create:
                raise NotInitializedError(f"the database in {self.location} holds no "
                                          "govchain data")
            batch = WriteBatch(self._kv)
            batch.put(schema.META_SCHEMA_VERSION, schema.SCHEMA_VERSION.to_bytes(4, "big"))
            batch.put(schema.META_GENESIS_HASH, self.genesis.hash)
            self._kv.write(batch)
            return
        if stored_genesis != self.genesis.hash:
            raise GenesisMismatchError(
                f"the data directory {self.location} belongs to the chain with genesis hash "
                f"{stored_genesis.hex()}, but this node's genesis hash is "
                f"{self.genesis.hash.hex()}; use the genesis file of that chain or another "
                "data directory")
        version = int.from_bytes(stored_version or b"", "big")
        if version < schema.RESULTS_ROOT_SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the data directory {self.location} uses storage schema {version}: a chain "
                "of block header version 1, written before headers committed to transaction "
                f"results (results_root); this node reads header version {HEADER_VERSION} "
                "only. The block hashes change with the header, so the chain cannot be "
                "migrated: re-create the chain from its genesis on every validator (a new "
                "data directory), and re-sync full nodes from it (docs/storage.md, "
                "\"Upgrading to header version 2\")")
        if version != schema.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the data directory {self.location} uses storage schema {version}, this "
                f"node reads schema {schema.SCHEMA_VERSION}; run a matching node version")

    @property
    def is_initialized(self) -> bool:
        """True once the genesis state has been committed."""
        return self._kv.get(schema.META_GENESIS_STATE_ROOT) is not None

    def commit_genesis(self, changes: Mapping[bytes, bytes | None],
                       validator_set: ValidatorSet) -> Hash32:
        """Commit the genesis state and validator set; return the genesis state root."""
        with self._lock:
            if self.is_initialized:
                raise AlreadyInitializedError(
                    f"the genesis state of {self.location} is already committed")
            prepared = self._tree.prepare(changes)
            batch = WriteBatch(self._kv)
            prepared.apply_to(batch)
            batch.put(schema.validator_set_key(0), codec.encode(validator_set.to_value()))
            batch.put(schema.META_GENESIS_STATE_ROOT, prepared.root)
            batch.put(schema.META_HEAD_HEIGHT, schema.encode_height(0))
            self._kv.write(batch, sync=True)
            self._update_state_cache(prepared.changes)
            self._tree.on_committed(prepared)
            self._head = Head(0, self.genesis.hash, self.genesis.genesis_time_ms, prepared.root)
            return prepared.root

    # -- head -------------------------------------------------------------------

    def _load_head(self) -> Head:
        raw_height = self._kv.get(schema.META_HEAD_HEIGHT)
        genesis_root = self._kv.get(schema.META_GENESIS_STATE_ROOT)
        if raw_height is None or genesis_root is None:
            raise InconsistentDataError(f"the head of {self.location} is missing")
        if len(raw_height) != schema.HEIGHT_SIZE:
            raise InconsistentDataError(f"the head height of {self.location} is malformed")
        height = schema.decode_height(raw_height)
        if height == 0:
            return Head(0, self.genesis.hash, self.genesis.genesis_time_ms, Hash32(genesis_root))
        header = self.get_block_header(height)
        if header is None:
            raise InconsistentDataError(
                f"the head block {height} of {self.location} is missing; restore the data "
                "directory from a backup or resync from peers", height=height)
        return Head(height, header.hash, header.timestamp_ms, header.state_root)

    @property
    def head(self) -> Head:
        if self._head is None:
            raise NotInitializedError(
                f"the genesis state of {self.location} is not committed yet")
        return self._head

    @property
    def head_height(self) -> int:
        return self.head.height

    @property
    def head_hash(self) -> Hash32:
        return self.head.hash

    @property
    def head_timestamp_ms(self) -> int:
        return self.head.timestamp_ms

    @property
    def head_state_root(self) -> Hash32:
        return self.head.state_root

    def head_block(self) -> Block | None:
        """The head block, or None at height 0."""
        head = self.head
        if head.height == 0:
            return None
        block = self._head_block
        if block is None or block.height != head.height:
            block = self.get_block(head.height)
            self._head_block = block
        return block

    # -- history segments -------------------------------------------------------

    @property
    def base_height(self) -> int:
        """The lowest height whose block is held here: 1 on a store that holds every
        block (archive), higher once pruning deleted older segments (`retain_blocks`) or
        when the store was restored by state sync at height H (then H + 1: block H's
        state is here, its body is not). Below it only the proven headers are kept
        (`get_block_header`); every reader answers "pruned below height base_height"."""
        return self._base

    def _read_base_height(self) -> int:
        raw = self._kv.get(schema.META_BASE_HEIGHT)
        if raw is None:
            return 1
        if len(raw) != schema.HEIGHT_SIZE:
            raise self._damaged(f"the base height of {self.location} is malformed")
        return schema.decode_height(raw)

    def _get_proven_header(self, height: int) -> tuple[bytes, bytes] | None:
        """(header, certificate) bytes kept for `height` below the base height."""
        raw = self._kv.get(schema.proven_header_key(height))
        if raw is None:
            return None
        return self._decode(_decode_proven_header, raw, "proven header", height)

    def _get_location(self, height: int) -> BlockLocation | None:
        raw = self._kv.get(schema.block_location_key(height))
        if raw is None:
            return None
        try:
            return BlockLocation.decode(height, raw)
        except StorageError as e:
            raise self._damaged(f"{e.message} in {self.location}", height) from e

    def _recover_history(self, *, repair: bool) -> None:
        """Make the segments agree with the committed head: cut off a block appended whose
        batch never landed, delete segments pruning left behind (only with `repair`: the
        audit's open writes nothing, and ignores them); refuse a segment that is missing
        or shorter than the blocks it holds (HistoryDamagedError, naming it)."""
        head, base = self.head.height, self.base_height
        present = self._history.list_segments()
        # A state-synced store holds no block before its first commit (head < base).
        first, last = (get_segment(base), get_segment(head)) if head >= base else (0, -1)
        for segment in present:
            if repair and (segment < first or segment > last):
                self._history.delete_segment(segment)
        for segment in range(first, last + 1):
            top = min(get_segment_last_height(segment), head)
            location = self._get_location(top)
            if location is None:
                raise self._damaged(f"the location of block {top} is missing in "
                                    f"{self.location}", top)
            size = self._history.get_size(segment)
            if size < location.end or (size > location.end and segment != last):
                raise self._history_damaged(segment, top, size, location.end)
            if size > location.end and repair:
                self._history.truncate(segment, location.end)
        if head >= base:
            self._head_location = self._get_location(head)
            self._read_stored(head)  # the newest frames, the likeliest torn: checked now

    def _history_damaged(self, segment: int, height: int, size: int,
                         end: int) -> HistoryDamagedError:
        path = self._history.path_of(segment)
        what = "it is missing" if size == 0 else f"it holds {size:,} bytes"
        error = HistoryDamagedError(
            f"the history segment {path} is damaged: {what}, its blocks up to {height} end "
            f"at {end:,} bytes; restore the data directory from a backup or resync from "
            "peers (docs/reliability.md, \"Storage faults\")", file=path, height=height)
        if self._on_failure is not None:
            self._on_failure(error)
        return error

    def _read_stored(self, height: int) -> StoredBlock | None:
        location = self._get_location(height)
        if location is None:
            return None
        try:
            return self._history.read_block(location)
        except HistoryDamagedError as e:
            self._raise_unless_pruned(e, height)
            return None

    def _read_frame(self, height: int, offset: int, limit: int) -> bytes | None:
        try:
            return self._history.read_frame(height, offset, limit=limit)
        except HistoryDamagedError as e:
            self._raise_unless_pruned(e, height)
            return None

    def _raise_unless_pruned(self, error: HistoryDamagedError, height: int) -> None:
        """Return when `height` was pruned while it was being read (its segment went
        between the location read and the file read): not damage, the block is just
        gone. Otherwise tell the failure listener of the damage and raise it."""
        if height < self.base_height:
            return
        if self._on_failure is not None:
            self._on_failure(error)
        raise error

    # -- pruning ----------------------------------------------------------------

    def _start_pruning(self, keep_from: int) -> None:
        """Prune in a thread of its own once a whole segment lies below `keep_from`:
        reading a segment's transactions for their index keys takes seconds, which the
        commit path must not wait for."""
        if get_segment_last_height(get_segment(self.base_height)) >= keep_from:
            return
        if self._pruner is not None and self._pruner.is_alive():
            return
        self._pruner = threading.Thread(target=self._prune_quietly, args=(keep_from,),
                                        name="history-pruner", daemon=True)
        self._pruner.start()

    def _prune_quietly(self, keep_from: int) -> None:
        # A failure is told to the failure listener already; the next block tries again.
        with contextlib.suppress(StorageError):
            self.prune(keep_from)

    def prune(self, keep_from: int) -> int:
        """Delete every whole segment of blocks below `keep_from` with their index
        entries, then compact LevelDB over what was removed so the disk is freed; return
        the new base height. The blocks from `keep_from` on (and the state) stay."""
        with self._prune_lock:
            pruned = False
            segment = get_segment(self.base_height)
            while get_segment_last_height(segment) < min(keep_from, self.head.height + 1):
                self._prune_segment(segment)
                pruned, segment = True, segment + 1
            if pruned and isinstance(self._kv, PlyvelStore):
                for prefix in (schema.TX_INDEX, schema.BLOCK_LOCATION, schema.BLOCK_HASH):
                    self._kv.compact_prefix(prefix)
            return self.base_height

    def _prune_segment(self, segment: int) -> None:
        """Remove one segment: its index entries and new base in one batch first (after a
        crash the file is an orphan that the next open deletes), then the file.

        The header and certificate of each pruned height after which the validator set
        changes, and of the segment's last height, stay as proven headers: the same
        trust chain a state-sync restore keeps, which light clients and joining nodes
        walk (node.snapshots) and the audit checks (node.ops.statesync_audit)."""
        first = 1 if segment == 0 else get_segment_last_height(segment - 1) + 1
        last = get_segment_last_height(segment)
        base = self.base_height
        changes = {height - 1 for height, _ in
                   self.iterate_validator_set_changes(max(first, base) + 1, last + 1)}
        batch = WriteBatch(self._kv)
        if base > 1 and not self._is_set_change(base):
            batch.delete(schema.proven_header_key(base - 1))  # the old base's parent
        for height in range(max(first, base), last + 1):
            stored = self._read_stored(height)
            if stored is None:
                raise self._damaged(f"block {height} is missing in {self.location}", height)
            header = self._decode(BlockHeader.decode, stored.header, "header", height)
            if height in changes or height == last:
                batch.put(schema.proven_header_key(height),
                          codec.encode([stored.header, stored.certificate]))
            batch.delete(schema.block_hash_key(header.hash))
            batch.delete(schema.block_location_key(height))
            for index, raw in enumerate(stored.tx_records):
                tx_bytes = self._decode(_tx_bytes_of_record, raw, f"tx record {index}", height)
                batch.delete(schema.tx_index_key(compute_hash(tx_bytes), height, index,
                                                 self._tx_key_bytes))
        batch.put(schema.META_BASE_HEIGHT, schema.encode_height(last + 1))
        self._kv.write(batch, sync=True)
        with self._lock:
            self._base = last + 1
            for height in range(first, last + 1):
                dropped = self._recent_blocks.pop(height, None)
                if dropped is not None:
                    self._recent_txs -= len(dropped.txs)
        self._history.delete_segment(segment)

    def _is_set_change(self, height: int) -> bool:
        """True if a new validator set certifies from `height` on."""
        return self._kv.get(schema.validator_set_key(height)) is not None

    @property
    def history_disk_bytes(self) -> int:
        """Bytes of the history segments on disk."""
        return self._history.get_disk_bytes()

    # -- state --------------------------------------------------------------------

    def get_state(self, key: bytes) -> bytes | None:
        """The value of `key` in the latest committed state."""
        cache = self._state_cache
        try:
            return cache[key]
        except KeyError:
            pass
        generation = self._state_generation
        value = self._kv.get(schema.state_key(key))
        with self._state_cache_lock:
            if generation == self._state_generation:
                if len(cache) >= STATE_CACHE_ENTRIES:
                    self._trim_state_cache()
                cache[key] = value
        return value

    def _trim_state_cache(self) -> None:
        """Drop the older half of the cache (dicts keep insertion order)."""
        cache = self._state_cache
        for key in list(itertools.islice(cache, len(cache) // 2)):
            del cache[key]

    def _update_state_cache(self, changes: Mapping[bytes, bytes | None]) -> None:
        """After the batch holding `changes` is durable: readers that started before it
        will not fill the cache, and the changed keys hold their new values."""
        with self._state_cache_lock:
            self._state_generation += 1
            self._state_cache.update(changes)
            if len(self._state_cache) >= STATE_CACHE_ENTRIES:
                self._trim_state_cache()

    def iterate_state(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of the latest committed state under `prefix`, in key order."""
        strip = len(schema.STATE)
        for key, value in self._kv.iterate(schema.state_key(prefix)):
            yield key[strip:], value

    def get_state_proof(self, key: bytes) -> StateProof:
        """Proof of `key`'s value (or absence) against the head's state root."""
        with self._lock:
            return self._tree.get_proof(key, height=self.head.height)

    def compute_state_root(self, changes: Mapping[bytes, bytes | None]) -> Hash32:
        """The state root after applying `changes` to the head state; commits nothing."""
        return self.prepare_state(changes).root

    def prepare_state(self, changes: Mapping[bytes, bytes | None]) -> PreparedState:
        """Speculatively prepare `changes` on the head state (see commit_block)."""
        with self._lock:
            self.head  # noqa: B018 - raises NotInitializedError before genesis
            return self._tree.prepare(changes)

    # -- blocks -------------------------------------------------------------------

    def commit_block(self, block: Block, certificate: CommitCertificate,
                     changes: Mapping[bytes, bytes | None], tx_results: Sequence[TxResult],
                     next_validator_set: ValidatorSet | None,
                     prepared: PreparedState | None = None) -> None:
        """Make `block` the new head, with everything it brings, in one synced batch."""
        with self._lock:
            head = self.head
            self._validate_extends_head(block, head)
            self._validate_certificate_matches(block, certificate)
            if len(tx_results) != len(block.txs):
                raise BlockMismatchError(
                    f"block {block.height} has {len(block.txs)} transactions but "
                    f"{len(tx_results)} results were given")
            prepared = self._validate_prepared(prepared, changes)
            if block.header.state_root != prepared.root:
                raise StateRootMismatchError(
                    f"block {block.height} header state root {block.header.state_root.hex()} "
                    f"differs from the root of its changes {prepared.root.hex()}")
            vset_change = self._validate_validator_sets(block, next_validator_set)

            batch = WriteBatch(self._kv)
            location = self._add_block_to(batch, block, certificate, tx_results)
            if vset_change is not None:
                batch.put(schema.validator_set_key(block.height + 1),
                          codec.encode(vset_change.to_value()))
            prepared.apply_to(batch)
            batch.put(schema.META_HEAD_HEIGHT, schema.encode_height(block.height))
            self._kv.write(batch, sync=True)

            self._update_state_cache(prepared.changes)
            self._tree.on_committed(prepared)
            self._head_block = block
            self._remember_block(block)
            self._head = Head(block.height, block.hash, block.header.timestamp_ms,
                              block.header.state_root)
            self._validator_sets.clear()
            self._head_location = location
            if self.retain_blocks:
                self._start_pruning(block.height - self.retain_blocks + 1)

    def _remember_block(self, block: Block) -> None:
        self._recent_blocks[block.height] = block
        self._recent_txs += len(block.txs)
        while len(self._recent_blocks) > 1 and (len(self._recent_blocks) > RECENT_BLOCKS
                                                or self._recent_txs > RECENT_TXS):
            _, oldest = self._recent_blocks.popitem(last=False)
            self._recent_txs -= len(oldest.txs)

    def _validate_extends_head(self, block: Block, head: Head) -> None:
        if block.height != head.height + 1:
            raise NotContiguousError(
                f"block {block.height} does not follow the head {head.height}; "
                f"commit block {head.height + 1} first")
        if block.header.prev_hash != head.hash:
            raise NotContiguousError(
                f"block {block.height} names parent {block.header.prev_hash.hex()} but the "
                f"head {head.height} is {head.hash.hex()}")

    def _validate_certificate_matches(self, block: Block,
                                      certificate: CommitCertificate) -> None:
        if certificate.height != block.height or certificate.block_hash != block.hash:
            raise BlockMismatchError(
                f"the certificate for height {certificate.height} block "
                f"{certificate.block_hash.hex()} does not certify block {block.height} "
                f"{block.hash.hex()}")

    def _validate_prepared(self, prepared: PreparedState | None,
                           changes: Mapping[bytes, bytes | None]) -> PreparedState:
        if prepared is None:
            return self._tree.prepare(changes)
        if prepared.base_root != self._tree.root:
            raise StalePreparedStateError(
                "the prepared state was computed on another state root than the head's; "
                "prepare the block's changes again")
        if prepared.changes != changes:
            raise BlockMismatchError("the prepared state holds other changes than given")
        return prepared

    def _validate_validator_sets(self, block: Block,
                                 next_validator_set: ValidatorSet | None) -> ValidatorSet | None:
        """Check the header's validator set hashes; return the set to store, if new."""
        current = self.get_validator_set(block.height)
        if block.header.validator_set_hash != current.hash:
            raise BlockMismatchError(
                f"block {block.height} names validator set {block.header.validator_set_hash.hex()}"
                f" but the set certifying this height is {current.hash.hex()}")
        following = current if next_validator_set is None else next_validator_set
        if block.header.next_validator_set_hash != following.hash:
            raise BlockMismatchError(
                f"block {block.height} names next validator set "
                f"{block.header.next_validator_set_hash.hex()} but the next set given is "
                f"{following.hash.hex()}")
        return None if following.hash == current.hash else following

    def _add_block_to(self, batch: WriteBatch, block: Block, certificate: CommitCertificate,
                      tx_results: Sequence[TxResult]) -> BlockLocation:
        """Append and sync the block's frames to its segment; put its location and index
        entries in `batch`, which commits them."""
        height = block.height
        records = [encode_tx_record(tx.encoded, code, message, events)
                   for tx, (code, message, events) in zip(block.txs, tx_results, strict=True)]
        previous = self._head_location
        same_segment = previous is not None and get_segment(previous.height) == get_segment(height)
        offset = previous.end if same_segment and previous is not None else 0
        location, offsets = self._history.append_block(
            height, block.header.encoded, certificate.encoded, records, offset=offset)
        batch.put(schema.block_location_key(height), location.encode())
        batch.put(schema.block_hash_key(block.hash), schema.encode_height(height))
        key_bytes = self._tx_key_bytes
        for index, (tx, frame) in enumerate(zip(block.txs, offsets, strict=True)):
            batch.put(schema.tx_index_key(tx.hash, height, index, key_bytes),
                      frame.to_bytes(schema.OFFSET_SIZE, "big"))
        return location

    # -- reads ------------------------------------------------------------------

    def get_block_header(self, height: int) -> BlockHeader | None:
        """The header at `height`: of a held block, or a proven one below the base
        height (a validator set change's, the last pruned or state-synced height's)."""
        location = self._get_location(height)
        raw = None if location is None else self._read_frame(height, location.offset,
                                                             location.end)
        if raw is None:
            proven = self._get_proven_header(height)
            raw = None if proven is None else proven[0]
        return None if raw is None else self._decode(BlockHeader.decode, raw, "header", height)

    def get_block(self, height: int) -> Block | None:
        """The block at `height` (base_height ... head), or None."""
        recent = self._recent_blocks.get(height)
        if recent is not None:
            return recent
        stored = self._read_stored(height)
        if stored is None:
            return None
        header = self._decode(BlockHeader.decode, stored.header, "header", height)
        txs = [self._decode_tx_record(raw, height, index).tx
               for index, raw in enumerate(stored.tx_records)]
        return Block(header, tuple(txs))

    def get_block_bytes(self, height: int) -> bytes | None:
        """The canonical encoding of the block at `height` (what `get_block(height).encoded`
        gives), or None; built from the stored transaction bytes without decoding the
        transactions, for serving peers that sync (they check everything themselves)."""
        recent = self._recent_blocks.get(height)
        if recent is not None:
            return recent.encoded
        stored = self._read_stored(height)
        if stored is None:
            return None
        header = self._decode(BlockHeader.decode, stored.header, "header", height)
        txs = [self._decode(_tx_bytes_of_record, raw, f"tx record {index}", height)
               for index, raw in enumerate(stored.tx_records)]
        return codec.encode([header.to_value(), txs])

    def get_block_with_records(self, height: int) -> tuple[Block, list[bytes]] | None:
        """The block at `height` and the stored bytes of each of its tx records, read in
        one pass (audit), or None. Only the transactions are decoded and checked: the
        caller compares the records whole with canonical ones (`tx_records`)."""
        stored = self._read_stored(height)
        if stored is None:
            return None
        header = self._decode(BlockHeader.decode, stored.header, "header", height)
        txs = [self._decode(_tx_of_record, raw, f"tx record {index}", height)
               for index, raw in enumerate(stored.tx_records)]
        return Block(header, tuple(txs)), list(stored.tx_records)

    def tx_records(self, height: int) -> list[bytes]:
        """The stored bytes of the tx records of block `height`, in block order."""
        stored = self._read_stored(height)
        return [] if stored is None else list(stored.tx_records)

    def get_result_leaves(self, height: int) -> list[ResultLeaf]:
        """The result leaf of each stored tx record of block `height`, in block order
        (chain.results): what the header's results_root must be the root of."""
        return [self._decode(_result_leaf_of_record, raw, f"tx record {index}", height)
                for index, raw in enumerate(self.tx_records(height))]

    def iterate_tx_index(self) -> Iterator[tuple[bytes, tuple[int, int]]]:
        """(tx hash prefix, (height, index)) of every indexed transaction, in key order."""
        start, size = len(schema.TX_INDEX), schema.HEIGHT_SIZE + schema.INDEX_SIZE
        for key, offset in self._kv.iterate(schema.TX_INDEX):
            if len(key) <= start + size or len(offset) != schema.OFFSET_SIZE:
                raise self._damaged(f"the tx index entry {key.hex()} is malformed")
            yield key[start:-size], schema.decode_tx_index_key(key)

    def get_block_by_hash(self, block_hash: bytes) -> Block | None:
        raw = self._kv.get(schema.block_hash_key(block_hash))
        return None if raw is None else self.get_block(schema.decode_height(raw))

    def get_certificate(self, height: int) -> CommitCertificate | None:
        """The commit certificate at `height`, where `get_block_header` has a header."""
        location = self._get_location(height)
        header = None if location is None else self._read_frame(height, location.offset,
                                                                location.end)
        raw = None if header is None or location is None else self._read_frame(
            height, location.offset + FRAME_HEAD + len(header), location.end)
        if raw is None:
            proven = self._get_proven_header(height)
            raw = None if proven is None else proven[1]
        return None if raw is None else self._decode(
            CommitCertificate.decode, raw, "certificate", height)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index) of an indexed transaction."""
        found = self._find_tx(tx_hash)
        return None if found is None else found[:2]

    def get_tx(self, tx_hash: bytes) -> TxRecord | None:
        """The indexed transaction with `tx_hash` and its result, or None (never
        committed, or pruned: below `base_height`)."""
        found = self._find_tx(tx_hash)
        if found is None:
            return None
        height, index, raw = found
        return self._decode_tx_record(raw, height, index)

    def _find_tx(self, tx_hash: bytes) -> tuple[int, int, bytes] | None:
        """(height, index, stored record) of `tx_hash`: the index entries sharing its
        prefix are few (almost always one), each record's hash tells which it is."""
        for key, value in self._kv.iterate(schema.tx_index_prefix(tx_hash, self._tx_key_bytes)):
            height, index = schema.decode_tx_index_key(key)
            location = self._get_location(height)
            if location is None:
                raise self._damaged(
                    f"tx {tx_hash.hex()} is indexed at block {height} but that block is not "
                    f"held in {self.location}; restore from a backup or resync from peers",
                    height)
            raw = self._read_frame(height, int.from_bytes(value, "big"), location.end)
            if raw is None:
                return None  # pruned meanwhile
            tx_bytes = self._decode(_tx_bytes_of_record, raw, f"tx record {index}", height)
            if self._tx_key_bytes >= len(tx_hash) or compute_hash(tx_bytes) == tx_hash:
                return height, index, raw
        return None

    def get_validator_set(self, height: int) -> ValidatorSet:
        """The validator set that certifies `height` (0 ... head + 1)."""
        if height > self.head.height + 1:
            raise UnknownHeightError(
                f"the validator set of height {height} is not known yet; the head is "
                f"{self.head.height}")
        cached = self._validator_sets.get(height)
        if cached is not None:
            return cached
        validator_set = self._read_validator_set(height)
        if len(self._validator_sets) >= VALIDATOR_SET_CACHE_HEIGHTS:
            self._validator_sets.clear()
        self._validator_sets[height] = validator_set
        return validator_set

    def _read_validator_set(self, height: int) -> ValidatorSet:
        start = schema.validator_set_key(height)
        for _, raw in self._kv.iterate(schema.VALIDATOR_SET, start=start, reverse=True):
            return self._decode(_decode_validator_set, raw, "validator set", height)
        raise InconsistentDataError(f"no validator set is stored in {self.location}",
                                    height=height)

    def iterate_table(self, prefix: bytes, *, start: bytes | None = None
                      ) -> Iterator[tuple[bytes, bytes]]:
        """Every stored (key, value) under `prefix` (from `start` on) as it is on disk, in
        key order: for the audit, which compares whole tables with its replay's."""
        return self._kv.iterate(prefix, start=start)

    def _decode_tx_record(self, raw: bytes, height: int, index: int) -> TxRecord:
        def decode(data: bytes) -> TxRecord:
            tx_bytes, code, message, events = codec.expect_tuple(
                codec.decode(data), 4, "tx record")
            return TxRecord(height, index, Transaction.decode(tx_bytes), code, message, events)
        return self._decode(decode, raw, f"tx record {index}", height)

    def _decode(self, decode: Callable[[bytes], T], raw: bytes, what: str, height: int) -> T:
        try:
            return decode(raw)
        except ChainError as e:
            raise self._damaged(
                f"the stored {what} of height {height} in {self.location} does not decode "
                f"({e.message}); restore from a backup or resync from peers", height) from e

    # -- consensus safety ---------------------------------------------------------

    def load_sign_state(self) -> bytes | None:
        """The signer's last persisted sign state, opaque to storage."""
        return self._kv.get(schema.sign_state_key())

    def load_sign_lock(self) -> bytes | None:
        """The signer's persisted lock (block and proof of lock), opaque to storage."""
        return self._kv.get(schema.sign_lock_key())

    def save_sign_state(self, value: bytes, lock: bytes | None = None) -> None:
        """Durably record the sign state (and the lock, when it changed) in one batch;
        returns only once it is synced to disk."""
        with self._lock:
            batch = WriteBatch(self._kv)
            batch.put(schema.sign_state_key(), value)
            if lock is not None:
                batch.put(schema.sign_lock_key(), lock)
            self._kv.write(batch, sync=True)

    def add_evidence(self, encoded: bytes) -> bool:
        """Record evidence of misbehaviour once; False if it was already recorded."""
        with self._lock:
            evidence_hash = compute_hash(encoded)
            if self._kv.get(schema.evidence_hash_key(evidence_hash)) is not None:
                return False
            raw_count = self._kv.get(schema.META_EVIDENCE_COUNT)
            count = 0 if raw_count is None else schema.decode_height(raw_count)
            batch = WriteBatch(self._kv)
            batch.put(schema.evidence_key(count), encoded)
            batch.put(schema.evidence_hash_key(evidence_hash), b"")
            batch.put(schema.META_EVIDENCE_COUNT, schema.encode_height(count + 1))
            self._kv.write(batch, sync=True)
            return True

    def list_evidence(self) -> list[bytes]:
        """All recorded evidence, oldest first."""
        return [value for _, value in self._kv.iterate(schema.EVIDENCE)]

    # -- state sync (docs/state-sync.md) ------------------------------------------

    def open_state_view(self) -> tuple[Head, SnapshotView]:
        """The head and a point-in-time view of the database at that head, taken
        between two commits; the caller closes the view."""
        with self._lock:
            open_view = getattr(self._kv, "open_view", None)
            if open_view is None:
                raise StorageError("this store cannot give a point-in-time view")
            view: SnapshotView = open_view()
            return self.head, view

    def iterate_validator_set_changes(self, first: int, last: int
                                      ) -> Iterator[tuple[int, ValidatorSet]]:
        """(height, set) of each validator set stored at a height in [first, last]: the
        heights from which a new set certifies blocks."""
        for key, raw in self._kv.iterate(schema.VALIDATOR_SET,
                                         start=schema.validator_set_key(first)):
            height = schema.decode_height(key[len(schema.VALIDATOR_SET):])
            if height > last:
                return
            yield height, self._decode(_decode_validator_set, raw, "validator set", height)


def _decode_proven_header(raw: bytes) -> tuple[bytes, bytes]:
    value = codec.decode(raw)
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(part, bytes) for part in value)):
        raise MalformedError("a proven header is [header, certificate]")
    return value[0], value[1]


def _decode_validator_set(raw: bytes) -> ValidatorSet:
    return ValidatorSet.from_value(codec.decode(raw))
