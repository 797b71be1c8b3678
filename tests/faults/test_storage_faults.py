"""Storage faults against a real node process on real LevelDB (docs/reliability.md).

- A full disk: the data directory sits on a tiny tmpfs; load fills it; the node must
  stop with one ERROR line naming the disk (no traceback), and once space is freed it
  restarts at a consistent head with every block and transaction it reported final.
- A damaged file: bytes flipped in a table (.ldb) or in the log (.log), or a table or
  the log deleted, in a stopped node's data directory: the node refuses to start with
  a clear message, and `govchain audit` reports the damage. A log cut short and one
  flipped byte in a table are reported by the audit too, naming the file.
- A torn write: the log of a SIGKILLed node cut inside its last record: the node
  restarts at a consistent head with everything of the intact records, and audit passes.

Bounded in time; 127.0.0.1 only; every process started here is stopped here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest

from bench.common import (
    ROOT,
    NodeProcess,
    init_node,
    make_genesis,
    make_keys,
    presign_transfers,
)
from chain.genesis import ChainParams
from chain.tx import Transaction
from devnet.ports import get_free_port
from sdk import Client, RpcClientError
from storage import schema
from tests.faults.leveldb_log import batch_puts, read_log_records

pytestmark = pytest.mark.slow

PARAMS = ChainParams(block_interval_ms=100, empty_block_interval_ms=400,
                     timeout_propose_ms=400, timeout_vote_ms=200, timeout_delta_ms=100,
                     max_block_txs=500)
DEADLINE_S = 120.0


class NodeUnderTest:
    """One validator in its own process, a follower of its final blocks, and load."""

    def __init__(self, workdir: Path, senders: int = 100) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        validators = make_keys(1, salt=11)
        self.senders = make_keys(senders, salt=12)
        self.genesis = make_genesis("govchain-storage-faults", validators, self.senders,
                                    PARAMS)
        self.proc: NodeProcess = init_node(workdir, "node0", self.genesis, validators[0], [],
                                           get_free_port(), log_level="INFO")
        self.client = Client(self.proc.rpc_url, timeout_s=10.0)
        self.final: dict[str, tuple[int, int]] = {}
        """tx hash -> (height, index) of every tx seen in a final block."""
        self.block_hashes: dict[int, str] = {}
        self._followed = 0

    @property
    def home(self) -> Path:
        return self.proc.home

    @property
    def data(self) -> Path:
        return self.proc.home / "data"

    def start(self) -> None:
        self.proc.start()

    def wait_up(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                self.client.status()
                return
            except (RpcClientError, OSError):
                assert self.exit_code() is None, f"node exited:\n{self.log()[-3000:]}"
                assert time.monotonic() < deadline, "node did not come up"
                time.sleep(0.1)

    def exit_code(self) -> int | None:
        assert self.proc.process is not None
        return self.proc.process.poll()

    def wait_exit(self, timeout_s: float = DEADLINE_S) -> int:
        assert self.proc.process is not None
        return self.proc.process.wait(timeout_s)

    def stop(self) -> None:
        self.proc.stop()

    def kill(self) -> None:
        assert self.proc.process is not None
        self.proc.process.kill()
        self.proc.process.wait(10)

    def log(self) -> str:
        return (self.home / "node.log").read_text(errors="replace")

    def head(self) -> int:
        return int(self.client.status()["height"])

    def follow(self) -> None:
        """Record every final block up to the node's head (blocks are never reverted)."""
        head = self.head()
        while self._followed < head:
            height = self._followed + 1
            block = self.client.call("chain_block", height=height)
            self.block_hashes[height] = block["hash"]
            for index, tx_hash in enumerate(block["txs"]):
                self.final[tx_hash] = (height, index)
            self._followed = height

    def submit(self, txs: list[Transaction]) -> None:
        self.client.call("tx_submit_batch", txs=[tx.encoded.hex() for tx in txs])

    def load_until_final(self, txs: list[Transaction]) -> None:
        """Submit `txs` and follow blocks until all of them are final."""
        for i in range(0, len(txs), 500):
            self.submit(txs[i:i + 500])
        deadline = time.monotonic() + DEADLINE_S
        while not all(tx.hash.hex() in self.final for tx in txs):
            assert time.monotonic() < deadline, "the load did not become final"
            time.sleep(0.2)
            self.follow()

    def wait_height(self, target: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while self.head() < target:
            assert time.monotonic() < deadline, f"head stuck below {target}"
            time.sleep(0.1)

    def check_history(self, *, below: int | None = None) -> None:
        """Every followed block (below `below`) is there, unchanged, with the same txs;
        a sample of the final txs is found by hash (the RPC rate limit bounds a full
        check by hash)."""
        txs_by_height: dict[int, list[str]] = {}
        for tx_hash, (height, _) in sorted(self.final.items(), key=lambda i: i[1]):
            txs_by_height.setdefault(height, []).append(tx_hash)
        for height, block_hash in self.block_hashes.items():
            if below is None or height < below:
                block = self.client.call("chain_block", height=height)
                assert block["hash"] == block_hash
                assert block["txs"] == txs_by_height.get(height, [])
        sample = [h for h, (height, _) in self.final.items() if below is None or height < below]
        for tx_hash in sample[::max(1, len(sample) // 200)]:
            height, index = self.final[tx_hash]
            info = self.client.get_tx(tx_hash)
            assert (info["status"], info["height"], info["index"]) == \
                ("final", height, index), info


def govchain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=DEADLINE_S, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def audit(home: Path) -> tuple[int, dict[str, object]]:
    result = govchain("--json", "audit", "--home", str(home))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line]


@pytest.fixture
def running() -> Iterator[list[NodeUnderTest]]:
    """Nodes a test starts; whatever happens, none is left running."""
    nodes: list[NodeUnderTest] = []
    yield nodes
    for node in nodes:
        if node.proc.process is not None and node.proc.process.poll() is None:
            node.kill()


# ------------------------------------------------------------------ a full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs; skipped where mounting is not permitted."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_full_disk_stops_the_node_cleanly_and_loses_nothing(tmp_path: Path, tiny_disk: Path,
                                                             running) -> None:
    node = NodeUnderTest(tmp_path / "net")
    running.append(node)
    node.data.symlink_to(tiny_disk)  # the data directory lives on the tiny disk
    node.start()
    node.wait_up()
    txs = presign_transfers(node.genesis.chain_id, node.senders, 60_000)
    deadline = time.monotonic() + DEADLINE_S
    sent = 0
    while node.exit_code() is None:
        assert time.monotonic() < deadline, "the disk never filled"
        try:
            if sent < len(txs):
                node.submit(txs[sent:sent + 500])
                sent += 500
            node.follow()
        except (RpcClientError, OSError):
            time.sleep(0.1)  # the node is stopping
        time.sleep(0.05)
    code = node.wait_exit()
    log = node.log()
    errors = error_lines(log)
    assert code != 0
    assert len(errors) == 1, errors
    assert "is full" in errors[0] and str(tiny_disk) in errors[0], errors[0]
    assert "restart" in errors[0]
    assert "Traceback" not in log
    assert node.block_hashes, "no block was final before the disk filled"

    # Free space: the same data on a bigger disk.
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    node.start()
    node.wait_up()
    assert node.head() >= max(node.block_hashes)
    node.check_history()
    node.wait_height(max(node.block_hashes) + 2)  # finalizing again
    node.stop()
    code, report = audit(node.home)
    assert (code, report["result"]) == (0, "OK"), report


# ------------------------------------------------------------------ damaged files


@pytest.fixture(scope="module")
def stopped_chain(tmp_path_factory) -> Iterator[NodeUnderTest]:
    """A node that finalized 300 transfers, then stopped; its log compacted into tables."""
    node = NodeUnderTest(tmp_path_factory.mktemp("chain") / "net", senders=20)
    node.start()
    try:
        node.wait_up()
        node.load_until_final(presign_transfers(node.genesis.chain_id, node.senders, 300))
    finally:
        node.stop()
    yield node


def copy_chain(chain: NodeUnderTest, dst: Path, *, compact: bool) -> Path:
    """A copy of the stopped chain's home; with `compact`, its log is made a table."""
    home = dst / "home"
    shutil.copytree(chain.home, home)
    if compact:
        db = plyvel.DB(str(home / "data"))  # opening turns the log into a level-0 table
        db.compact_range()
        db.close()
    return home


def start_refused(home: Path) -> str:
    """Run the node on `home`; it must exit non-zero at once. Its single error line."""
    proc = NodeProcess("node0", home, "", 0)
    proc.start()
    assert proc.process is not None
    try:
        code = proc.process.wait(DEADLINE_S)
    finally:
        proc.stop()
    log = (home / "node.log").read_text(errors="replace")
    assert code != 0, log[-2000:]
    assert "Traceback" not in log
    errors = error_lines(log)
    assert len(errors) == 1, errors
    return errors[0]


def flip_bytes(path: Path, offsets: list[int]) -> None:
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_invalid_flipped_bytes_in_a_table_refused_and_found_by_audit(stopped_chain, tmp_path
                                                                     ) -> None:
    home = copy_chain(stopped_chain, tmp_path, compact=True)
    table = max((home / "data").glob("*.ldb"), key=lambda p: p.stat().st_size)
    size = table.stat().st_size
    # Every 512th byte of the data blocks (the 48-byte footer left alone): each block
    # is hit, so whichever block a read needs fails its checksum.
    flip_bytes(table, list(range(0, size - 48, 512)))
    error = start_refused(home)
    assert "corrupt" in error and "checksum mismatch" in error, error
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report
    # LevelDB's message names no file: audit names the tables that do not read, and
    # the table file (every data block is hit, so each table fails from its start).
    for name in ("tx index (0x22)", "block locations (0x14)", "state (0x30)"):
        assert f"{name} unreadable from its start (in {table.name})" in str(report["what"]), \
            report


def test_invalid_deleted_table_refused_and_found_by_audit(stopped_chain, tmp_path) -> None:
    home = copy_chain(stopped_chain, tmp_path, compact=True)
    table = max((home / "data").glob("*.ldb"), key=lambda p: p.stat().st_size)
    table.unlink()
    error = start_refused(home)
    assert "corrupt" in error and "missing files" in error, error
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report
    assert "missing files" in str(report["what"])


def test_invalid_flipped_bytes_in_the_log_refused_and_found_by_audit(stopped_chain, tmp_path
                                                                     ) -> None:
    home = copy_chain(stopped_chain, tmp_path, compact=False)
    log_file = next((home / "data").glob("*.log"))
    records = read_log_records(log_file)
    biggest = max((r for r in records if head_height_of(r.payload) is not None),
                  key=lambda r: r.end - r.start)  # the block with the transfers
    flip_bytes(log_file, [(biggest.start + biggest.end) // 2])
    error = start_refused(home)
    assert "corrupt" in error and "checksum mismatch" in error, error
    assert log_file.name in error, error  # named from LevelDB's own LOG
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report


def test_invalid_deleted_log_refused_and_found_by_audit(stopped_chain, tmp_path) -> None:
    # LevelDB alone would open without it, at an older head and an older sign state.
    home = copy_chain(stopped_chain, tmp_path, compact=False)
    log_file = next((home / "data").glob("*.log"))
    log_file.unlink()
    error = start_refused(home)
    assert "corrupt" in error and f"{log_file.name} is missing" in error, error
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report
    assert f"the log {log_file.name} is missing" in str(report["what"]), report


def test_invalid_log_cut_short_found_by_audit(stopped_chain, tmp_path) -> None:
    home = copy_chain(stopped_chain, tmp_path, compact=False)
    log_file = next((home / "data").glob("*.log"))
    records = read_log_records(log_file)
    middle = records[len(records) // 2]
    with open(log_file, "r+b") as f:
        f.truncate((middle.start + middle.end) // 2)
    before = {p.name: p.read_bytes() for p in (home / "data").iterdir()
              if p.name != "LOCK" and p.is_file()}
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report
    assert f"the log {log_file.name} ends inside a record" in str(report["what"]), report
    after = {p.name: p.read_bytes() for p in (home / "data").iterdir()
             if p.name != "LOCK" and p.is_file()}
    assert after == before  # found before any open: the evidence is still there


def test_invalid_flipped_byte_in_a_table_found_by_audit(stopped_chain, tmp_path) -> None:
    # One byte of the state table damaged: the node may well start (it reads no old
    # state data block at start) and stops when it meets it; the audit names the file.
    home = copy_chain(stopped_chain, tmp_path, compact=False)
    db = plyvel.DB(str(home / "data"), compression=None)  # uncompressed: values show
    values = [value for _, value in db.iterator(prefix=schema.STATE) if len(value) > 16]
    value = values[len(values) // 2]
    db.compact_range()
    db.close()
    (table,) = [p for p in (home / "data").glob("*.ldb") if value in p.read_bytes()]
    flip_bytes(table, [table.read_bytes().index(value) + len(value) // 2])
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report
    assert "checksum mismatch" in str(report["what"]) and table.name in str(report["what"])


def test_invalid_flipped_byte_in_a_history_segment_found_by_audit(stopped_chain,
                                                                  tmp_path) -> None:
    # One byte of an old block's frames damaged: the node starts (it checks the head
    # block's frames at start, not every old one); the audit names the segment file.
    home = copy_chain(stopped_chain, tmp_path, compact=False)
    (segment,) = (home / "data" / "history").glob("*.seg")
    flip_bytes(segment, [segment.stat().st_size // 3])
    code, report = audit(home)
    assert (code, report["result"]) == (2, "DAMAGED"), report
    assert str(segment) in str(report["what"]), report


# ------------------------------------------------------------------ a torn write


def head_height_of(payload: bytes) -> int | None:
    raw = batch_puts(payload).get(schema.META_HEAD_HEIGHT)
    return None if raw is None else schema.decode_height(raw)


def test_torn_last_write_restarts_at_a_consistent_head(tmp_path: Path, running) -> None:
    node = NodeUnderTest(tmp_path / "net")
    running.append(node)
    node.start()
    node.wait_up()
    txs = presign_transfers(node.genesis.chain_id, node.senders, 4000)
    node.load_until_final(txs[:1000])
    for i in range(1000, len(txs), 500):  # blocks are being committed when the kill lands
        node.submit(txs[i:i + 500])
    time.sleep(0.3)
    node.follow()
    node.kill()

    log_file = next(node.data.glob("*.log"))
    records = read_log_records(log_file)
    last = records[-1]
    torn_height = next((h for r in reversed(records)
                        if (h := head_height_of(r.payload)) is not None), None)
    assert torn_height is not None and torn_height >= 2
    # Cut the log inside its last record, as if the power failed while it was written.
    with open(log_file, "r+b") as f:
        f.truncate((last.start + last.end) // 2)
    # The block of the torn record may be lost; every earlier one was synced before.
    lost_height = head_height_of(last.payload)

    node.start()
    node.wait_up()
    head = node.head()
    assert head >= torn_height - 1
    node.check_history(below=lost_height)
    # The validator persisted its lock on the torn block before precommitting it, so it
    # finalizes that same block again: nothing it reported final changes.
    node.wait_height(max(node.block_hashes) + 2)
    node.check_history()
    node.stop()
    code, report = audit(node.home)
    assert (code, report["result"]) == (0, "OK"), report
