"""The joining side of state sync: on an empty data directory, fetch a recent certified
state from peers, prove it and restore it, before the node is assembled.

It runs over a p2p network of its own that serves nothing. Every object a peer sends
is proven by chain.snapshot before anything is written; a peer whose object fails its
proof is penalized and not asked again. It never touches a data directory that holds
a chain (docs/state-sync.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from chain.crypto import Hash32, compute_hash
from chain.errors import ChainError, ManifestMismatchError, UnprovenHeaderError
from chain.snapshot import (
    LightBlock,
    SnapshotChunk,
    SnapshotManifest,
    SnapshotOffer,
    TrustPoint,
    VerifiedChunk,
    get_genesis_trust,
    validate_manifest,
    verify_checkpoint,
    verify_chunk,
    verify_light_block,
)
from chain.state_proof import compute_state_root
from chain.vote import ValidatorSet
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.config import NodeHome
from node.errors import NodeError
from node.gossip import build_p2p_network
from p2p.errors import P2PError, RequestRefusedError
from p2p.frames import MessageType
from p2p.network import P2PNetwork
from p2p.peers import PENALTY_BAD_BLOCK, Verdict
from storage.snapshot import (
    DataDirStatus,
    RestoredChain,
    RestoreError,
    StateRestore,
    discard_restore,
    get_data_dir_status,
)

log = logging.getLogger("govchain.statesync")

DISCOVERY_S = 10.0
"""How long to look for snapshot offers before block-syncing from genesis instead."""
SETTLE_S = 1.0
"""After the first usable offer, how long other peers may still answer."""
ASK_AGAIN_S = 0.5
"""How often a peer with no usable snapshot is asked again during discovery."""
ATTEMPTS = 3
"""Discovery rounds before giving up on state sync (each tries every offer)."""
MAX_FETCH_PEERS = 4
"""Peers fetched from at once, one chunk in flight each: with CHUNK frames of at most
8 MiB, the chunks held at once stay under 4 x 8 MiB, plus one being verified and one
being written."""
REQUEST_TIMEOUT_S = 10.0
CHUNK_TIMEOUT_S = 30.0
BUSY_RETRY_S = 0.5
BUSY_RETRIES = 20
"""A peer that answers "busy" this many times in a row leaves the fetch."""
PENALTY_BAD_SNAPSHOT = PENALTY_BAD_BLOCK
"""A light block, manifest or chunk that fails its proof costs what a bad block does."""


class SnapshotRefused(NodeError):
    """Raised when one offered snapshot cannot be proven or fetched; the next is tried."""

    code = "snapshot_refused"


@dataclass(frozen=True)
class Candidate:
    """One snapshot offered by one or more peers (the same manifest hash)."""

    offer: SnapshotOffer
    """Height, manifest hash and chunk count."""
    peers: tuple[str, ...]
    """The peers offering it."""


@dataclass(frozen=True)
class Walk:
    """The light blocks that proved a snapshot's header, and the sets they proved."""

    light_blocks: tuple[LightBlock, ...]
    """Every light block verified, the snapshot height's last."""
    validator_sets: tuple[tuple[int, ValidatorSet], ...]
    """(height from which it certifies, set), rising; the last one certifies height + 1."""

    @property
    def header_height(self) -> int:
        return self.light_blocks[-1].header.height


@dataclass(frozen=True)
class StateSyncResult:
    """What a completed state sync restored."""

    height: int
    """The snapshot height: the restored store's head (its base height is the next one)."""
    chunks: int
    """Chunks fetched and verified."""
    state_bytes: int
    """Bytes of state (chunk encodings) fetched."""
    seconds: float
    """From the start of discovery to the restore's last batch."""


def should_state_sync(home: NodeHome) -> bool:
    """True when the node must state-sync before it starts: state sync is on and the data
    directory is empty (an interrupted restore is deleted here, to start over)."""
    if not home.config.state_sync:
        # Not looked at (it costs a second database open at every start): a directory
        # left by an interrupted restore has no genesis hash, and the store refuses it.
        return False
    status = get_data_dir_status(home.data_dir)
    if status is DataDirStatus.RESTORING:
        log.warning("%s holds an interrupted state-sync restore: deleting it and starting "
                    "over", home.data_dir)
        discard_restore(home.data_dir)
        return True
    return status is DataDirStatus.EMPTY and home.config.state_sync


async def run_state_sync(home: NodeHome) -> StateSyncResult | None:
    """Restore a certified snapshot into the empty data directory; None when no usable
    one was offered (the node then block-syncs from genesis)."""

    async def ignore(peer_id: str, msg_type: MessageType, payload: Any) -> Verdict:
        return Verdict.IGNORE

    async def serve_nothing(peer_id: str, msg_type: MessageType, payload: Any) -> None:
        return None

    p2p = build_p2p_network(home, ignore, handle_request=serve_nothing)
    await p2p.start()
    try:
        return await StateSyncClient(home, p2p).run()
    finally:
        await p2p.stop()


def compute_genesis_state_root(home: NodeHome) -> Hash32:
    """The root a store initialized from this genesis records (for the restored meta)."""
    view = Overlay({})  # genesis applies over an empty state
    Ledger(default_modules()).apply_genesis(view, home.genesis)
    return compute_state_root((k, v) for k, v in view.changes().items() if v is not None)


class StateSyncClient:
    """Finds snapshot offers, proves one and restores it."""

    def __init__(self, home: NodeHome, p2p: P2PNetwork) -> None:
        self.home = home
        self.p2p = p2p
        self.chain_id = home.genesis.chain_id
        config = home.config
        self.trusted_height = config.trusted_height
        self.trusted_hash = bytes.fromhex(config.trusted_hash.removeprefix("0x")) \
            if config.trusted_hash else b""
        self.faulty: set[str] = set()
        """Peers whose objects failed a proof: never asked again in this sync."""

    async def run(self) -> StateSyncResult | None:
        started = time.monotonic()
        trust = f"the checkpoint at {self.trusted_height}" if self.trusted_height \
            else "the genesis"
        log.info("state sync: looking for snapshots (trusting %s)", trust)
        for attempt in range(1, ATTEMPTS + 1):
            candidates = await self._discover()
            if not candidates:
                break
            for candidate in candidates:
                try:
                    return await self._sync(candidate, started)
                except SnapshotRefused as e:
                    log.warning("state sync: snapshot at height %d refused: %s",
                                candidate.offer.height, e.message)
            log.warning("state sync: no offered snapshot could be used (attempt %d of %d)",
                        attempt, ATTEMPTS)
        log.warning("state sync: no snapshot at or above height %d could be used; "
                    "syncing blocks from genesis instead", max(self.trusted_height, 1))
        return None

    # ------------------------------------------------------------------ discovery

    async def _discover(self) -> list[Candidate]:
        """Ask every peer for its snapshots; best first (highest, most peers). A peer with
        nothing usable yet is asked again each round until the deadline: it may be about
        to take its first snapshot."""
        deadline = time.monotonic() + DISCOVERY_S
        answered: dict[str, list[SnapshotOffer]] = {}
        first_offer_at: float | None = None
        while True:
            asking = [p.node_id for p in self.p2p.peers() if p.node_id not in self.faulty
                      and not self._usable(answered.get(p.node_id, []))]
            results = await asyncio.gather(*(self._ask_snapshots(p) for p in asking))
            answered.update((p, r) for p, r in zip(asking, results, strict=True) if r is not None)
            now = time.monotonic()
            if first_offer_at is None and any(map(self._usable, answered.values())):
                first_offer_at = now
            settled = first_offer_at is not None and (
                len(answered) >= len(self.home.config.peers) or now - first_offer_at > SETTLE_S)
            if settled or now > deadline:
                return self._rank(answered)
            await asyncio.sleep(ASK_AGAIN_S)

    def _usable(self, offers: list[SnapshotOffer]) -> bool:
        return any(offer.height >= max(self.trusted_height, 1) for offer in offers)

    async def _ask_snapshots(self, peer_id: str) -> list[SnapshotOffer] | None:
        try:
            _, items = await self.p2p.request(peer_id, MessageType.GET_SNAPSHOTS, None,
                                              timeout_s=REQUEST_TIMEOUT_S)
        except P2PError as e:
            log.info("state sync: %s... did not list its snapshots: %s", peer_id[:12], e)
            return None
        try:
            return [SnapshotOffer.from_value(item) for item in items]
        except ChainError as e:
            self.penalize(peer_id, f"listed a malformed snapshot offer: {e.message}")
            return None

    def _rank(self, answered: dict[str, list[SnapshotOffer]]) -> list[Candidate]:
        peers: dict[SnapshotOffer, list[str]] = {}
        for peer_id, offers in answered.items():
            for offer in offers:
                if self._usable([offer]):
                    peers.setdefault(offer, []).append(peer_id)
        ranked = sorted(peers.items(), key=lambda item: (item[0].height, len(item[1])),
                        reverse=True)
        return [Candidate(offer, tuple(ids)) for offer, ids in ranked]

    # ------------------------------------------------------------------ one snapshot

    async def _sync(self, candidate: Candidate, started: float) -> StateSyncResult:
        offer = candidate.offer
        log.info("state sync: snapshot at height %d (%d chunks) offered by %d peer(s)",
                 offer.height, offer.chunk_count, len(candidate.peers))
        walk = await self._walk(candidate)
        manifest = await self._fetch_manifest(candidate, walk.light_blocks[-1])
        data_dir = self.home.data_dir
        restore = await asyncio.to_thread(StateRestore.begin, data_dir, manifest)
        try:
            fetcher = ChunkFetcher(self, candidate, manifest, restore)
            await fetcher.run()
            chain = RestoredChain(self.home.genesis.hash, compute_genesis_state_root(self.home),
                                  walk.light_blocks, walk.validator_sets)
            await asyncio.to_thread(restore.finish, chain)
        except BaseException as e:
            restore.close()
            await asyncio.to_thread(discard_restore, data_dir)
            if isinstance(e, RestoreError):  # e.g. the written state gives another root
                raise SnapshotRefused(e.message) from e
            raise
        restore.close()
        result = StateSyncResult(offer.height, manifest.chunk_count, fetcher.bytes_fetched,
                                 time.monotonic() - started)
        log.info("state sync: restored the state at height %d (%d chunks, %s bytes) in "
                 "%.1f s; following blocks from %d", result.height, result.chunks,
                 f"{result.state_bytes:,}", result.seconds, result.height + 1)
        return result

    def penalize(self, peer_id: str, reason: str) -> None:
        log.warning("state sync: peer %s... %s", peer_id[:12], reason)
        self.faulty.add(peer_id)
        self.p2p.penalize(peer_id, PENALTY_BAD_SNAPSHOT, reason)

    # ------------------------------------------------------------------ the walk

    async def _walk(self, candidate: Candidate) -> Walk:
        """Prove the header at the snapshot's height, asking the offering peers first."""
        offering = [p for p in candidate.peers if p not in self.faulty]
        others = [p.node_id for p in self.p2p.peers()
                  if p.node_id not in candidate.peers and p.node_id not in self.faulty]
        for peer_id in [*offering, *others]:
            try:
                return await self._walk_with(peer_id, candidate.offer.height)
            except ChainError as e:
                self.penalize(peer_id, f"sent light blocks that fail their proof: {e.message}")
            except P2PError as e:
                log.info("state sync: light blocks from %s... failed: %s", peer_id[:12], e)
        raise SnapshotRefused(f"no peer proved a certified header at height "
                              f"{candidate.offer.height}")

    async def _walk_with(self, peer_id: str, target: int) -> Walk:
        light_blocks: list[LightBlock] = []
        sets: list[tuple[int, ValidatorSet]] = []
        trust = await self._start_trust(peer_id, light_blocks, sets)
        if trust.height > target:
            raise UnprovenHeaderError(f"height {target} is below the trusted checkpoint")
        while trust.height < target:
            # Each answer holds the headers where the set changes, then the target; a
            # partial answer is continued from its last header. Every one of them is a
            # real, certified header, so a peer can slow the walk only as far as there
            # are real changes: there is no deadline on the whole walk, only per answer.
            items = await self._light_blocks(peer_id, trust.height + 1, target)
            if not items:
                raise UnprovenHeaderError(f"the peer stopped the walk at {trust.height}, "
                                          f"short of {target}")
            for data in items:
                light_block = LightBlock.decode(data)
                if light_block.header.height > target:
                    raise UnprovenHeaderError(f"light block {light_block.header.height} is "
                                              f"past the target {target}")
                trust = verify_light_block(trust, light_block, self.chain_id)
                light_blocks.append(light_block)
                if light_block.next_validator_set is not None:
                    sets.append((light_block.header.height + 1, light_block.next_validator_set))
        return Walk(tuple(light_blocks), tuple(sets))

    async def _start_trust(self, peer_id: str, light_blocks: list[LightBlock],
                           sets: list[tuple[int, ValidatorSet]]) -> TrustPoint:
        if not self.trusted_height:
            sets.append((0, self.home.genesis.validator_set))
            return get_genesis_trust(self.home.genesis)
        items = await self._light_blocks(peer_id, self.trusted_height, self.trusted_height)
        if len(items) != 1:
            raise UnprovenHeaderError(f"asked for the block at {self.trusted_height}, got "
                                      f"{len(items)} light blocks")
        anchor = LightBlock.decode(items[0])
        trust = verify_checkpoint(anchor, self.chain_id, self.trusted_height,
                                  self.trusted_hash)
        light_blocks.append(anchor)
        sets.append((self.trusted_height, anchor.validator_set))
        if anchor.next_validator_set is not None:
            sets.append((self.trusted_height + 1, anchor.next_validator_set))
        return trust

    async def _light_blocks(self, peer_id: str, first: int, last: int) -> tuple[bytes, ...]:
        _, items = await self.p2p.request(peer_id, MessageType.GET_LIGHT_BLOCKS, [first, last],
                                          timeout_s=REQUEST_TIMEOUT_S)
        return tuple(items)

    # ------------------------------------------------------------------ the manifest

    async def _fetch_manifest(self, candidate: Candidate,
                              light_block: LightBlock) -> SnapshotManifest:
        offer = candidate.offer
        for peer_id in candidate.peers:
            if peer_id in self.faulty:
                continue
            try:
                _, data = await self.p2p.request(
                    peer_id, MessageType.GET_MANIFEST, [offer.height, offer.manifest_hash],
                    timeout_s=REQUEST_TIMEOUT_S)
            except P2PError as e:
                log.info("state sync: manifest from %s... failed: %s", peer_id[:12], e)
                continue
            if compute_hash(data) != offer.manifest_hash:
                self.penalize(peer_id, "sent a manifest other than the one it offered")
                continue
            return self._check_manifest(candidate, data, light_block)
        raise SnapshotRefused(f"no peer sent the manifest of height {offer.height} it offered")

    def _check_manifest(self, candidate: Candidate, data: bytes,
                        light_block: LightBlock) -> SnapshotManifest:
        """The manifest, proven by the certified header; the hash fixes its content, so
        every peer that offered it offered a wrong one if it fails."""
        try:
            manifest = SnapshotManifest.decode(data)
            validate_manifest(manifest, light_block.header)
        except ChainError as e:
            for peer_id in candidate.peers:
                self.penalize(peer_id, f"offered a manifest that fails its proof: {e.message}")
            kind = "does not give the certified state root" \
                if isinstance(e, ManifestMismatchError) else "does not decode"
            raise SnapshotRefused(f"its manifest {kind}: {e.message}") from e
        if manifest.chunk_count != candidate.offer.chunk_count:
            log.info("state sync: the offer said %d chunks, the manifest has %d",
                     candidate.offer.chunk_count, manifest.chunk_count)
        return manifest


class ChunkFetcher:
    """Fetches every chunk of one manifest from the peers that offer it.

    One chunk in flight per peer, at most MAX_FETCH_PEERS peers; chunks are verified and
    written one at a time. A chunk that fails its proof costs its peer score and its
    place in the fetch, and goes back in the queue for another peer.
    """

    def __init__(self, client: StateSyncClient, candidate: Candidate,
                 manifest: SnapshotManifest, restore: StateRestore) -> None:
        self.client = client
        self.candidate = candidate
        self.manifest = manifest
        self.restore = restore
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(manifest.chunk_count):
            self.queue.put_nowait(index)
        self.left = manifest.chunk_count
        self.bytes_fetched = 0
        self._done = asyncio.Event()
        self._verifying = asyncio.Lock()
        self._writing = asyncio.Lock()
        """One chunk verified and one written at a time: at most two decoded at once."""

    async def run(self) -> None:
        peers = [p for p in self.candidate.peers if p not in self.client.faulty]
        workers = [asyncio.create_task(self._work(p), name=f"chunks {p[:12]}")
                   for p in peers[:MAX_FETCH_PEERS]]
        done = asyncio.create_task(self._done.wait())
        try:
            while not self._done.is_set():
                running = [w for w in workers if not w.done()]
                if not running:
                    raise SnapshotRefused(f"{self.left} of {self.manifest.chunk_count} "
                                          "chunks could not be fetched from any peer")
                await asyncio.wait([done, *running], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [done, *workers]:
                task.cancel()
            await asyncio.gather(done, *workers, return_exceptions=True)

    async def _work(self, peer_id: str) -> None:
        """Fetch chunks from `peer_id` until none is left or the peer fails."""
        busy = 0
        while True:
            index = await self.queue.get()
            try:
                data = await self._fetch(peer_id, index)
            except RequestRefusedError as e:
                self.queue.put_nowait(index)
                # "busy" passes; anything else ("not_found": the peer pruned the snapshot
                # meanwhile, it keeps the last two) ends this peer's part.
                busy = busy + 1 if e.remote_code == "busy" else BUSY_RETRIES
                if busy >= BUSY_RETRIES:
                    log.info("state sync: %s... refused chunk %d: %s", peer_id[:12], index, e)
                    return
                await asyncio.sleep(BUSY_RETRY_S)
                continue
            except P2PError as e:
                log.info("state sync: chunk %d from %s... failed: %s", index, peer_id[:12], e)
                self.queue.put_nowait(index)
                return
            busy = 0
            if not await self._apply_chunk(peer_id, index, data):
                return

    async def _fetch(self, peer_id: str, index: int) -> bytes:
        _, data = await self.client.p2p.request(
            peer_id, MessageType.GET_CHUNK,
            [self.manifest.height, self.candidate.offer.manifest_hash, index],
            timeout_s=CHUNK_TIMEOUT_S)
        return bytes(data)

    async def _apply_chunk(self, peer_id: str, index: int, data: bytes) -> bool:
        """Verify, then write; the next chunk is verified while this one is written
        (LevelDB writes without the GIL), so at most two are decoded at once."""
        async with self._verifying:
            try:
                verified = await asyncio.to_thread(self._verify, index, data)
            except ChainError as e:
                self.queue.put_nowait(index)
                self.client.penalize(peer_id, f"sent chunk {index} of height "
                                              f"{self.manifest.height} that fails its proof: "
                                              f"{e.message}")
                return False
        async with self._writing:
            await asyncio.to_thread(self.restore.write_chunk, index, verified)
        self.bytes_fetched += len(data)
        self.left -= 1
        if self.left == 0:
            self._done.set()
        return True

    def _verify(self, index: int, data: bytes) -> VerifiedChunk:
        return verify_chunk(self.manifest, index, SnapshotChunk.decode(data))

