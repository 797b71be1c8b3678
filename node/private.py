"""The holder side of private registries: payloads off the chain, reads, the read log.

`PrivateVault` is what a holding ministry's node keeps beside the chain (storage/
private_store.py): it takes a payload from its writer once the record's commitment is
final, answers signed reads that the chain's grants and roles allow, logs every read
and refused read, anchors the log on the chain, and deletes payload and key when a
lawful erasure is final. `PrivateSync` fetches the payloads of newly committed records
from other holders over p2p and serves them to holders only. Neither ever writes the
chain state, and a payload never leaves them for a node the namespace does not name.
Theory of operation: docs/privacy.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import nacl.exceptions
import nacl.public

from chain import codec
from chain.commitment import (
    DOMAIN_PRIVATE_FETCH,
    DOMAIN_PRIVATE_READ,
    SALT_SIZE,
    compute_read_log_proof,
    compute_read_log_root,
    encode_read_entry,
    get_fetch_request_payload,
    get_read_request_payload,
    is_matching_commitment,
)
from chain.crypto import (
    Address,
    compute_address,
    compute_hash,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import ChainError
from chain.tx import Transaction, make_transaction
from ledger.errors import LedgerError
from ledger.keys import NAMESPACE_PREFIX, RECORD_PREFIX
from ledger.private import (
    MAX_ANCHOR_ENTRIES,
    PRIVATE_ANCHOR,
    get_anchor,
    get_anchor_head,
    get_erasure,
    get_grant,
    get_holder_addresses,
    get_private_namespace,
    is_grant_active,
    is_holder_key,
)
from ledger.registry import get_record
from ledger.roles import AUTHORITY, WRITER, has_role
from ledger.state import StateReader
from node.errors import NodeError
from p2p.errors import P2PError
from p2p.frames import MAX_PRIVATE_PAYLOAD_BYTES, MessageType
from p2p.peers import PENALTY_BAD_RESPONSE, PENALTY_REJECTED_MESSAGE
from storage.private_store import MAX_BATCH_RECORDS, PrivateStore

if TYPE_CHECKING:
    from node.config import NodeHome
    from node.errors import MempoolError
    from node.execution import ExecutedBlock
    from node.mempool import Mempool
    from node.runtime import Clock
    from p2p.network import P2PNetwork
    from storage.chain_store import ChainStore

log = logging.getLogger("govchain.private")

READ = "read"
READS = "reads"
REQUEST_WINDOW_MS = 60_000
"""A signed read request is honoured this long before or after the node's clock."""
MAX_REMEMBERED_REQUESTS = 100_000
"""Request hashes kept to refuse replays within the window (oldest forgotten first)."""
MAX_WANTED = 10_000
"""Most records whose payload a holder is still fetching from other holders."""
MAX_READS_ANSWER = 100
FETCH_INTERVAL_S = 0.5
MAX_FETCHED_BYTES = 64 * 1024 * 1024
"""Most payload bytes a fetch round holds in memory before waiting for their write."""
DEFAULT_ANCHOR_INTERVAL_MS = 10_000


class PrivateError(NodeError):
    """A private read, submission or fetch refused; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PrivateHost(Protocol):
    """What the vault needs of its node (node.node.Node), named here so that this module
    does not import the driver that owns it."""

    @property
    def home(self) -> NodeHome: ...
    @property
    def chain_id(self) -> str: ...
    @property
    def state(self) -> StateReader: ...
    @property
    def store(self) -> ChainStore: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def mempool(self) -> Mempool: ...

    def add_commit_listener(self, listener: Callable[[ExecutedBlock, Any], None]) -> None: ...

    async def submit_txs(self, txs: list[Transaction], *, relay: bool = True
                         ) -> list[MempoolError | None]: ...


class PrivateVault:
    """One node's payloads, reads and read log (opened on first use)."""

    def __init__(self, node: PrivateHost) -> None:
        self.node = node
        self._store: PrivateStore | None = None
        self._seen_requests: OrderedDict[bytes, int] = OrderedDict()
        self.wanted: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        """Records this holder must still fetch: (namespace, key) -> commitment."""
        self.wanted_changed = asyncio.Event()
        self.anchor_interval_ms = DEFAULT_ANCHOR_INTERVAL_MS
        self._last_anchor_ms = 0
        self._anchor_tx: Transaction | None = None
        self._pending: list[tuple[tuple[str, str, bytes, bytes], asyncio.Future[None]]] = []
        """Checked payloads waiting for the next group write, with their waiters: at most
        one per RPC request being served and one per wanted record (MAX_WANTED)."""
        self._writing = False
        self._read_lock = threading.Lock()
        """Reads run in worker threads: one at a time, for the replay memory and the log."""
        node.add_commit_listener(self.on_commit)

    @property
    def store(self) -> PrivateStore:
        if self._store is None:
            self._store = PrivateStore(str(self.node.home.path / "private"))
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def holder_key(self) -> bytes | None:
        key = self.node.home.validator_key
        return None if key is None else bytes(key.public_key)

    def is_holder(self, namespace: dict[str, Any]) -> bool:
        key = self.holder_key
        return key is not None and is_holder_key(namespace, key)

    def _namespace(self, name: str) -> dict[str, Any]:
        try:
            return get_private_namespace(self.node.state, name)
        except LedgerError as e:
            raise PrivateError(e.code, e.message) from e

    def _held_namespace(self, name: str) -> dict[str, Any]:
        namespace = self._namespace(name)
        if not self.is_holder(namespace):
            raise PrivateError("not_holder", f"this node holds no payload of {name!r}: ask a "
                               f"node of a ministry the namespace names")
        return namespace

    def _record(self, namespace: str, key: str) -> dict[str, Any]:
        record = get_record(self.node.state, namespace, key)
        if record is None or "commitment" not in record:
            raise PrivateError("unknown_record", f"no private record {namespace}/{key}")
        return record

    # ---------------------------------------------------------------- payloads in

    async def submit(self, namespace: str, key: str, salt: bytes, payload: bytes) -> None:
        """Keep the payload of a final record from its writer, if it opens the commitment
        (durable when this returns: written with the other payloads of the moment)."""
        self._held_namespace(namespace)
        record = self._record(namespace, key)
        if get_erasure(self.node.state, namespace, key) is not None:
            raise PrivateError("record_erased", f"{namespace}/{key} was erased")
        if len(payload) > MAX_PRIVATE_PAYLOAD_BYTES or len(salt) != SALT_SIZE:
            raise PrivateError("payload_mismatch", "the salt is 32 bytes and the payload at "
                               f"most {MAX_PRIVATE_PAYLOAD_BYTES} bytes")
        if not is_matching_commitment(record["commitment"], salt, payload):
            raise PrivateError("payload_mismatch", f"the payload and salt do not open the "
                               f"commitment of {namespace}/{key}")
        if not await self.keep(namespace, key, salt, payload):
            raise PrivateError("record_erased", f"{namespace}/{key} was erased")

    async def keep(self, namespace: str, key: str, salt: bytes, payload: bytes) -> bool:
        """Write a checked payload to the store in the next group write; False (and
        nothing kept) when the record's erasure became final meanwhile."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((namespace, key, salt, payload), future))
        if not self._writing:
            self._writing = True
            _spawn(self._write_pending())
        await future
        if get_erasure(self.node.state, namespace, key) is not None:
            # Erased while it was being written (the erasure's own task may have run first).
            await asyncio.to_thread(self.store.erase_payload, namespace, key)
            return False
        return True

    async def _write_pending(self) -> None:
        """Group commit: write every payload waiting, MAX_BATCH_RECORDS at a time, in one
        synced LevelDB write and one key file each; those that arrive during a write go
        in the next. One such task at a time."""
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH_RECORDS]
                del self._pending[:MAX_BATCH_RECORDS]
                try:
                    await asyncio.to_thread(self.store.put_payloads, [r for r, _ in batch])
                except Exception as e:  # a disk fault: each waiting submitter is told
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._writing = False

    def on_commit(self, executed: ExecutedBlock, certificate: object) -> None:
        """Learn the records to fetch and the erasures to carry out from a final block."""
        for result in executed.results:
            for event in result.events:
                if event.kind == "private_record_put":
                    self._want(str(event.attributes["namespace"]),
                               str(event.attributes["key"]),
                               bytes(event.attributes["commitment"]))  # type: ignore[arg-type]
                elif event.kind == "private_erased":
                    self._erase(str(event.attributes["namespace"]),
                                str(event.attributes["key"]))
        self._maybe_anchor()

    def _want(self, namespace: str, key: str, commitment: bytes) -> None:
        try:
            if not self.is_holder(self._namespace(namespace)):
                return
        except PrivateError:
            return
        if self.store.has_payload(namespace, key):
            return
        if len(self.wanted) >= MAX_WANTED:
            dropped, _ = self.wanted.popitem(last=False)
            log.warning("more than %d private payloads to fetch: %s/%s dropped", MAX_WANTED,
                        *dropped)
        self.wanted[(namespace, key)] = commitment
        self.wanted_changed.set()

    def find_missing(self) -> list[tuple[str, str, bytes]]:
        """(namespace, key, commitment) of the records of namespaces this node holds
        whose payload it lacks (say, committed while it was down), at most MAX_WANTED.
        Carries out on the way the erasures it missed (final while it was down, or cut
        short by a crash). Reads the disk: run it in a worker thread."""
        holder_key = self.holder_key
        if holder_key is None:
            return []
        store, found = self.node.store, []
        for ns_key, value in store.iterate_state(NAMESPACE_PREFIX):
            if not is_holder_key(codec.decode(value), holder_key):
                continue
            name = ns_key[len(NAMESPACE_PREFIX):].decode()
            for _key, record_value in store.iterate_state(RECORD_PREFIX + name.encode() + b"/"):
                record = codec.decode(record_value)
                key = str(record["key"])
                if get_erasure(self.node.state, name, key) is not None:
                    self._erase_now(self.store, name, key)
                elif not self.store.has_payload(name, key):
                    found.append((name, key, bytes(record["commitment"])))
                    if len(found) >= MAX_WANTED:
                        return found
        return found

    def _erase(self, namespace: str, key: str) -> None:
        self.wanted.pop((namespace, key), None)
        if self._store is None and not self.is_holder_of(namespace):
            return
        store = self.store
        _spawn(asyncio.to_thread(self._erase_now, store, namespace, key))

    @staticmethod
    def _erase_now(store: PrivateStore, namespace: str, key: str) -> None:
        if store.erase_payload(namespace, key):
            log.info("erased the payload of %s/%s and its key, by lawful order", namespace, key)

    def is_holder_of(self, namespace: str) -> bool:
        try:
            return self.is_holder(self._namespace(namespace))
        except PrivateError:
            return False

    # ---------------------------------------------------------------- p2p

    def answer_fetch(self, peer_id: str, own_id: str, payload: Any
                     ) -> tuple[MessageType, Any]:
        """Answer GET_PRIVATE: the sealed payload to a holder, an ERROR to anyone else."""
        name, key, holder_key, box_key, signature = payload
        try:
            namespace = self._namespace(name)
        except PrivateError as e:
            return MessageType.ERROR, [e.code, e.message[:256]]
        if not is_holder_key(namespace, holder_key):
            return MessageType.ERROR, ["not_holder", "that key holds no payload of the namespace"]
        message = signing_bytes(DOMAIN_PRIVATE_FETCH, self.node.chain_id,
                                get_fetch_request_payload(name, key, box_key,
                                                          bytes.fromhex(peer_id),
                                                          bytes.fromhex(own_id)))
        if not is_valid_signature(holder_key, message, signature):
            return MessageType.ERROR, ["bad_signature", "the fetch request's signature fails"]
        if get_erasure(self.node.state, name, key) is not None:
            return MessageType.ERROR, ["record_erased", "the payload was erased"]
        held = self.store.get_payload(name, key) if self.is_holder(namespace) else None
        if held is None:
            return MessageType.ERROR, ["not_held", "this node does not hold that payload"]
        sealed = nacl.public.SealedBox(nacl.public.PublicKey(box_key)).encrypt(
            codec.encode(list(held)))
        return MessageType.PRIVATE, bytes(sealed)

    # ---------------------------------------------------------------- reads

    def read(self, action: str, namespace: str, key: str, reader_key: bytes,
             timestamp_ms: int, signature: bytes) -> dict[str, Any]:
        """A signed read (action "read": the payload; "reads": the record's read log).

        Refusals raise PrivateError; every request about a record this node holds,
        granted or refused, is appended to the read log first (a synced write: run it in
        a worker thread; reads are taken one at a time)."""
        with self._read_lock:
            return self._read(action, namespace, key, reader_key, timestamp_ms, signature)

    def _read(self, action: str, namespace: str, key: str, reader_key: bytes,
              timestamp_ms: int, signature: bytes) -> dict[str, Any]:
        ns = self._held_namespace(namespace)
        record = self._record(namespace, key)
        reader = compute_address(reader_key)
        message = signing_bytes(DOMAIN_PRIVATE_READ, self.node.chain_id,
                                get_read_request_payload(action, namespace, key, timestamp_ms))
        request_hash = compute_hash(message + signature)
        outcome, basis = self._check_read(action, ns, record, reader, reader_key, message,
                                          signature, timestamp_ms, request_hash)
        self.store.append_read(namespace, key, {
            "namespace": namespace, "key": key, "reader": reader, "action": action,
            "time_ms": self.node.clock.now_ms(), "outcome": outcome, "basis": basis,
            "request": request_hash})
        if outcome != "ok":
            raise PrivateError(outcome, _REFUSALS[outcome].format(
                reader=reader.hex(), record=f"{namespace}/{key}"))
        if action == READS:
            return self._read_log(namespace, key)
        held = self.store.get_payload(namespace, key)
        if held is None:
            raise PrivateError("not_held", f"this node does not hold {namespace}/{key} yet")
        salt, payload = held
        return {"namespace": namespace, "key": key, "payload": payload, "salt": salt,
                "commitment": record["commitment"], "basis": basis}

    def _check_read(self, action: str, ns: dict[str, Any], record: dict[str, Any],
                    reader: Address, reader_key: bytes, message: bytes, signature: bytes,
                    timestamp_ms: int, request_hash: bytes) -> tuple[str, str]:
        """(outcome, basis): "ok" and why it is allowed, or the refusal code."""
        if action not in (READ, READS):
            return "bad_request", ""
        if not is_valid_signature(reader_key, message, signature):
            return "bad_signature", ""
        if abs(timestamp_ms - self.node.clock.now_ms()) > REQUEST_WINDOW_MS:
            return "stale_request", ""
        if request_hash in self._seen_requests:
            return "replayed_request", ""
        self._remember(request_hash, timestamp_ms)
        name, key = record["namespace"], record["key"]
        if get_erasure(self.node.state, name, key) is not None:
            return "record_erased", ""
        basis = self._get_read_basis(action, ns, record, reader)
        return ("ok", basis) if basis else ("no_grant", "")

    def _get_read_basis(self, action: str, ns: dict[str, Any], record: dict[str, Any],
                        reader: Address) -> str:
        """Why `reader` may read, or "" when nothing allows it."""
        name, key, state = record["namespace"], record["key"], self.node.state
        if reader in get_holder_addresses(ns):
            return "holder"
        if has_role(state, WRITER, name, reader):
            return "writer"
        if record["subject"] == reader:
            return "subject"
        if action == READS and has_role(state, AUTHORITY, name, reader):
            return "authority"
        if action == READ and is_grant_active(get_grant(state, name, key, reader),
                                              self.node.clock.now_ms()):
            return "grant"
        return ""

    def _remember(self, request_hash: bytes, timestamp_ms: int) -> None:
        self._seen_requests[request_hash] = timestamp_ms
        horizon = self.node.clock.now_ms() - 2 * REQUEST_WINDOW_MS
        while self._seen_requests and (len(self._seen_requests) > MAX_REMEMBERED_REQUESTS
                                       or next(iter(self._seen_requests.values())) < horizon):
            self._seen_requests.popitem(last=False)

    def _read_log(self, namespace: str, key: str) -> dict[str, Any]:
        """The record's read-log entries, each with its anchor proof when anchored."""
        holder = compute_address(self.holder_key or b"")
        entries: list[dict[str, Any]] = []
        for seq in self.store.iterate_record_reads(namespace, key):
            if len(entries) >= MAX_READS_ANSWER:
                break
            entry = self.store.get_read(seq)
            assert entry is not None, f"read-log index names a missing entry {seq}"
            entries.append({"entry": entry, "anchor": self._get_anchor_proof(holder, seq)})
        return {"namespace": namespace, "key": key, "holder": holder, "entries": entries}

    def _get_anchor_proof(self, holder: bytes, seq: int) -> dict[str, Any] | None:
        state = self.node.state
        batches, next_seq = get_anchor_head(state, holder)
        if seq >= next_seq:
            return None
        low, high = 0, batches - 1
        while low < high:  # the last batch whose first_seq <= seq
            middle = (low + high + 1) // 2
            anchor = get_anchor(state, holder, middle)
            assert anchor is not None
            if anchor["first_seq"] <= seq:
                low = middle
            else:
                high = middle - 1
        anchor = get_anchor(state, holder, low)
        assert anchor is not None
        leaves = self._encoded_entries(anchor["first_seq"], anchor["count"])
        index = seq - anchor["first_seq"]
        return {"batch": low, "index": index, "size": anchor["count"], "root": anchor["root"],
                "height": anchor["height"],
                "path": list(compute_read_log_proof(leaves, index))}

    def _encoded_entries(self, first_seq: int, count: int) -> list[bytes]:
        leaves = []
        for seq in range(first_seq, first_seq + count):
            entry = self.store.get_read(seq)
            assert entry is not None, f"read-log entry {seq} is missing"
            leaves.append(encode_read_entry(entry))
        return leaves

    # ---------------------------------------------------------------- anchoring

    def _maybe_anchor(self) -> None:
        """Submit the next read-log batch's commitment, signed by this validator."""
        key = self.node.home.validator_key
        if key is None or self._store is None:
            return
        state, address = self.node.state, key.address
        batch, first_seq = get_anchor_head(state, address)
        if self._anchor_tx is not None and self._anchor_tx.hash in self.node.mempool:
            return  # one anchor at a time; a failed one is made again from the chain's head
        self._anchor_tx = None
        count = min(self.store.next_seq - first_seq, MAX_ANCHOR_ENTRIES)
        now_ms = self.node.clock.now_ms()
        if count <= 0 or now_ms - self._last_anchor_ms < self.anchor_interval_ms:
            return
        root = compute_read_log_root(self._encoded_entries(first_seq, count))
        tx = make_transaction(self.node.chain_id, key, self.node.mempool.next_nonce(address),
                              PRIVATE_ANCHOR, {"batch": batch, "first_seq": first_seq,
                                               "count": count, "root": root})
        self._anchor_tx = tx
        self._last_anchor_ms = now_ms
        _spawn(self.node.submit_txs([tx]))


_TASKS: set[asyncio.Task[Any]] = set()
"""Erasures and anchor submissions under way (a reference keeps each task alive)."""


def _spawn(work: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)

_REFUSALS = {
    "bad_request": "the action must be read or reads",
    "bad_signature": "the request's signature does not verify for the reader key",
    "stale_request": "the request's time is more than a minute from this node's clock: "
                     "sign a fresh one",
    "replayed_request": "this signed request was already used: sign a fresh one",
    "record_erased": "{record} was erased by a lawful order",
    "no_grant": "account {reader} holds no active grant on {record}, and no role that "
                "allows reading it",
}


class PrivateSync:
    """Fetches wanted payloads from other holders; serves them to holders only."""

    def __init__(self, vault: PrivateVault, p2p: P2PNetwork) -> None:
        self.vault = vault
        self.p2p = p2p
        self.refused_payloads = 0
        """Payloads received that did not open their commitment (their senders penalized)."""

    async def on_request(self, peer_id: str, payload: Any) -> tuple[MessageType, Any]:
        answer = self.vault.answer_fetch(peer_id, self.p2p.node_id, payload)
        if answer[0] == MessageType.ERROR and answer[1][0] == "bad_signature":
            self.p2p.penalize(peer_id, PENALTY_REJECTED_MESSAGE,
                              "sent a private fetch request with a bad signature")
        return answer

    async def run(self) -> None:
        for namespace, key, commitment in await asyncio.to_thread(self.vault.find_missing):
            self.vault.wanted.setdefault((namespace, key), commitment)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.vault.wanted_changed.wait(), FETCH_INTERVAL_S)
            self.vault.wanted_changed.clear()
            writes: list[asyncio.Task[None]] = []  # fetched payloads, written together
            held_bytes = 0
            for (namespace, key), commitment in list(self.vault.wanted.items()):
                if (namespace, key) not in self.vault.wanted:
                    continue
                opened = await self.fetch_payload(namespace, key, commitment)
                if opened is None:
                    continue
                writes.append(asyncio.create_task(self._keep(namespace, key, *opened)))
                held_bytes += len(opened[1])
                if len(writes) >= MAX_BATCH_RECORDS or held_bytes >= MAX_FETCHED_BYTES:
                    await _wait_writes(writes)
                    writes, held_bytes = [], 0
            await _wait_writes(writes)

    async def fetch(self, namespace: str, key: str, commitment: bytes) -> bool:
        """Fetch and keep one payload; True once a payload opening `commitment` is kept
        (or the record is erased)."""
        opened = await self.fetch_payload(namespace, key, commitment)
        if opened is None:
            return False
        await self._keep(namespace, key, *opened)
        return True

    async def _keep(self, namespace: str, key: str, salt: bytes, payload: bytes) -> None:
        if get_erasure(self.vault.node.state, namespace, key) is None and \
                await self.vault.keep(namespace, key, salt, payload):
            log.info("fetched the private payload of %s/%s", namespace, key)
        self.vault.wanted.pop((namespace, key), None)

    async def fetch_payload(self, namespace: str, key: str, commitment: bytes
                            ) -> tuple[bytes, bytes] | None:
        """Ask each connected peer in turn for (salt, payload) opening `commitment`."""
        signer = self.vault.node.home.validator_key
        if signer is None:
            return None
        for peer in self.p2p.peers():
            box = nacl.public.PrivateKey.generate()
            box_key = bytes(box.public_key)
            message = signing_bytes(DOMAIN_PRIVATE_FETCH, self.vault.node.chain_id,
                                    get_fetch_request_payload(
                                        namespace, key, box_key, bytes.fromhex(self.p2p.node_id),
                                        bytes.fromhex(peer.node_id)))
            try:
                _, sealed = await self.p2p.request(peer.node_id, MessageType.GET_PRIVATE, [
                    namespace, key, bytes(signer.public_key), box_key, signer.sign(message)])
            except P2PError:
                continue
            opened = _open_sealed(box, sealed)
            if opened is None or not is_matching_commitment(commitment, *opened):
                self.refused_payloads += 1
                self.p2p.penalize(peer.node_id, PENALTY_BAD_RESPONSE,
                                  f"sent a private payload of {namespace}/{key} that does not "
                                  f"match its commitment")
                continue
            return opened
        return None


async def _wait_writes(writes: list[asyncio.Task[None]]) -> None:
    for failed in await asyncio.gather(*writes, return_exceptions=True):
        if isinstance(failed, Exception):
            log.error("could not keep a fetched private payload: %s", failed)


def _open_sealed(box: nacl.public.PrivateKey, sealed: Any) -> tuple[bytes, bytes] | None:
    try:
        salt, payload = codec.decode(nacl.public.SealedBox(box).decrypt(bytes(sealed)))
    except (nacl.exceptions.CryptoError, ChainError, ValueError, TypeError):
        return None
    if not isinstance(salt, bytes) or not isinstance(payload, bytes):
        return None
    return salt, payload
