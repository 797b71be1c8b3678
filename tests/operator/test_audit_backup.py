"""Audit (replay from genesis), export/import and snapshots over a real LevelDB chain."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import plyvel
import pytest

from chain import codec
from chain.block import BlockHeader
from chain.crypto import Hash32, compute_hash
from chain.results import ResultLeaf, compute_results_root
from chain.tx import Transaction
from chain.vote import CommitCertificate, Vote, VoteKind
from cli import main as cli
from node.config import DATA_DIR, read_genesis
from node.execution import InvalidBlockError, apply_certified_block
from node.ops.audit_tables import CHAIN_FILES, name_table
from node.ops.replay import (
    AuditDamage,
    AuditMismatch,
    ExportFormatError,
    Replayer,
    audit,
    export_chain,
    import_chain,
    snapshot_offline,
)
from storage import schema
from storage.chain_store import HISTORY_DIR, ChainStore
from storage.damage import HISTORY_CERTIFICATE, HISTORY_HEADER, HISTORY_TX_RECORD, TABLES
from storage.errors import CorruptionError, DataDirLockedError
from storage.history import HistoryDamagedError, StoredBlock
from tests.faults.leveldb_log import batch_puts, read_log_records
from tests.node.conftest import CHAIN_ID, make_genesis, make_home
from tests.operator.chain_builder import VALIDATOR, build_chain
from tests.operator.history_tamper import read_stored, rewrite_block


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("chain") / "home"
    asyncio.run(build_chain(path))
    return path


@pytest.fixture(scope="module")
def unopened_home(tmp_path_factory) -> Path:
    """A chain whose database was opened once, by its node: everything it wrote is
    still in its log file. Tests damage copies of it, never the chain itself."""
    import asyncio

    path = tmp_path_factory.mktemp("unopened") / "home"
    asyncio.run(build_chain(path))
    return path


def copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def head_of(home: Path) -> tuple[int, str]:
    store = ChainStore.open(str(home / DATA_DIR), read_genesis(home / "genesis.json"))
    try:
        return store.head_height, store.head_state_root.hex()
    finally:
        store.close()


def state_items(home: Path) -> list[tuple[bytes, bytes]]:
    store = ChainStore.open(str(home / DATA_DIR), read_genesis(home / "genesis.json"))
    try:
        return list(store.iterate_state(b""))
    finally:
        store.close()


def block_with_txs(home: Path, above: int = 0) -> int:
    db = plyvel.DB(str(home / DATA_DIR))
    try:
        heights = sorted(schema.decode_tx_index_key(key)[0]
                         for key, _ in db.iterator(prefix=schema.TX_INDEX))
    finally:
        db.close()
    for height in heights:
        if height > above:
            return height
    raise AssertionError("no transactions in the chain")


def replace(stored: StoredBlock, **parts: object) -> StoredBlock:
    return dataclasses.replace(stored, **parts)  # type: ignore[arg-type]


def first_record(home: Path, height: int) -> list:
    return list(codec.decode(read_stored(home / DATA_DIR, height).tx_records[0]))


def rewrite_first_record(home: Path, height: int, record: list) -> None:
    rewrite_block(home / DATA_DIR, height, lambda s: replace(
        s, tx_records=(codec.encode(record), *s.tx_records[1:])))


def test_audit_passes_on_a_healthy_chain(chain_home: Path) -> None:
    report = audit(chain_home)
    height, root = head_of(chain_home)
    assert report.blocks == height >= 6
    assert report.txs == 20
    assert report.state_root == root


def test_audit_cli_summary(chain_home: Path, capsys) -> None:
    assert cli.main(["--json", "audit", "--home", str(chain_home)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "OK" and doc["txs"] == 20 and doc["tx_per_s"] > 0


def test_audit_pinpoints_a_removed_transaction(chain_home: Path, tmp_path: Path) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home)
    rewrite_block(home / DATA_DIR, height, lambda s: replace(s, tx_records=s.tx_records[1:]))
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == height
    assert "tx_root" in e.value.what


@pytest.mark.parametrize("field", ["code", "message", "events"])
def test_audit_pinpoints_a_rewritten_tx_result(chain_home: Path, tmp_path: Path,
                                               field: str) -> None:
    # A tx record holds the transaction and what executing it did (code, message,
    # events); the audit compares each whole with the record its replay writes.
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home)
    tx_bytes, code, message, events = first_record(home, height)
    assert code == "ok" and events, "the first transaction should have succeeded"
    forged = {"code": [tx_bytes, "insufficient_funds", message, events],
              "message": [tx_bytes, code, "rewritten", events],
              "events": [tx_bytes, code, message, events[:-1]]}[field]
    rewrite_first_record(home, height, forged)
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == height
    tx_hash = Transaction.decode(tx_bytes).hash.hex()
    where = f"tx records (history segments), height {height}: "
    assert e.value.what == where + f"transaction 0 ({tx_hash}): " + {
        "code": "the stored result is 'insufficient_funds', re-execution gives 'ok'",
        "message": f"the stored result message is 'rewritten', re-execution gives "
                   f"{message!r}",
        "events": "the stored events differ from the ones re-execution emits"}[field]


def forge_refused_result(home: Path) -> int:
    """Rewrite the first transaction of the first block with transactions as refused
    ("insufficient_funds", no events), with a header whose results_root commits to the
    forged result and a certificate the validator signs again, in its history segment
    with valid checksums: a block certified by a quorum whose results do not follow from
    executing it. Returns its height."""
    height = block_with_txs(home)
    stored = read_stored(home / DATA_DIR, height)
    records = [codec.decode(raw) for raw in stored.tx_records]
    tx_bytes, code, _message, events = records[0]
    assert code == "ok" and events, "the first transaction should have succeeded"
    records[0] = (tx_bytes, "insufficient_funds", "forged", ())
    leaves = [ResultLeaf.of(compute_hash(r[0]), r[1], r[3]) for r in records]
    header = BlockHeader.decode(stored.header)
    forged = dataclasses.replace(header, results_root=compute_results_root(leaves))
    old = CommitCertificate.decode(stored.certificate)
    vote = Vote.create(CHAIN_ID, VALIDATOR, VoteKind.PRECOMMIT, height, old.round,
                       forged.hash)
    rewrite_block(home / DATA_DIR, height, lambda s: replace(
        s, header=forged.encoded, certificate=CommitCertificate.from_votes([vote]).encoded,
        tx_records=(codec.encode(list(records[0])), *s.tx_records[1:])))
    return height


def test_audit_refuses_a_certified_block_whose_results_root_does_not_follow(
        chain_home: Path, tmp_path: Path) -> None:
    # The forged header is certified, so only re-executing the block shows that the
    # transaction succeeded and the committed result is a lie.
    home = copy_home(chain_home, tmp_path / "copy")
    height = forge_refused_result(home)
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == height
    assert "results root" in e.value.what and "differs from the executed" in e.value.what


def test_sync_refuses_a_certified_block_whose_results_root_does_not_follow(
        chain_home: Path, tmp_path: Path) -> None:
    # What a node that syncs from a lying peer does with the same block: the block is
    # not applied and its store stays at the parent (apply_certified_block is the one
    # path of consensus commits, sync, audit and import).
    home = copy_home(chain_home, tmp_path / "copy")
    height = forge_refused_result(home)
    genesis = read_genesis(home / "genesis.json")
    source = ChainStore.open(str(home / DATA_DIR), genesis, create=False, check_tree=False)
    target = ChainStore.open(str(tmp_path / "synced"), genesis)
    try:
        replayer = Replayer(genesis, target)
        for h in range(1, height):
            block, cert = source.get_block(h), source.get_certificate(h)
            assert block is not None and cert is not None
            apply_certified_block(target, replayer.executor, block, cert, [True] * len(block.txs))
        block, cert = source.get_block(height), source.get_certificate(height)
        assert block is not None and cert is not None
        with pytest.raises(InvalidBlockError, match="results root"):
            apply_certified_block(target, replayer.executor, block, cert,
                                  [True] * len(block.txs))
        assert target.head_height == height - 1
        assert target.get_tx(block.txs[0].hash) is None
    finally:
        replayer.verifier.close()
        target.close()
        source.close()


def test_audit_pinpoints_a_rewritten_header(chain_home: Path, tmp_path: Path) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    # Block 3's time moved by one millisecond: its certificate no longer certifies it.
    tamper_header(home)
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == 3
    assert "certificate" in e.value.what


def test_audit_pinpoints_a_forged_certificate(chain_home: Path, tmp_path: Path) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    tamper_certificate(home)
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == 4 and "commit certificate" in e.value.what


@pytest.mark.parametrize("damage", ["moved", "deleted", "extra"])
def test_audit_pinpoints_a_damaged_tx_index(chain_home: Path, tmp_path: Path,
                                            damage: str) -> None:
    # The tx index (hash prefix + place -> record offset) is what tx_get reads; the
    # audit compares it whole with the index the replay builds.
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home)
    tx_hash = Transaction.decode(first_record(home, height)[0]).hash
    db = plyvel.DB(str(home / DATA_DIR))
    key = schema.tx_index_key(tx_hash, height, 0)
    if damage == "moved":
        db.put(key, (db.get(key)[-1] + 1).to_bytes(schema.OFFSET_SIZE, "big"))
    elif damage == "deleted":
        db.delete(key)
    else:
        db.put(schema.tx_index_key(bytes(32), height, 0), db.get(key))
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == height
    prefix = (bytes(32) if damage == "extra" else tx_hash)[:schema.TX_KEY_BYTES].hex()
    what = f"transaction {prefix}... at height {height} index 0"
    expected = {"moved": f"{what} is indexed at offset ",
                "deleted": f"{what} is missing from the tx index",
                "extra": f"{what} is indexed, but no block holds it there"}[damage]
    assert e.value.what.startswith("tx index (0x22): " + expected), e.value.what


def test_audit_pinpoints_a_corrupted_state_entry(chain_home: Path, tmp_path: Path,
                                                 capsys) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    items = state_items(home)
    key, value = next((k, v) for k, v in items if v)  # some account or balance entry
    db = plyvel.DB(str(home / DATA_DIR))
    db.put(schema.state_key(key), value + b"\x00")
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == head_of(chain_home)[0]
    assert key.hex() in e.value.what and "differs" in e.value.what
    assert "last written at height" in e.value.what
    assert cli.main(["--json", "audit", "--home", str(home)]) == 2
    assert json.loads(capsys.readouterr().out)["result"] == "MISMATCH"


# ------------------------------------------------------------------ every table


def flip_byte(value: bytes, at: int = -1) -> bytes:
    data = bytearray(value)
    data[at] ^= 0x01
    return bytes(data)


def first_item(db: plyvel.DB, prefix: bytes) -> tuple[bytes, bytes]:
    return next(iter(db.iterator(prefix=prefix)))


def tamper_validator_set(db: plyvel.DB, part: str) -> None:
    (key, name), *others = codec.decode(db.get(schema.validator_set_key(0)))
    forged = [flip_byte(key, 5), name] if part == "key" else [key, name + "x"]
    db.put(schema.validator_set_key(0), codec.encode([forged, *others]))


def tamper_block_hash_index(db: plyvel.DB) -> None:
    key = next(k for k, v in db.iterator(prefix=schema.BLOCK_HASH)
               if schema.decode_height(v) == 2)
    db.put(key, schema.encode_height(3))


def tamper_tx_record(home: Path, height: int) -> None:
    tx_bytes, _, message, events = first_record(home, height)
    rewrite_first_record(home, height, [tx_bytes, "insufficient_funds", message, events])


def tamper_header(home: Path) -> None:
    header = BlockHeader.decode(read_stored(home / DATA_DIR, 3).header)
    forged = dataclasses.replace(header, timestamp_ms=header.timestamp_ms + 1).encoded
    rewrite_block(home / DATA_DIR, 3, lambda s: replace(s, header=forged))


def tamper_certificate(home: Path) -> None:
    fifth = read_stored(home / DATA_DIR, 5).certificate
    rewrite_block(home / DATA_DIR, 4, lambda s: replace(s, certificate=fifth))


def tamper_tx_index(db: plyvel.DB, height: int) -> None:
    key, value = next((k, v) for k, v in db.iterator(prefix=schema.TX_INDEX)
                      if schema.decode_tx_index_key(k)[0] == height)
    db.put(key, (int.from_bytes(value, "big") + 1).to_bytes(schema.OFFSET_SIZE, "big"))


def tamper_history(home: Path, table: str, height: int) -> bytes | None:
    """Rewrite one record of the history segments with valid checksums; its kind."""
    if table == "block headers":
        tamper_header(home)
        return HISTORY_HEADER
    if table == "commit certificates":
        tamper_certificate(home)
        return HISTORY_CERTIFICATE
    if table == "tx records":
        tamper_tx_record(home, height)
        return HISTORY_TX_RECORD
    return None


def tamper(db: plyvel.DB, table: str, height: int) -> bytes:
    """Rewrite one record of `table` with valid LevelDB checksums; its prefix."""
    if table == "meta":
        db.put(schema.META_GENESIS_STATE_ROOT, flip_byte(db.get(schema.META_GENESIS_STATE_ROOT)))
        return schema.META
    if table == "block hash index":
        tamper_block_hash_index(db)
        return schema.BLOCK_HASH
    if table in ("validator set name", "validator set key"):
        tamper_validator_set(db, table.rsplit(" ", 1)[1])
        return schema.VALIDATOR_SET
    if table == "tx index":
        tamper_tx_index(db, height)
        return schema.TX_INDEX
    prefix = {"state": schema.STATE, "state-tree buckets": schema.TREE_BUCKET,
              "state-tree bucket hashes": schema.TREE_BUCKET_HASH}[table]
    key, value = first_item(db, prefix)
    db.put(key, flip_byte(value))
    return prefix


@pytest.mark.parametrize("table", [
    "meta", "block headers", "block hash index", "commit certificates",
    "validator set name", "validator set key", "tx index", "tx records", "state",
    "state-tree buckets", "state-tree bucket hashes"])
def test_audit_names_each_tampered_table(chain_home: Path, tmp_path: Path, table: str) -> None:
    # Every table the node reads is re-derived by the replay: a record rewritten with
    # valid LevelDB checksums is a MISMATCH that names its table.
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home)
    prefix = tamper_history(home, table, height)
    if prefix is None:
        db = plyvel.DB(str(home / DATA_DIR))
        try:
            prefix = tamper(db, table, height)
        finally:
            db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.what.startswith(name_table(prefix)), e.value.what


def test_audit_names_a_record_beyond_the_head(chain_home: Path, tmp_path: Path) -> None:
    # The replay stops at the head: what is stored past it was written by no block.
    home = copy_home(chain_home, tmp_path / "copy")
    head = head_of(home)[0]
    db = plyvel.DB(str(home / DATA_DIR))
    db.put(schema.block_location_key(head + 1), db.get(schema.block_location_key(head)))
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert (e.value.height, e.value.what) == (head + 1, (
        f"block locations (0x14), height {head + 1}: stored, but the replay did not write "
        "it"))


def test_audit_cli_reports_a_renamed_validator(chain_home: Path, tmp_path: Path,
                                               capsys) -> None:
    # The node reads this table for consensus and chain_validators; a name is in no
    # hash, so only the comparison with the replay can see it changed.
    home = copy_home(chain_home, tmp_path / "copy")
    db = plyvel.DB(str(home / DATA_DIR))
    tamper_validator_set(db, "name")
    db.close()
    assert cli.main(["--json", "audit", "--home", str(home)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "MISMATCH" and doc["height"] == 0
    assert doc["what"] == ("validator sets (0x13), height 0: the stored value differs "
                           "from the replayed one")


def conflicting_prevotes(height: int) -> bytes:
    """Evidence as the node records it: two prevotes of one validator for two blocks."""
    first, second = (Vote.create(CHAIN_ID, VALIDATOR, VoteKind.PREVOTE, height, 0,
                                 Hash32(bytes([i]) * 32)) for i in (1, 2))
    return codec.encode([first.to_value(), second.to_value()])


def add_evidence(home: Path, encoded: bytes) -> None:
    store = ChainStore.open(str(home / DATA_DIR), read_genesis(home / "genesis.json"))
    try:
        assert store.add_evidence(encoded)
    finally:
        store.close()


def test_audit_checks_recorded_evidence(chain_home: Path, tmp_path: Path) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    add_evidence(home, conflicting_prevotes(2))
    audit(home)  # genuine evidence, its index and count: clean


@pytest.mark.parametrize(("damage", "where"), [
    ("forged evidence", "evidence (0x41), number 0: "),
    ("extra index entry", "evidence index (0x42), key "),
    ("wrong count", "meta (0x01), key 'evidence_count': "),
    ("bad sign state", "sign state (0x40): "),
    ("unknown table", "unknown table 0x50: "),
])
def test_audit_checks_the_tables_only_this_node_writes(chain_home: Path, tmp_path: Path,
                                                       damage: str, where: str) -> None:
    # The signer's state and the evidence are this node's own: no replay re-derives
    # them, so the audit checks what they carry (signatures, hashes, counts, form).
    home = copy_home(chain_home, tmp_path / "copy")
    add_evidence(home, conflicting_prevotes(2))
    db = plyvel.DB(str(home / DATA_DIR))
    try:
        if damage == "forged evidence":
            first, second = codec.decode(db.get(schema.evidence_key(0)))
            second = [*second[:-1], flip_byte(second[-1])]
            db.put(schema.evidence_key(0), codec.encode([first, second]))
        elif damage == "extra index entry":
            db.put(schema.evidence_hash_key(bytes(32)), b"")
        elif damage == "wrong count":
            db.put(schema.META_EVIDENCE_COUNT, schema.encode_height(2))
        elif damage == "bad sign state":
            db.put(schema.sign_state_key(), b"\x01\x02")
        else:
            db.put(b"\x50", b"x")
    finally:
        db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.what.startswith(where), e.value.what


def test_every_table_is_derived_or_checked() -> None:
    # A new table must say which the audit does with it (docs/operator.md, "Audit").
    prefixes = {value for name, value in vars(schema).items()
                if name.isupper() and isinstance(value, bytes) and len(value) == 1}
    assert prefixes == set(TABLES)
    assert set(schema.CHAIN_TABLES) | set(schema.LOCAL_TABLES) == prefixes
    assert not set(schema.CHAIN_TABLES) & set(schema.LOCAL_TABLES)
    assert set(CHAIN_FILES) == set(schema.CHAIN_FILES)


# ------------------------------------------------------------------ damaged files


def head_height_of(payload: bytes) -> int:
    raw = batch_puts(payload).get(schema.META_HEAD_HEIGHT)
    return -1 if raw is None else schema.decode_height(raw)


def data_files(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (home / DATA_DIR).iterdir()
            if p.name != "LOCK" and p.is_file()}


def the_log(home: Path) -> Path:
    (log,) = (home / DATA_DIR).glob("*.log")
    assert log.stat().st_size > 10_000, "the chain's writes should still be in its log"
    return log


@pytest.mark.parametrize("inside", ["genesis", "block"])
def test_audit_reports_a_truncated_log_as_damage(unopened_home: Path, tmp_path: Path,
                                                 inside: str, capsys) -> None:
    # LevelDB opens a log cut short without a word, dropping the rest: the database
    # then looks like an older one (or one without a genesis state).
    home = copy_home(unopened_home, tmp_path / "copy")
    log = the_log(home)
    records = read_log_records(log)
    if inside == "genesis":
        record = next(r for r in records
                      if schema.META_GENESIS_STATE_ROOT in batch_puts(r.payload))
    else:
        record = max((r for r in records if head_height_of(r.payload) > 1),
                     key=lambda r: r.end - r.start)  # a later block with transfers
    with open(log, "r+b") as f:
        f.truncate((record.start + record.end) // 2)
    before = data_files(home)
    with pytest.raises(AuditDamage) as e:
        audit(home)
    assert f"the log {log.name} ends inside a record" in e.value.message, e.value.message
    assert data_files(home) == before  # the audit opened nothing: the log is as it was
    assert cli.main(["--json", "audit", "--home", str(home)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "DAMAGED" and log.name in doc["what"]


def test_audit_reports_a_deleted_log_as_damage(unopened_home: Path, tmp_path: Path) -> None:
    home = copy_home(unopened_home, tmp_path / "copy")
    log = the_log(home)
    log.unlink()
    before = data_files(home)
    with pytest.raises(AuditDamage) as e:
        audit(home)
    assert f"the log {log.name} is missing" in e.value.message, e.value.message
    assert data_files(home) == before
    # The node refuses it too: it would start from an older state and sign state.
    genesis = read_genesis(home / "genesis.json")
    with pytest.raises(CorruptionError, match=f"{log.name} is missing"):
        ChainStore.open(str(home / DATA_DIR), genesis)
    assert data_files(home) == before


def test_audit_refuses_a_database_in_use(chain_home: Path, tmp_path: Path) -> None:
    # Its log is being written: reading it would look like a torn write.
    import subprocess
    import sys

    home = copy_home(chain_home, tmp_path / "copy")
    data = home / DATA_DIR
    db = plyvel.DB(str(data))
    try:
        with pytest.raises(DataDirLockedError, match="in use by another process"):
            audit(home)
        # The audit's look at the lock did not drop the one LevelDB holds here.
        other = subprocess.run([sys.executable, "-c", f"import plyvel; plyvel.DB({str(data)!r})"],
                               capture_output=True, text=True, timeout=60)
        assert other.returncode != 0 and "lock" in other.stderr.lower(), other.stderr
    finally:
        db.close()


def test_audit_reports_a_flipped_byte_in_a_history_segment_as_damage(
        chain_home: Path, tmp_path: Path, capsys) -> None:
    # A segment frame that fails its checksum: DAMAGED naming the segment file, from the
    # audit and from the node (which reads the block on the first request for it).
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home, above=1)
    record = read_stored(home / DATA_DIR, height).tx_records[0]
    (segment,) = (home / DATA_DIR / "history").glob("*.seg")
    content = bytearray(segment.read_bytes())
    content[content.index(record) + len(record) // 2] ^= 0xFF
    segment.write_bytes(bytes(content))
    with pytest.raises(AuditDamage) as e:
        audit(home)
    assert str(segment) in e.value.message and "fails its checksum" in e.value.message
    assert cli.main(["--json", "audit", "--home", str(home)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "DAMAGED" and segment.name in doc["what"]


def test_node_refuses_a_segment_cut_short(chain_home: Path, tmp_path: Path, capsys) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    (segment,) = (home / DATA_DIR / "history").glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:-10])
    with pytest.raises(HistoryDamagedError, match=str(segment)):
        ChainStore.open(str(home / DATA_DIR), read_genesis(home / "genesis.json"))
    assert cli.main(["--json", "audit", "--home", str(home)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "DAMAGED" and segment.name in doc["what"]


@pytest.mark.parametrize("record", ["state entry"])
def test_audit_reports_a_flipped_byte_in_a_table_as_damage(unopened_home: Path,
                                                           tmp_path: Path, record: str,
                                                           capsys) -> None:
    # A checksum mismatch met while comparing the state at the end: DAMAGED, naming the
    # table file, not MISMATCH.
    home = copy_home(unopened_home, tmp_path / "copy")
    data = home / DATA_DIR
    db = plyvel.DB(str(data), compression=None)  # uncompressed: the value can be found
    value = max((v for _, v in db.iterator(prefix=schema.STATE)), key=len)
    db.compact_range()
    db.close()
    assert not list(data.glob("*.log")) or all(p.stat().st_size == 0 for p in data.glob("*.log"))
    (table,) = [p for p in data.glob("*.ldb") if value in p.read_bytes()]
    content = bytearray(table.read_bytes())
    content[content.index(value) + len(value) // 2] ^= 0xFF
    table.write_bytes(bytes(content))
    with pytest.raises(AuditDamage) as e:
        audit(home)
    assert "checksum mismatch" in e.value.message, e.value.message
    assert table.name in e.value.message, e.value.message
    assert cli.main(["--json", "audit", "--home", str(home)]) == 2
    assert json.loads(capsys.readouterr().out)["result"] == "DAMAGED"


def test_export_then_import_gives_identical_state(chain_home: Path, tmp_path: Path,
                                                  capsys) -> None:
    out = tmp_path / "chain.export"
    info = export_chain(chain_home, out)
    assert info["blocks"] == head_of(chain_home)[0]
    genesis = read_genesis(chain_home / "genesis.json")
    new_home = make_home(tmp_path / "restored", genesis, None).path
    assert cli.main(["--json", "import", "--home", str(new_home), "--in", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["result"] == "OK" and report["txs"] == 20
    assert head_of(new_home) == head_of(chain_home)
    assert state_items(new_home) == state_items(chain_home)
    audit(new_home)  # the rebuilt database audits clean too


def test_invalid_import_of_a_tampered_export_leaves_the_home_unchanged(
        chain_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "chain.export"
    export_chain(chain_home, out)
    with gzip.open(out, "rb") as f:
        data = bytearray(f.read())
    # Flip a byte inside the last block record's certificate signatures.
    data[-200] ^= 0x01
    tampered = tmp_path / "tampered.export"
    with gzip.open(tampered, "wb") as f:
        f.write(bytes(data))
    genesis = read_genesis(chain_home / "genesis.json")
    new_home = make_home(tmp_path / "restored", genesis, None).path
    with pytest.raises((AuditMismatch, ExportFormatError)):
        import_chain(new_home, tampered)
    assert not (new_home / DATA_DIR).exists()
    assert not (new_home / "data.import").exists()


def test_invalid_import_of_a_truncated_export(chain_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "chain.export"
    export_chain(chain_home, out)
    with gzip.open(out, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.export"
    with gzip.open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    new_home = make_home(tmp_path / "restored", read_genesis(chain_home / "genesis.json"),
                         None).path
    with pytest.raises(ExportFormatError, match=r"truncated|ends"):
        import_chain(new_home, cut)
    assert not (new_home / DATA_DIR).exists()


def test_invalid_import_of_another_chain(chain_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "chain.export"
    export_chain(chain_home, out)
    other = make_genesis([VALIDATOR])
    other_home = make_home(tmp_path / "other", other, None).path
    with pytest.raises(ExportFormatError, match="another chain"):
        import_chain(other_home, out)
    assert not (other_home / DATA_DIR).exists()


def test_export_format_is_versioned(chain_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "chain.export"
    export_chain(chain_home, out)
    with gzip.open(out, "rb") as f:
        assert f.read(16) == b"GOVCHAIN-EXPORT\n"
        size = int.from_bytes(f.read(4), "big")
        header = codec.decode(f.read(size))
    assert header["format"] == "govchain-export" and header["version"] == 1


def test_offline_snapshot_audits_clean(chain_home: Path, tmp_path: Path) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    result = snapshot_offline(home, tmp_path / "snap")
    assert result["height"] == head_of(chain_home)[0]
    report = audit(home, tmp_path / "snap")
    assert report.blocks == result["height"]


def test_a_replay_survives_a_killed_signature_worker(chain_home: Path, tmp_path: Path) -> None:
    import os
    import signal

    from node.ops.replay import Replayer, _stored_blocks

    home = copy_home(chain_home, tmp_path / "copy")
    genesis = read_genesis(home / "genesis.json")
    source = ChainStore.open(str(home / DATA_DIR), genesis)
    target = ChainStore.open(str(tmp_path / "replay"), genesis)
    replayer = Replayer(genesis, target)
    try:
        blocks = list(_stored_blocks(source))
        assert len(blocks) >= 3
        block, certificate, _ = blocks[0]
        replayer.apply(block, certificate)
        # The next block's check is under way when its worker is killed (as the audit
        # pipelines it); the replay sends it again to a new worker.
        pending = replayer.check_signatures(blocks[1][0])
        for pid in replayer.verifier.worker_pids():
            os.kill(pid, signal.SIGKILL)
        replayer.apply(blocks[1][0], blocks[1][1], pending)
        for block, certificate, _ in blocks[2:]:
            replayer.apply(block, certificate)
        assert target.head_height == source.head_height
        assert target.head_state_root == source.head_state_root
    finally:
        replayer.verifier.close()
        target.close()
        source.close()


def test_a_schema_1_home_is_refused_by_run_naming_the_re_creation(
        chain_home: Path, tmp_path: Path, capsys) -> None:
    # A home written before header version 2 records storage schema 1; its headers
    # cannot become version 2 ones (new hashes, no certificates for them), so `run`
    # refuses it with the documented path and writes nothing.
    home = copy_home(chain_home, tmp_path / "copy")
    db = plyvel.DB(str(home / DATA_DIR))
    db.put(schema.META_SCHEMA_VERSION, (1).to_bytes(4, "big"))
    before = dict(db.iterator())
    db.close()
    segments = {p.name: p.read_bytes() for p in (home / DATA_DIR / HISTORY_DIR).iterdir()}
    assert cli.main(["run", "--home", str(home)]) != 0
    error = capsys.readouterr().err
    assert "storage schema 1" in error and "header version 1" in error, error
    assert "cannot be migrated" in error and "re-create the chain from its genesis" in error
    assert "Upgrading to header version 2" in error and "migrate --home" not in error
    db = plyvel.DB(str(home / DATA_DIR))
    assert dict(db.iterator()) == before
    db.close()
    assert {p.name: p.read_bytes()
            for p in (home / DATA_DIR / HISTORY_DIR).iterdir()} == segments
