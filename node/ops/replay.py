"""Replaying a chain from genesis: audit, export and import.

`Replayer` applies blocks to a store of its own and trusts nothing it is given: each
block's commit certificate is checked against the validator set of its height (as
derived by the replay itself), every transaction signature is verified, every
transaction re-executed, and the tx root, state root and next validator set checked
(node.execution). The first failure stops the replay as an `AuditMismatch` naming
the height and what differs. Audit replays the node's own database into a temporary
one and then compares every table with the replayed one (node.ops.audit_tables);
import replays an export file into a new home. Nothing here writes to the audited
database.
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
from chain.block import Block, compute_tx_root
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.vote import CommitCertificate, validate_certificate
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.config import DATA_DIR, GENESIS_FILE, read_genesis
from node.errors import NodeError
from node.execution import BlockExecutor, InvalidBlockError, apply_certified_block
from node.ops.audit_tables import (
    check_local_tables,
    check_stored_records,
    compare_chain_tables,
    name_table,
    read_source,
)
from node.ops.errors import AuditDamage as AuditDamage  # re-exported: callers import
from node.ops.errors import AuditMismatch as AuditMismatch  # the errors from here too
from node.ops.errors import ExportFormatError as ExportFormatError
from node.ops.statesync_audit import StateSyncedAuditReport, audit_state_synced
from node.upgrades import load_known_upgrades
from node.verifier import SignatureVerifier, VerdictBatch
from storage.chain_store import ChainStore
from storage.damage import (
    HISTORY_CERTIFICATE,
    HISTORY_HEADER,
    HISTORY_TX_RECORD,
    find_damage,
    find_file_damage,
)
from storage.errors import CorruptionError, InconsistentDataError

EXPORT_MAGIC = b"GOVCHAIN-EXPORT\n"
EXPORT_VERSION = 1
EXPORT_FORMAT = "govchain-export"
MAX_FRAME_BYTES = 64 * 1024 * 1024
SIGNATURE_CHUNK = 512
"""Transactions per message to a signature worker during a replay."""

Progress = Callable[[int, int, int, float], None]
"""Told (height, target height, txs so far, seconds so far) about once a second."""


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
        self.ledger = Ledger(default_modules(), load_known_upgrades())
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

    def _check_certificate(self, block: Block, certificate: CommitCertificate,
                           height: int) -> None:
        """The certificate must prove a quorum of this height's validators for the block.
        Checked on its own first, so that a genuine certificate of another block names
        the header as what differs, and a forged one the certificate."""
        try:
            validate_certificate(certificate, self.store.get_validator_set(height),
                                 self.genesis.chain_id, height=height,
                                 block_hash=certificate.block_hash)
        except ChainError as e:
            raise AuditMismatch(height, f"commit certificate: {e.message}",
                                table=HISTORY_CERTIFICATE) from e
        if certificate.block_hash != block.hash:
            raise AuditMismatch(height, f"the block hashes to {block.hash.hex()}, but its "
                                        "commit certificate certifies "
                                        f"{certificate.block_hash.hex()}",
                                table=HISTORY_HEADER)

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
            raise AuditMismatch(height, f"the next block is numbered {block.height}",
                                table=HISTORY_HEADER)
        # Checked apart first only to name what differs (apply_certified_block below
        # checks the certificate again, and everything else, as every caller does).
        self._check_certificate(block, certificate, height)
        # The certified header is genuine from here on: a tx root that differs means
        # the transactions given with it are not the block's.
        if compute_tx_root(block.txs) != block.header.tx_root:
            raise AuditMismatch(height, "tx_root does not match the block's transactions",
                                table=HISTORY_TX_RECORD)
        try:
            verdicts = (signatures or self.check_signatures(block)).result()
        except BrokenProcessPool:  # a worker died (killed for memory, say): once more
            verdicts = self.verifier.verify_now(block.txs, chunk=SIGNATURE_CHUNK)
        try:
            executed = apply_certified_block(self.store, self.executor, block, certificate,
                                             verdicts)
        except InvalidBlockError as e:
            raise AuditMismatch(height, e.message) from e
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
    return read_source(_read_stored_blocks(source))


def _read_stored_blocks(source: ChainStore) -> Iterator[tuple[Block, CommitCertificate, Any]]:
    for height in range(1, source.head_height + 1):
        found = source.get_block_with_records(height)
        if found is None:
            raise AuditMismatch(height, f"{name_table(HISTORY_HEADER)}, height "
                                        f"{height}: the block is missing")
        certificate = source.get_certificate(height)
        if certificate is None:
            raise AuditMismatch(height, f"{name_table(HISTORY_CERTIFICATE)}, height "
                                        f"{height}: the certificate is missing")
        block, records = found
        yield block, certificate, records


def audit(home: Path, data_dir: Path | None = None, *, progress: Progress | None = None,
          work_dir: Path | None = None) -> ReplayReport | StateSyncedAuditReport:
    """Replay the chain in HOME's database (or `data_dir`, e.g. a snapshot) from genesis
    into a temporary database and compare every table with it; raise AuditMismatch at
    the first difference, AuditDamage for a file that cannot be read as written. A store
    that joined by state sync is checked as far as it can be (node.ops.statesync_audit)."""
    genesis = read_genesis(home / GENESIS_FILE)
    data = data_dir or home / DATA_DIR
    if not (data / "CURRENT").exists():
        raise NodeError(f"{data} is not a LevelDB data directory")
    # Before any open: opening rewrites the log, dropping in silence what is torn or lost.
    damage = find_file_damage(str(data))
    if damage:
        raise AuditDamage("; ".join(damage))
    try:
        return _audit_database(genesis, data, progress, work_dir)
    except AuditDamage as e:  # the database is closed now: find what else does not read
        where = [line for line in find_damage(str(data)) if line != e.message]
        raise AuditDamage("; ".join([e.message, *where])) from e


def _audit_database(genesis: Genesis, data: Path, progress: Progress | None,
                    work_dir: Path | None) -> ReplayReport | StateSyncedAuditReport:
    try:
        source = ChainStore.open(str(data), genesis, create=False, check_tree=False)
    except InconsistentDataError as e:
        raise AuditMismatch(e.height or 0, e.message) from e
    except CorruptionError as e:
        raise AuditDamage(e.message) from e
    try:
        if source.base_height > 1:  # pruned or state-synced: no history to replay
            return audit_state_synced(source, genesis)
        with tempfile.TemporaryDirectory(prefix="govchain-audit-", dir=work_dir) as tmp:
            target = ChainStore.open(str(Path(tmp) / "replay"), genesis)
            try:
                replayer = Replayer(genesis, target)
                seconds = _replay_stored_blocks(source, replayer, progress)
                compare_chain_tables(source, target, replayer.last_written)
                check_local_tables(source, target)
                return ReplayReport(replayer.blocks, replayer.txs, seconds, target.head_height,
                                    target.head_state_root.hex())
            finally:
                target.close()
    finally:
        source.close()


def _replay_stored_blocks(source: ChainStore, replayer: Replayer,
                          progress: Progress | None) -> float:
    """Replay every stored block, checking its tx records; a difference the replay
    finds in a stored record names that record's table."""
    try:
        return _run(replayer, _stored_blocks(source), source.head_height, progress,
                    lambda block, stored, _: check_stored_records(replayer.store, block, stored))
    except AuditMismatch as e:
        if e.table is None:
            raise
        raise AuditMismatch(e.height, f"{name_table(e.table)}, height {e.height}: {e.what}"
                            ) from e


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
        if source.base_height > 1:
            raise NodeError(f"this data directory is pruned below height "
                            f"{source.base_height} (retain_blocks, or joined by state sync): "
                            "an export needs every block; export from an archive node")
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
