"""State sync between in-process nodes on real sockets and real LevelDB: a fresh node
joins four validators from a snapshot and follows them; hostile peers (a bad chunk, a
manifest that does not give the root, a snapshot no certificate proves, an oversized
chunk) are refused and the honest peers used; a wiped validator that state-syncs
keeps its double-sign guard."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from chain import codec
from chain.block import BlockHeader
from chain.crypto import compute_hash
from chain.genesis import Genesis, GenesisAccount
from chain.snapshot import LightBlock, SnapshotChunk, SnapshotManifest
from chain.tx import make_transaction
from chain.vote import CommitCertificate, Vote, VoteKind
from cli.service import NodeService
from node import statesync
from node.config import DATA_DIR, NodeHome
from node.ops.replay import audit
from node.ops.statesync_audit import StateSyncedAuditMismatch
from p2p.frames import MAX_FRAME_SIZE, MessageType
from p2p.session import PeerSession
from sdk import AsyncClient, RpcClientError
from storage.history import StoredBlock
from tests.node.conftest import (
    ACCOUNT_KEYS,
    CHAIN_ID,
    FAST_PARAMS,
    VALIDATOR_KEYS,
    RunningNode,
    make_genesis,
    make_home,
    start_network,
    stop_network,
    wait_for,
)
from tests.node.peer_kit import make_peer
from tests.operator.history_tamper import rewrite_block

SNAPSHOT_INTERVAL = 8
CHUNK_TARGET_BYTES = 16 * 1024
"""Small chunks, so that a few thousand accounts make a dozen chunks or more."""


def make_large_genesis() -> Genesis:
    base = make_genesis(VALIDATOR_KEYS[:4])
    filler = tuple(GenesisAccount(compute_hash(b"filler %d" % i)[:20], {"GOV": i + 1})
                   for i in range(3000))
    return Genesis(chain_id=CHAIN_ID, genesis_time_ms=base.genesis_time_ms,
                   validator_set=base.validator_set, accounts=(*base.accounts, *filler),
                   params=FAST_PARAMS)


@pytest.fixture
async def validators(tmp_path):
    nodes = await start_network(tmp_path, 4, make_large_genesis(),
                                snapshot_interval=SNAPSHOT_INTERVAL, log_level="INFO")
    for running in nodes:
        running.service.network.snapshots.chunk_target_bytes = CHUNK_TARGET_BYTES

    async def all_have_a_snapshot() -> bool:
        return all(n.service.network.snapshots.snapshots for n in nodes)

    try:
        await wait_for(all_have_a_snapshot, 60, "a snapshot on every validator")
        yield nodes
    finally:
        await stop_network(nodes)


def address_of(running: RunningNode) -> str:
    return f"127.0.0.1:{running.service.network.p2p.bound_port}"


def joiner_home(tmp_path: Path, peers: list[str], name: str = "joiner") -> NodeHome:
    genesis = Genesis.from_json((tmp_path / "node0" / "genesis.json").read_text())
    return make_home(tmp_path / name, genesis, None, peers=peers, peer_exchange=False,
                     state_sync=True, log_level="INFO")


async def join(home: NodeHome) -> NodeService:
    service = NodeService(home)
    await service.start()
    return service


async def wait_following(service: NodeService, nodes: list[RunningNode]) -> None:
    async def follows() -> bool:
        return service.node.store.head_height >= nodes[0].node.store.head_height

    await wait_for(follows, 30, "the joiner at the validators' head")


def snapshot_of(running: RunningNode) -> Any:
    return running.service.network.snapshots.snapshots[0]


def patch_server(running: RunningNode, answer: Any) -> None:
    """Make `running` answer state-sync requests with `answer(honest, msg_type, payload)`."""
    server = running.service.network.snapshots
    honest = server.on_request

    async def on_request(peer_id: str, msg_type: MessageType, payload: Any) -> Any:
        return await answer(lambda: honest(peer_id, msg_type, payload), msg_type, payload)

    server.on_request = on_request  # type: ignore[method-assign]


def warnings_of(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# ------------------------------------------------------------------ joining


async def test_a_fresh_node_joins_by_state_sync_and_follows_the_head(validators, tmp_path):
    home = joiner_home(tmp_path, [address_of(n) for n in validators])
    service = await join(home)
    try:
        result = service.state_sync
        assert result is not None and result.chunks > 4
        store = service.node.store
        # The first block it holds is the one after the snapshot's.
        assert store.base_height == result.height + 1 > SNAPSHOT_INTERVAL
        await wait_following(service, validators)
        # A payment after the base, so that the audit below has a result to check.
        payment = make_transaction(CHAIN_ID, ACCOUNT_KEYS[0], 0, "transfer", {
            "to": ACCOUNT_KEYS[1].address, "asset": "GOV", "amount": 7})
        await validators[0].client.submit(payment, wait="final")
        await wait_for(lambda: _has_tx(service, payment.hash), 30, "the payment on the joiner")
        location = store.get_tx_location(payment.hash)
        height = store.head_height
        assert store.get_block_header(height) == validators[0].node.store.get_block_header(height)
        assert dict(store.iterate_state(b"")) == dict(validators[0].node.store.iterate_state(b""))
        # History below the base is not here, and says so as a pruned node does.
        kind, payload = await service.network.sync.on_request("peer", MessageType.GET_BLOCKS,
                                                              (1, 10))
        assert kind == MessageType.ERROR and payload == [
            "pruned", f"pruned below height {result.height + 1}"]
        client = AsyncClient(service.rpc_url)
        try:
            with pytest.raises(RpcClientError) as refused:
                await client.call("chain_block", height=result.height)
            assert refused.value.reason == "block_pruned"
            assert f"pruned below height {result.height + 1}" in str(refused.value)
            assert (await client.call("node_status"))["base_height"] == result.height + 1
        finally:
            await client.close()
    finally:
        await service.stop()
    report = audit(home.path).to_json()
    assert report["replayed_from_genesis"] is False and report["blocks"] >= 1
    assert report["base_height"] == result.height + 1 and "cannot be replayed" in report["note"]
    # The payment's stored result rewritten as a refusal in its history segment (with
    # valid checksums, as a forger would): the header's results root says otherwise, and
    # the audit of the state-synced store names it.
    assert location is not None and location[0] > result.height
    height, index = location

    def refuse(stored: StoredBlock) -> StoredBlock:
        records = list(stored.tx_records)
        tx_bytes, code, message, _events = codec.decode(records[index])
        assert code == "ok"
        records[index] = codec.encode([tx_bytes, "insufficient_balance", message, []])
        return dataclasses.replace(stored, tx_records=tuple(records))

    rewrite_block(home.path / DATA_DIR, height, refuse)
    with pytest.raises(StateSyncedAuditMismatch, match="results root") as mismatch:
        audit(home.path)
    assert mismatch.value.height == height


async def _has_tx(service: NodeService, tx_hash: bytes) -> bool:
    return service.node.store.get_tx_location(tx_hash) is not None


async def test_invalid_chunk_from_one_peer_is_fetched_from_another(validators, tmp_path,
                                                                  caplog):
    async def corrupt_chunks(honest: Any, msg_type: MessageType, payload: Any) -> Any:
        kind, data = await honest()
        if kind != MessageType.CHUNK:
            return kind, data
        chunk = SnapshotChunk.decode(data)
        key, value = chunk.entries[0]
        forged = dataclasses.replace(chunk, entries=((key, value + b"!"), *chunk.entries[1:]))
        return kind, forged.encode()

    patch_server(validators[3], corrupt_chunks)
    service = await join(joiner_home(tmp_path, [address_of(n) for n in validators]))
    try:
        assert service.state_sync is not None
        assert "fails its proof" in warnings_of(caplog)
        await wait_following(service, validators)
        assert dict(service.node.store.iterate_state(b"")) == \
            dict(validators[0].node.store.iterate_state(b""))
    finally:
        await service.stop()


async def test_invalid_manifest_that_does_not_give_the_certified_root(validators, tmp_path,
                                                                     caplog, monkeypatch):
    monkeypatch.setattr(statesync, "DISCOVERY_S", 2.0)
    real = SnapshotManifest.decode(snapshot_of(validators[3]).read_manifest())
    hashes = bytearray(real.bucket_hashes)
    hashes[:32] = compute_hash(b"forged bucket")
    forged = dataclasses.replace(real, bucket_hashes=bytes(hashes))

    async def lie(honest: Any, msg_type: MessageType, payload: Any) -> Any:
        if msg_type == MessageType.GET_SNAPSHOTS:
            return MessageType.SNAPSHOTS, [[forged.height, forged.hash, forged.chunk_count]]
        if msg_type == MessageType.GET_MANIFEST:
            return MessageType.MANIFEST, forged.encoded
        return await honest()

    patch_server(validators[3], lie)
    service = await join(joiner_home(tmp_path, [address_of(validators[3])]))
    try:
        assert service.state_sync is None  # refused: the node syncs blocks from genesis
        assert service.node.store.base_height == 1
        assert "does not give the certified state root" in warnings_of(caplog)
    finally:
        await service.stop()


async def test_invalid_snapshot_at_a_height_no_certificate_proves(validators, tmp_path,
                                                                 caplog):
    liar = validators[3]
    fake_height = liar.node.store.head_height + 50
    header = dataclasses.replace(liar.node.store.get_block_header(1), height=fake_height)
    assert isinstance(header, BlockHeader)
    vote = Vote.create(CHAIN_ID, VALIDATOR_KEYS[3], VoteKind.PRECOMMIT, fake_height, 0,
                       header.hash)
    validator_set = liar.node.store.get_validator_set(1)
    forged = LightBlock(header, CommitCertificate.from_votes([vote]), validator_set, None)

    async def offer_a_fake(honest: Any, msg_type: MessageType, payload: Any) -> Any:
        if msg_type == MessageType.GET_SNAPSHOTS:
            kind, offers = await honest()
            return kind, [[fake_height, compute_hash(b"fake"), 3], *offers]
        if msg_type == MessageType.GET_LIGHT_BLOCKS and payload[1] == fake_height:
            return MessageType.LIGHT_BLOCKS, [forged.encode()]
        return await honest()

    patch_server(liar, offer_a_fake)
    service = await join(joiner_home(tmp_path, [address_of(n) for n in validators]))
    try:
        assert service.state_sync is not None and service.state_sync.height < fake_height
        warnings = warnings_of(caplog)
        assert f"no peer proved a certified header at height {fake_height}" in warnings
        assert "fail their proof" in warnings  # the forged certificate cost the liar
    finally:
        await service.stop()


async def test_invalid_oversized_chunk_is_refused_before_it_is_decoded(validators, tmp_path,
                                                                      caplog, monkeypatch):
    monkeypatch.setattr(statesync, "CHUNK_TIMEOUT_S", 2.0)
    offer = snapshot_of(validators[0]).offer
    limit = MAX_FRAME_SIZE[MessageType.CHUNK]

    async def serve(peer_id: str, msg_type: MessageType, payload: Any) -> Any:
        if msg_type == MessageType.GET_SNAPSHOTS:
            return MessageType.SNAPSHOTS, [offer.to_value()]
        if msg_type == MessageType.GET_CHUNK:
            return MessageType.CHUNK, b"\x00" * limit  # its frame is over the limit
        return MessageType.ERROR, ["unavailable", "not here"]

    genesis = validators[0].node.genesis
    hostile, _ = make_peer(genesis.hash, handle_request=serve)
    honest_answer = PeerSession.answer

    def answer(session: PeerSession, msg_type: MessageType, request_id: int,
               payload: Any) -> None:
        if session._context.table is hostile._peers and msg_type == MessageType.CHUNK:
            # The hostile peer's own encoder would refuse to build the frame: bypass it.
            session.enqueue(msg_type, codec.encode([int(msg_type), request_id, payload]))
            return
        honest_answer(session, msg_type, request_id, payload)

    monkeypatch.setattr(PeerSession, "answer", answer)
    await hostile.start()
    try:
        peers = [f"127.0.0.1:{hostile.bound_port}", *(address_of(n) for n in validators)]
        service = await join(joiner_home(tmp_path, peers))
        try:
            assert service.state_sync is not None
            assert "CHUNK frame of" in warnings_of(caplog)  # refused by size, unparsed
            assert dict(service.node.store.iterate_state(b"")) == \
                dict(validators[0].node.store.iterate_state(b""))
        finally:
            await service.stop()
    finally:
        await hostile.stop()


async def test_a_node_trusting_a_checkpoint_walks_from_it(validators, tmp_path):
    checkpoint = validators[0].node.store.get_block_header(2)
    assert checkpoint is not None
    home = joiner_home(tmp_path, [address_of(n) for n in validators])
    home = NodeHome.load(home.path, overrides={"trusted_height": "2",
                                               "trusted_hash": checkpoint.hash.hex()})
    service = await join(home)
    try:
        assert service.state_sync is not None and service.state_sync.height >= 2
        store = service.node.store
        assert [h for h, _ in store.iterate_validator_set_changes(0, 10**9)] == [2]
        await wait_following(service, validators)
    finally:
        await service.stop()
    report = audit(home.path).to_json()
    assert "the trusted checkpoint at height 2" in report["note"]


async def test_invalid_checkpoint_hash_refuses_every_snapshot(validators, tmp_path, caplog,
                                                             monkeypatch):
    monkeypatch.setattr(statesync, "DISCOVERY_S", 2.0)
    home = joiner_home(tmp_path, [address_of(validators[0])])
    home = NodeHome.load(home.path, overrides={"trusted_height": "2",
                                               "trusted_hash": compute_hash(b"x").hex()})
    service = await join(home)
    try:
        assert service.state_sync is None and service.node.store.base_height == 1
        assert "not the trusted checkpoint" in warnings_of(caplog)
    finally:
        await service.stop()


# ------------------------------------------------------------------ a validator


async def test_a_validator_that_state_syncs_keeps_its_double_sign_guard(validators, tmp_path):
    wiped = validators[3]
    home_path = wiped.service.home.path
    await wiped.client.close()
    await wiped.service.stop()
    shutil.rmtree(home_path / "data")
    # What it may have signed is at most one above what the others had finalized.
    network_height = max(n.node.store.head_height for n in validators[:3])
    home = NodeHome.load(home_path, overrides={
        "state_sync": True, "peers": [address_of(n) for n in validators[:3]]})
    service = await join(home)
    validators[3] = RunningNode(service, AsyncClient(service.rpc_url))  # the fixture stops it
    assert service.state_sync is not None
    node = service.node
    assert node.needs_double_sign_guard()  # a restored store has no sign state
    assert node._guard_until_height > network_height

    async def signs_again() -> bool:
        head = validators[0].node.store.head_height
        certificate = validators[0].node.store.get_certificate(head)
        return certificate is not None and any(
            key == VALIDATOR_KEYS[3].public_key for key, _ in certificate.signatures)

    await wait_for(signs_again, 60, "the state-synced validator in a certificate")
    for running in validators:
        assert running.node.store.list_evidence() == []  # no equivocation anywhere
