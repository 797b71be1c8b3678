"""ChainStore: the node's database of blocks, certificates, txs, state and safety state.

Each block is committed in ONE synced write batch (block, certificate, indexes, tx
results, state, tree buckets, next validator set, new head): after a crash the
store is at height h or h+1, never between. In-memory caches (head, tree) move only
after the batch is durable. It never executes transactions or verifies signatures.
"""

from __future__ import annotations

import itertools
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
                 create: bool = True, check_tree: bool = True) -> None:
        """Use `open` or `open_memory`; this checks the store belongs to `genesis`."""
        self._kv = kv
        self.genesis = genesis
        self.location = location
        self._lock = threading.RLock()
        self._check_identity(create)
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
            if check_tree and self._tree.root != self._head.state_root:
                raise InconsistentDataError(
                    f"the state tree in {location} has root {self._tree.root.hex()} but head "
                    f"{self._head.height} commits to {self._head.state_root.hex()}; restore "
                    "the data directory from a backup or resync from peers",
                    height=self._head.height)

    @classmethod
    def open(cls, path: str, genesis: Genesis, *, create: bool = True,
             check_tree: bool = True) -> ChainStore:
        """Open or create the LevelDB data directory `path` for the chain of `genesis`.

        With `create` False nothing is written: a database holding no govchain data is
        refused (NotInitializedError). With `check_tree` False a state tree whose root
        is not the head's is kept as it is, for the audit to compare it bucket by bucket;
        such a store must not commit blocks or serve proofs.
        """
        kv = PlyvelStore(path)
        try:
            return cls(kv, genesis, location=path, create=create, check_tree=check_tree)
        except BaseException:
            kv.close()
            raise

    @classmethod
    def open_memory(cls, genesis: Genesis, kv: MemoryStore | None = None) -> ChainStore:
        """A store in memory, for the deterministic simulation only; with `kv`, the store
        over that data (a simulated node reopening its database after a crash)."""
        return cls(kv if kv is not None else MemoryStore(), genesis)

    def close(self) -> None:
        with self._lock:
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
        return self._kv.copy_snapshot_to(path)

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
                f"the data directory {self.location} holds a chain of block header version 1, "
                f"written before headers committed to transaction results (results_root); "
                f"this node reads header version {HEADER_VERSION} only. The block hashes "
                "change with the header, so the chain cannot be migrated: re-create the chain "
                "from its genesis on every validator (a new data directory), and re-sync full "
                "nodes from it (docs/storage.md, \"Upgrading to header version 2\")")
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
            self._add_block_to(batch, block, certificate, tx_results)
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
                      tx_results: Sequence[TxResult]) -> None:
        height = block.height
        batch.put(schema.block_header_key(height), block.header.encoded)
        batch.put(schema.block_hash_key(block.hash), schema.encode_height(height))
        batch.put(schema.certificate_key(height), certificate.encoded)
        for index, (tx, (code, message, events)) in enumerate(
                zip(block.txs, tx_results, strict=True)):
            batch.put(schema.tx_hash_key(tx.hash), schema.tx_location(height, index))
            batch.put(schema.tx_record_key(height, index),
                      encode_tx_record(tx.encoded, code, message, events))

    # -- reads ------------------------------------------------------------------

    def get_block_header(self, height: int) -> BlockHeader | None:
        raw = self._kv.get(schema.block_header_key(height))
        return None if raw is None else self._decode(BlockHeader.decode, raw, "header", height)

    def get_block(self, height: int) -> Block | None:
        """The block at `height` (1 ... head), or None."""
        recent = self._recent_blocks.get(height)
        if recent is not None:
            return recent
        header = self.get_block_header(height)
        if header is None:
            return None
        txs: list[Transaction] = []
        for _, raw in self._kv.iterate(schema.tx_record_prefix(height)):
            txs.append(self._decode_tx_record(raw, height, len(txs)).tx)
        return Block(header, tuple(txs))

    def get_block_bytes(self, height: int) -> bytes | None:
        """The canonical encoding of the block at `height` (what `get_block(height).encoded`
        gives), or None; built from the stored transaction bytes without decoding the
        transactions, for serving peers that sync (they check everything themselves)."""
        recent = self._recent_blocks.get(height)
        if recent is not None:
            return recent.encoded
        header = self.get_block_header(height)
        if header is None:
            return None
        txs = [self._decode(_tx_bytes_of_record, raw, f"tx record {index}", height)
               for index, (_, raw) in enumerate(
                   self._kv.iterate(schema.tx_record_prefix(height)))]
        return codec.encode([header.to_value(), txs])

    def get_block_with_records(self, height: int) -> tuple[Block, list[bytes]] | None:
        """The block at `height` and the stored bytes of each of its tx records, read in
        one pass (audit), or None. Only the transactions are decoded and checked: the
        caller compares the records whole with canonical ones (`tx_records`)."""
        header = self.get_block_header(height)
        if header is None:
            return None
        txs: list[Transaction] = []
        records: list[bytes] = []
        for _, raw in self._kv.iterate(schema.tx_record_prefix(height)):
            txs.append(self._decode(_tx_of_record, raw, f"tx record {len(txs)}", height))
            records.append(raw)
        return Block(header, tuple(txs)), records

    def tx_records(self, height: int) -> list[bytes]:
        """The stored bytes of the tx records of block `height`, in block order."""
        return [raw for _, raw in self._kv.iterate(schema.tx_record_prefix(height))]

    def get_result_leaves(self, height: int) -> list[ResultLeaf]:
        """The result leaf of each stored tx record of block `height`, in block order
        (chain.results): what the header's results_root must be the root of."""
        return [self._decode(_result_leaf_of_record, raw, f"tx record {index}", height)
                for index, (_, raw) in enumerate(
                    self._kv.iterate(schema.tx_record_prefix(height)))]

    def iterate_tx_index(self) -> Iterator[tuple[bytes, tuple[int, int]]]:
        """(tx hash, (height, index)) of every committed transaction, in hash order."""
        strip = len(schema.TX_HASH)
        for key, location in self._kv.iterate(schema.TX_HASH):
            if len(location) != schema.HEIGHT_SIZE + schema.INDEX_SIZE:
                raise self._damaged(f"the tx index entry of {key[strip:].hex()} is malformed")
            yield key[strip:], schema.decode_tx_location(location)

    def get_block_by_hash(self, block_hash: bytes) -> Block | None:
        raw = self._kv.get(schema.block_hash_key(block_hash))
        return None if raw is None else self.get_block(schema.decode_height(raw))

    def get_certificate(self, height: int) -> CommitCertificate | None:
        raw = self._kv.get(schema.certificate_key(height))
        return None if raw is None else self._decode(
            CommitCertificate.decode, raw, "certificate", height)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index) of a committed transaction, without reading the transaction."""
        location = self._kv.get(schema.tx_hash_key(tx_hash))
        return None if location is None else schema.decode_tx_location(location)

    def get_tx(self, tx_hash: bytes) -> TxRecord | None:
        """The committed transaction with `tx_hash` and its result, or None."""
        location = self._kv.get(schema.tx_hash_key(tx_hash))
        if location is None:
            return None
        height, index = schema.decode_tx_location(location)
        raw = self._kv.get(schema.tx_record_key(height, index))
        if raw is None:
            raise self._damaged(
                f"tx {tx_hash.hex()} is indexed at block {height} index {index} but its record "
                f"is missing in {self.location}; restore from a backup or resync from peers",
                height)
        return self._decode_tx_record(raw, height, index)

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

    @property
    def base_height(self) -> int:
        """0, or the height a state-sync restore started this store at: no block at or
        below it has its body here, only the headers the restore proved."""
        # Read once: a restore writes it before any open, and nothing changes it after.
        cached: int | None = self.__dict__.get("_base_height")
        if cached is None:
            raw = self._kv.get(schema.META_BASE_HEIGHT)
            cached = self.__dict__["_base_height"] = 0 if raw is None \
                else schema.decode_height(raw)
        return cached

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


def _decode_validator_set(raw: bytes) -> ValidatorSet:
    return ValidatorSet.from_value(codec.decode(raw))
