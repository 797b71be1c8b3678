"""Replaying a chain from genesis: audit, export and import.

`Replayer` applies blocks to a store of its own and trusts nothing it is given: each
block's commit certificate is checked against the validator set of its height (as
derived by the replay itself), every transaction signature is verified, every
transaction re-executed, and the tx root, state root and next validator set checked
(node.execution). The first failure stops the replay as an `AuditMismatch` naming
the height and what differs. Audit replays the node's own database into a temporary
one and then compares the final state entry by entry; import replays an export file
into a new home. Nothing here writes to the audited database.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from chain import codec
from chain.block import Block
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.vote import CommitCertificate, validate_certificate
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.config import DATA_DIR, GENESIS_FILE, read_genesis
from node.errors import NodeError
from node.execution import BlockExecutor, InvalidBlockError
from node.ops.statesync_audit import StateSyncedAuditReport, audit_state_synced
from node.verifier import SignatureVerifier, VerdictBatch
from storage.chain_store import ChainStore
from storage.damage import find_damage
from storage.errors import CorruptionError, StorageError

EXPORT_MAGIC = b"GOVCHAIN-EXPORT\n"
EXPORT_VERSION = 1
EXPORT_FORMAT = "govchain-export"
MAX_FRAME_BYTES = 64 * 1024 * 1024
SIGNATURE_CHUNK = 512
"""Transactions per message to a signature worker during a replay."""

Progress = Callable[[int, int, int, float], None]
"""Told (height, target height, txs so far, seconds so far) about once a second."""


class AuditMismatch(NodeError):
    """Raised when a replayed block, certificate, result or state entry differs."""

    code = "audit_mismatch"

    def __init__(self, height: int, what: str) -> None:
        super().__init__(f"height {height}: {what}")
        self.height = height
        self.what = what


class AuditDamage(NodeError):
    """Raised when the audited database cannot be opened because a file is damaged."""

    code = "audit_damage"


class ExportFormatError(NodeError):
    """Raised when an export file is not one this node reads, or is cut short."""

    code = "export_format"


@dataclass(frozen=True)
class ReplayReport:
    """What a replay went through."""

    blocks: int
    """Blocks replayed."""
    txs: int
    """Transactions re-executed."""
    seconds: float
    """Wall time of the replay."""
    head_height: int
    """Height reached."""
    state_root: str
    """State root after the last block (hex)."""

    @property
    def txs_per_s(self) -> float:
        return self.txs / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "txs": self.txs, "seconds": round(self.seconds, 3),
                "tx_per_s": round(self.txs_per_s, 1), "head_height": self.head_height,
                "state_root": self.state_root}



class Replayer:
    """Applies blocks one by one to `store`, verifying everything first."""

    def __init__(self, genesis: Genesis, store: ChainStore) -> None:
        self.genesis = genesis
        self.store = store
        self.ledger = Ledger(default_modules())
        self.last_written: dict[bytes, int] = {}
        """The height at which each state key was last written by the replay."""
        if not store.is_initialized:
            view = Overlay({})  # genesis applies over an empty state
            self.ledger.apply_genesis(view, genesis)
            changes = view.changes()
            store.commit_genesis(changes, genesis.validator_set)
            self.last_written.update(dict.fromkeys(changes, 0))
        self.verifier = SignatureVerifier()
        """Signatures are verified in worker processes (node.verifier)."""
        self.executor = BlockExecutor(store, self.ledger, genesis.chain_id, genesis.params)
        self.executor.params = self.ledger.get_chain_params(self.executor.state)
        self.blocks = 0
        self.txs = 0

    def check_signatures(self, block: Block) -> VerdictBatch:
        """Start verifying every signature of `block` in the worker processes."""
        return self.verifier.submit(block.txs, chunk=SIGNATURE_CHUNK)

    def apply(self, block: Block, certificate: CommitCertificate,
              signatures: VerdictBatch | None = None) -> list[tuple[str, str]]:
        """Verify and commit `block`; return its (code, message) per transaction.

        `signatures` is `check_signatures(block)` started earlier (so that verification
        of one block overlaps the execution of the one before); without it, the
        signatures are checked here.
        """
        height = self.store.head_height + 1
        if block.height != height:
            raise AuditMismatch(height, f"the next block is numbered {block.height}")
        try:
            validate_certificate(certificate, self.store.get_validator_set(height),
                                 self.genesis.chain_id, height=height, block_hash=block.hash)
        except ChainError as e:
            raise AuditMismatch(height, f"commit certificate: {e.message}") from e
        try:
            bad = (signatures or self.check_signatures(block)).first_bad()
        except BrokenProcessPool:  # a worker died (killed for memory, say): once more
            verdicts = self.verifier.verify_now(block.txs, chunk=SIGNATURE_CHUNK)
            bad = verdicts.index(False) if not all(verdicts) else None
        if bad is not None:
            raise AuditMismatch(height, f"transaction {bad} ({block.txs[bad].hash.hex()}) has "
                                        "a bad signature")
        try:
            executed = self.executor.execute(block)
        except InvalidBlockError as e:
            raise AuditMismatch(height, e.message) from e
        self.store.commit_block(block, certificate, executed.changes, executed.result_values(),
                                executed.next_validator_set, executed.prepared)
        self.executor.clear()
        self.executor.params = self.ledger.get_chain_params(self.executor.state)
        self.last_written.update(dict.fromkeys(executed.changes, height))
        self.blocks += 1
        self.txs += len(block.txs)
        return [(r.code, r.message) for r in executed.results]


def _run(replayer: Replayer, items: Iterator[tuple[Block, CommitCertificate, Any]],
         target_height: int, progress: Progress | None,
         check_results: Callable[[Block, Any, list[tuple[str, str]]], None] | None
         ) -> float:
    started = time.monotonic()
    last_report = started
    try:
        return _run_pipelined(replayer, items, target_height, progress, check_results,
                              started, last_report)
    finally:
        replayer.verifier.close()


def _run_pipelined(replayer: Replayer, items: Iterator[tuple[Block, CommitCertificate, Any]],
                   target_height: int, progress: Progress | None,
                   check_results: Callable[[Block, Any, list[tuple[str, str]]], None] | None,
                   started: float, last_report: float) -> float:
    # One block ahead: its signatures are verified while the current one executes.
    upcoming = next(items, None)
    upcoming_check = replayer.check_signatures(upcoming[0]) if upcoming else None
    while upcoming is not None:
        (block, certificate, extra), check = upcoming, upcoming_check
        upcoming = next(items, None)
        upcoming_check = replayer.check_signatures(upcoming[0]) if upcoming else None
        results = replayer.apply(block, certificate, check)
        if check_results is not None:
            check_results(block, extra, results)
        now = time.monotonic()
        if progress is not None and now - last_report >= 1.0:
            last_report = now
            progress(block.height, target_height, replayer.txs, now - started)
    return time.monotonic() - started


# ------------------------------------------------------------------ audit


def _stored_blocks(source: ChainStore) -> Iterator[tuple[Block, CommitCertificate, Any]]:
    """Each stored block with its certificate and the stored bytes of its tx records."""
    for height in range(1, source.head_height + 1):
        try:
            found = source.get_block_with_records(height)
            certificate = source.get_certificate(height)
        except StorageError as e:
            raise AuditMismatch(height, f"stored data cannot be read: {e}") from e
        if found is None or certificate is None:
            raise AuditMismatch(height, "the block or its certificate is missing")
        block, records = found
        yield block, certificate, records


def _check_stored_records(replayed: ChainStore, block: Block, stored: Any) -> None:
    """The stored tx records of `block` (transaction, result code, message and events)
    against the ones its replay wrote, byte for byte. (The tx index is compared whole at
    the end, in one ordered scan: `_compare_tx_index`.)"""
    if len(stored) != len(block.txs):
        raise AuditMismatch(block.height, f"{len(stored)} tx records are stored for "
                                          f"{len(block.txs)} transactions")
    records = replayed.tx_records(block.height)
    if records == stored:
        return
    index = next(i for i, (a, b) in enumerate(zip(stored, records, strict=True)) if a != b)
    mine = codec.decode(records[index])
    try:
        theirs = codec.unpack_unchecked(stored[index])
    except ChainError:
        theirs = None
    what = f"transaction {index} ({block.txs[index].hash.hex()}): "
    if not isinstance(theirs, tuple) or len(theirs) != 4:
        raise AuditMismatch(block.height, what + "the stored record does not decode")
    if theirs[1] != mine[1]:
        raise AuditMismatch(block.height, what + f"the stored result is {theirs[1]!r}, "
                                                 f"re-execution gives {mine[1]!r}")
    if theirs[2] != mine[2]:
        raise AuditMismatch(block.height, what + f"the stored result message is "
                                                 f"{theirs[2]!r}, re-execution gives "
                                                 f"{mine[2]!r}")
    if theirs[3] != mine[3]:
        raise AuditMismatch(block.height, what + "the stored events differ from the ones "
                                                 "re-execution emits")
    raise AuditMismatch(block.height, what + "the stored record is not in canonical form")


def _compare_tx_index(source: ChainStore, replayer: Replayer) -> None:
    """Raise AuditMismatch at the first tx index entry that differs from the index the
    replay built: a transaction indexed at the wrong place, missing, or indexed but in
    no block. Both indexes are read in hash order, side by side."""
    try:
        _compare_tx_index_entries(source, replayer)
    except StorageError as e:
        raise AuditMismatch(source.head_height, f"the tx index cannot be read: {e}") from e


def _first_difference(stored: Iterator[tuple[bytes, Any]], replayed: Iterator[tuple[bytes, Any]]
                      ) -> tuple[tuple[bytes, Any] | None, tuple[bytes, Any] | None] | None:
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


def _compare_tx_index_entries(source: ChainStore, replayer: Replayer) -> None:
    found = _first_difference(source.iterate_tx_index(), replayer.store.iterate_tx_index())
    if found is None:
        return
    a, b = found
    if b is None:
        assert a is not None
        height, what = a[1][0], (f"transaction {a[0].hex()} is indexed at height "
                                 f"{a[1][0]} index {a[1][1]} but is in no block")
    elif a is None:
        height, what = b[1][0], (f"transaction {b[0].hex()} (height {b[1][0]} index "
                                 f"{b[1][1]}) is missing from the tx index")
    else:
        height, what = b[1][0], (f"transaction {a[0].hex()} is indexed at height "
                                 f"{a[1][0]} index {a[1][1]}, not at its place "
                                 f"(height {b[1][0]} index {b[1][1]})")
    raise AuditMismatch(height, what)


def _compare_state(source: ChainStore, replayer: Replayer) -> None:
    """Raise AuditMismatch at the first state key whose stored value differs."""
    try:
        _compare_state_entries(source, replayer)
    except StorageError as e:
        raise AuditMismatch(source.head_height, f"the stored state cannot be read: {e}") from e


def _compare_state_entries(source: ChainStore, replayer: Replayer) -> None:
    head = source.head_height
    found = _first_difference(source.iterate_state(b""), replayer.store.iterate_state(b""))
    if found is not None:
        a, b = found
        if b is None:
            assert a is not None
            key, what = a[0], "is in the stored state but not in the replayed state"
        elif a is None:
            key, what = b[0], "is missing from the stored state"
        else:
            key, what = a[0], "stored value differs from the replayed value"
        written = replayer.last_written.get(key)
        when = f"last written at height {written}" if written is not None \
            else "never written by any block"
        raise AuditMismatch(head, f"state entry {key.hex()} ({when}): {what}")
    if source.head_state_root != replayer.store.head_state_root:
        raise AuditMismatch(head, "the stored state tree root differs from the replayed one")


def audit(home: Path, data_dir: Path | None = None, *, progress: Progress | None = None,
          work_dir: Path | None = None) -> ReplayReport | StateSyncedAuditReport:
    """Replay the chain in HOME's database (or `data_dir`, e.g. a snapshot) from genesis
    into a temporary database; raise AuditMismatch at the first difference. A store that
    joined by state sync is checked as far as it can be (node.ops.statesync_audit)."""
    genesis = read_genesis(home / GENESIS_FILE)
    data = data_dir or home / DATA_DIR
    if not (data / "CURRENT").exists():
        raise NodeError(f"{data} is not a LevelDB data directory")
    try:
        source = ChainStore.open(str(data), genesis)
    except CorruptionError as e:
        where = [line for line in find_damage(str(data)) if line != e.message]
        raise AuditDamage("; ".join([e.message, *where])) from e
    try:
        if source.base_height > 0:  # joined by state sync: there is no history to replay
            return audit_state_synced(source, genesis)
        with tempfile.TemporaryDirectory(prefix="govchain-audit-", dir=work_dir) as tmp:
            target = ChainStore.open(str(Path(tmp) / "replay"), genesis)
            try:
                replayer = Replayer(genesis, target)
                seconds = _run(replayer, _stored_blocks(source), source.head_height, progress,
                               lambda block, stored, _: _check_stored_records(
                                   target, block, stored))
                _compare_tx_index(source, replayer)
                _compare_state(source, replayer)
                return ReplayReport(replayer.blocks, replayer.txs, seconds, target.head_height,
                                    target.head_state_root.hex())
            finally:
                target.close()
    finally:
        source.close()


# ------------------------------------------------------------------ export and import


def _write_frame(out: BinaryIO | gzip.GzipFile, value: Any) -> None:
    data = codec.encode(value)
    out.write(struct.pack(">I", len(data)))
    out.write(data)


def _read_frame(inp: BinaryIO | gzip.GzipFile) -> Any:
    head = inp.read(4)
    if len(head) != 4:
        raise ExportFormatError("the export file ends early (no end record): it is truncated")
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME_BYTES:
        raise ExportFormatError(f"a record of {size} bytes is larger than any block")
    data = inp.read(size)
    if len(data) != size:
        raise ExportFormatError("the export file ends inside a record: it is truncated")
    try:
        return codec.decode(data, max_size=MAX_FRAME_BYTES)
    except ChainError as e:
        raise ExportFormatError(f"a record does not decode: {e.message}") from e


def export_chain(home: Path, out_path: Path, data_dir: Path | None = None) -> dict[str, Any]:
    """Write blocks and certificates 1..head of HOME's database to a gzip export file."""
    genesis = read_genesis(home / GENESIS_FILE)
    source = ChainStore.open(str(data_dir or home / DATA_DIR), genesis)
    try:
        head = source.head_height
        tmp = out_path.with_name(out_path.name + ".part")
        with gzip.open(tmp, "wb") as out:
            out.write(EXPORT_MAGIC)
            _write_frame(out, {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                               "chain_id": genesis.chain_id, "genesis": genesis.to_json(),
                               "genesis_hash": genesis.hash, "head_height": head})
            for height in range(1, head + 1):
                block, certificate = source.get_block(height), source.get_certificate(height)
                if block is None or certificate is None:
                    raise NodeError(f"block {height} or its certificate is missing: run "
                                    "`govchain audit` on this home")
                _write_frame(out, [height, block.encoded, certificate.encoded])
            _write_frame(out, ["end", head, source.head_hash])
        tmp.replace(out_path)
        return {"file": str(out_path), "blocks": head, "head_hash": source.head_hash.hex(),
                "state_root": source.head_state_root.hex(), "bytes": out_path.stat().st_size}
    finally:
        source.close()


def _read_export(inp: BinaryIO | gzip.GzipFile, genesis: Genesis
                 ) -> Iterator[tuple[Block, CommitCertificate, Any]]:
    if inp.read(len(EXPORT_MAGIC)) != EXPORT_MAGIC:
        raise ExportFormatError("not a govchain export file")
    header = _read_frame(inp)
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise ExportFormatError("not a govchain export file")
    if header.get("version") != EXPORT_VERSION:
        raise ExportFormatError(f"export format version {header.get('version')} is not "
                                f"read by this node (it reads {EXPORT_VERSION})")
    if header.get("genesis_hash") != genesis.hash:
        raise ExportFormatError("the export is of another chain than this home's genesis "
                                f"({header.get('chain_id')!r})")
    count = 0
    while True:
        frame = _read_frame(inp)
        if isinstance(frame, list | tuple) and frame and frame[0] == "end":
            if len(frame) != 3 or frame[1] != count:
                raise ExportFormatError(f"the end record names {frame[1:2]} blocks, the file "
                                        f"holds {count}")
            return
        try:
            height, block_bytes, cert_bytes = codec.expect_tuple(frame, 3, "export record")
            block = Block.decode(block_bytes)
            certificate = CommitCertificate.decode(cert_bytes)
        except (ChainError, TypeError) as e:
            raise AuditMismatch(count + 1, f"the exported block does not decode: {e}") from e
        if height != block.height:
            raise AuditMismatch(count + 1, f"record {height} holds block {block.height}")
        count += 1
        yield block, certificate, None


def import_chain(home: Path, in_path: Path, *, progress: Progress | None = None
                 ) -> ReplayReport:
    """Rebuild HOME's database from an export file, verifying every block as audit does.

    HOME must have been created by `govchain init` with the same genesis, and hold no
    blocks yet. The database is built in HOME/data.import and moved to HOME/data only
    once every block has verified: a failed import leaves HOME as it was.
    """
    genesis = read_genesis(home / GENESIS_FILE)
    data = home / DATA_DIR
    if (data / "CURRENT").exists():
        existing = ChainStore.open(str(data), genesis)
        try:
            height = existing.head_height if existing.is_initialized else 0
        finally:
            existing.close()
        if height > 0:
            raise NodeError(f"{data} already holds blocks up to {height}; import into a "
                            "fresh home")
    building = home / (DATA_DIR + ".import")
    if building.exists():
        shutil.rmtree(building)
    try:
        store = ChainStore.open(str(building), genesis)
        try:
            replayer = Replayer(genesis, store)
            with gzip.open(in_path, "rb") as inp:
                try:
                    seconds = _run(replayer, _read_export(inp, genesis), 0, progress, None)
                except (OSError, EOFError) as e:
                    raise ExportFormatError(f"cannot read {in_path}: {e}") from e
            report = ReplayReport(replayer.blocks, replayer.txs, seconds, store.head_height,
                                  store.head_state_root.hex())
        finally:
            store.close()
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if data.exists():
        shutil.rmtree(data)
    building.rename(data)
    return report


def snapshot_offline(home: Path, out: Path) -> dict[str, Any]:
    """Copy a stopped node's database to `out` (a running node: /admin/snapshot)."""
    genesis = read_genesis(home / GENESIS_FILE)
    store = ChainStore.open(str(home / DATA_DIR), genesis)
    try:
        keys = store.write_snapshot(str(out))
        return {"path": str(out), "height": store.head_height, "keys": keys}
    finally:
        store.close()
