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
from storage.chain_store import ChainStore
from storage.damage import TABLES
from storage.errors import CorruptionError, DataDirLockedError
from tests.faults.leveldb_log import batch_puts, read_log_records
from tests.node.conftest import CHAIN_ID, make_genesis, make_home
from tests.operator.chain_builder import VALIDATOR, build_chain


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


def block_with_txs(home: Path) -> int:
    db = plyvel.DB(str(home / DATA_DIR))
    try:
        for key, _ in db.iterator(prefix=schema.TX_RECORD):
            return int.from_bytes(key[1:1 + schema.HEIGHT_SIZE], "big")
    finally:
        db.close()
    raise AssertionError("no transactions in the chain")


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
    db = plyvel.DB(str(home / DATA_DIR))
    db.delete(schema.tx_record_key(height, 0))
    db.close()
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
    db = plyvel.DB(str(home / DATA_DIR))
    tx_bytes, code, message, events = codec.decode(db.get(schema.tx_record_key(height, 0)))
    assert code == "ok" and events, "the first transaction should have succeeded"
    forged = {"code": [tx_bytes, "insufficient_funds", message, events],
              "message": [tx_bytes, code, "rewritten", events],
              "events": [tx_bytes, code, message, events[:-1]]}[field]
    db.put(schema.tx_record_key(height, 0), codec.encode(forged))
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == height
    tx_hash = Transaction.decode(tx_bytes).hash.hex()
    where = f"tx records (0x21), height {height}: "
    assert e.value.what == where + f"transaction 0 ({tx_hash}): " + {
        "code": "the stored result is 'insufficient_funds', re-execution gives 'ok'",
        "message": f"the stored result message is 'rewritten', re-execution gives "
                   f"{message!r}",
        "events": "the stored events differ from the ones re-execution emits"}[field]


def forge_refused_result(home: Path) -> int:
    """Rewrite the first transaction of the first block with transactions as refused
    ("insufficient_funds", no events), with a header whose results_root commits to the
    forged result and a certificate the validator signs again: a block certified by a
    quorum whose results do not follow from executing it. Returns its height."""
    height = block_with_txs(home)
    db = plyvel.DB(str(home / DATA_DIR))
    try:
        records = [codec.decode(raw) for _, raw in
                   db.iterator(prefix=schema.tx_record_prefix(height))]
        tx_bytes, code, _message, events = records[0]
        assert code == "ok" and events, "the first transaction should have succeeded"
        records[0] = (tx_bytes, "insufficient_funds", "forged", ())
        leaves = [ResultLeaf.of(compute_hash(r[0]), r[1], r[3]) for r in records]
        header = BlockHeader.decode(db.get(schema.block_header_key(height)))
        forged = dataclasses.replace(header, results_root=compute_results_root(leaves))
        old = CommitCertificate.decode(db.get(schema.certificate_key(height)))
        vote = Vote.create(CHAIN_ID, VALIDATOR, VoteKind.PRECOMMIT, height, old.round,
                           forged.hash)
        db.put(schema.tx_record_key(height, 0), codec.encode(list(records[0])))
        db.put(schema.block_header_key(height), forged.encoded)
        db.put(schema.certificate_key(height), CommitCertificate.from_votes([vote]).encoded)
    finally:
        db.close()
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
    db = plyvel.DB(str(home / DATA_DIR))
    # Block 3's time moved by one millisecond: its certificate no longer certifies it.
    header = BlockHeader.decode(db.get(schema.block_header_key(3)))
    forged = dataclasses.replace(header, timestamp_ms=header.timestamp_ms + 1)
    db.put(schema.block_header_key(3), forged.encoded)
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == 3
    assert "certificate" in e.value.what


def test_audit_pinpoints_a_forged_certificate(chain_home: Path, tmp_path: Path) -> None:
    home = copy_home(chain_home, tmp_path / "copy")
    db = plyvel.DB(str(home / DATA_DIR))
    db.put(schema.certificate_key(4), db.get(schema.certificate_key(5)))
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == 4 and "commit certificate" in e.value.what


@pytest.mark.parametrize("damage", ["moved", "deleted", "extra"])
def test_audit_pinpoints_a_damaged_tx_index(chain_home: Path, tmp_path: Path,
                                            damage: str) -> None:
    # The tx index (hash -> height, index) is what tx_get reads; the audit compares it
    # whole with the index the replay builds.
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home)
    db = plyvel.DB(str(home / DATA_DIR))
    record = db.get(schema.tx_record_key(height, 0))
    tx_hash = Transaction.decode(codec.decode(record)[0]).hash
    if damage == "moved":
        db.put(schema.tx_hash_key(tx_hash), schema.tx_location(height, 7))
    elif damage == "deleted":
        db.delete(schema.tx_hash_key(tx_hash))
    else:
        db.put(schema.tx_hash_key(bytes(32)), schema.tx_location(height, 0))
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.height == height
    expected = {"moved": f"transaction {tx_hash.hex()} is indexed at height {height} "
                         f"index 7, not at its place (height {height} index 0)",
                "deleted": f"transaction {tx_hash.hex()} (height {height} index 0) is "
                           "missing from the tx index",
                "extra": f"transaction {bytes(32).hex()} is indexed at height {height} "
                         "index 0 but is in no block"}[damage]
    assert e.value.what == "tx hash index (0x20): " + expected


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


def tamper_tx_record(db: plyvel.DB, height: int) -> None:
    tx_bytes, _, message, events = codec.decode(db.get(schema.tx_record_key(height, 0)))
    db.put(schema.tx_record_key(height, 0),
           codec.encode([tx_bytes, "insufficient_funds", message, events]))


def tamper_tx_index(db: plyvel.DB, height: int) -> None:
    record = db.get(schema.tx_record_key(height, 0))
    tx_hash = Transaction.decode(codec.decode(record)[0]).hash
    db.put(schema.tx_hash_key(tx_hash), schema.tx_location(height, 7))


def tamper(db: plyvel.DB, table: str, height: int) -> bytes:
    """Rewrite one record of `table` with valid LevelDB checksums; its prefix."""
    if table == "meta":
        db.put(schema.META_GENESIS_STATE_ROOT, flip_byte(db.get(schema.META_GENESIS_STATE_ROOT)))
        return schema.META
    if table == "block headers":
        header = BlockHeader.decode(db.get(schema.block_header_key(3)))
        db.put(schema.block_header_key(3),
               dataclasses.replace(header, timestamp_ms=header.timestamp_ms + 1).encoded)
        return schema.BLOCK_HEADER
    if table == "block hash index":
        tamper_block_hash_index(db)
        return schema.BLOCK_HASH
    if table == "commit certificates":
        db.put(schema.certificate_key(4), db.get(schema.certificate_key(5)))
        return schema.CERTIFICATE
    if table in ("validator set name", "validator set key"):
        tamper_validator_set(db, table.rsplit(" ", 1)[1])
        return schema.VALIDATOR_SET
    if table == "tx hash index":
        tamper_tx_index(db, height)
        return schema.TX_HASH
    if table == "tx records":
        tamper_tx_record(db, height)
        return schema.TX_RECORD
    prefix = {"state": schema.STATE, "state-tree buckets": schema.TREE_BUCKET,
              "state-tree bucket hashes": schema.TREE_BUCKET_HASH}[table]
    key, value = first_item(db, prefix)
    db.put(key, flip_byte(value))
    return prefix


@pytest.mark.parametrize("table", [
    "meta", "block headers", "block hash index", "commit certificates",
    "validator set name", "validator set key", "tx hash index", "tx records", "state",
    "state-tree buckets", "state-tree bucket hashes"])
def test_audit_names_each_tampered_table(chain_home: Path, tmp_path: Path, table: str) -> None:
    # Every table the node reads is re-derived by the replay: a record rewritten with
    # valid LevelDB checksums is a MISMATCH that names its table.
    home = copy_home(chain_home, tmp_path / "copy")
    height = block_with_txs(home)
    db = plyvel.DB(str(home / DATA_DIR))
    try:
        prefix = tamper(db, table, height)
    finally:
        db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert e.value.what.startswith(f"{TABLES[prefix]} (0x{prefix.hex()})"), e.value.what


@pytest.mark.parametrize("prefix", [schema.BLOCK_HEADER, schema.TX_RECORD],
                         ids=["header", "tx record"])
def test_audit_names_a_record_beyond_the_head(chain_home: Path, tmp_path: Path,
                                              prefix: bytes) -> None:
    # The replay stops at the head: what is stored past it was written by no block.
    home = copy_home(chain_home, tmp_path / "copy")
    head, height = head_of(home)[0], block_with_txs(home)
    db = plyvel.DB(str(home / DATA_DIR))
    if prefix == schema.BLOCK_HEADER:
        db.put(schema.block_header_key(head + 1), db.get(schema.block_header_key(head)))
    else:
        db.put(schema.tx_record_key(head + 1, 0), db.get(schema.tx_record_key(height, 0)))
    db.close()
    with pytest.raises(AuditMismatch) as e:
        audit(home)
    assert (e.value.height, e.value.what) == (head + 1, (
        f"{TABLES[prefix]} (0x{prefix.hex()}), height {head + 1}: stored, but the replay "
        "did not write it"))


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


# ------------------------------------------------------------------ damaged files


def head_height_of(payload: bytes) -> int:
    raw = batch_puts(payload).get(schema.META_HEAD_HEIGHT)
    return -1 if raw is None else schema.decode_height(raw)


def data_files(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (home / DATA_DIR).iterdir() if p.name != "LOCK"}


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


@pytest.mark.parametrize("record", ["tx record", "state entry"])
def test_audit_reports_a_flipped_byte_in_a_table_as_damage(unopened_home: Path,
                                                           tmp_path: Path, record: str,
                                                           capsys) -> None:
    # A checksum mismatch met while replaying (a tx record) or while comparing the
    # state at the end: DAMAGED, naming the table file, not MISMATCH.
    home = copy_home(unopened_home, tmp_path / "copy")
    data = home / DATA_DIR
    db = plyvel.DB(str(data), compression=None)  # uncompressed: the value can be found
    if record == "tx record":
        height = next(int.from_bytes(k[1:9], "big") for k, _ in
                      db.iterator(prefix=schema.TX_RECORD) if int.from_bytes(k[1:9], "big") > 2)
        value = db.get(schema.tx_record_key(height, 0))
    else:
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
