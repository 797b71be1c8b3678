"""A full node (no validator key) on real sockets and LevelDB, in this process: it
verifies every certificate, so a peer that serves a forged one, or a genuine one on an
altered block, is refused and penalized; the honest chain is then applied as it is."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from chain.block import Block
from chain.crypto import KeyPair
from chain.vote import CommitCertificate, Vote, VoteKind
from cli.service import NodeService
from p2p.frames import MessageType
from tests.node.conftest import CHAIN_ID, make_home, wait_for
from tests.node.peer_kit import make_peer


def _forge_by_outsider(block: Block, cert: CommitCertificate, outsider: KeyPair
                       ) -> tuple[Block, CommitCertificate]:
    """The block as it is, certified by a key that is not a validator."""
    vote = Vote.create(CHAIN_ID, outsider, VoteKind.PRECOMMIT, block.height, cert.round,
                       block.hash)
    return block, CommitCertificate.from_votes([vote])


def _alter_block(block: Block, cert: CommitCertificate, outsider: KeyPair
                 ) -> tuple[Block, CommitCertificate]:
    """The genuine certificate on a block whose header was changed."""
    header = dataclasses.replace(block.header, timestamp_ms=block.header.timestamp_ms + 1)
    return Block(header, block.txs), cert


@pytest.mark.parametrize("forge", [_forge_by_outsider, _alter_block])
async def test_invalid_certificate_refused_by_full_node_and_peer_penalized(
        single_node, tmp_path, forge):
    source = single_node.node

    async def has_blocks() -> bool:
        return source.store.head_height >= 3

    await wait_for(has_blocks, 20, "three final blocks on the validator")
    block = Block.decode(source.store.get_block_bytes(1) or b"")
    cert = source.store.get_certificate(1)
    assert cert is not None
    outsider = KeyPair.generate()
    bad_block, bad_cert = forge(block, cert, outsider)
    served: list[int] = []

    async def serve_forged(peer_id, msg_type, payload):
        if msg_type == MessageType.GET_BLOCKS:
            served.append(int(payload[0]))
            return MessageType.BLOCKS, [[bad_block.encoded, bad_cert.encoded]]
        if msg_type == MessageType.GET_VOTES:
            return MessageType.VOTES, []
        return MessageType.STATUS, [3, 0]

    forger, _ = make_peer(source.genesis.hash, key=outsider, handle_request=serve_forged)
    await forger.start()
    home = make_home(tmp_path / "full", source.genesis, None,
                     peers=[f"127.0.0.1:{forger.bound_port}"], peer_exchange=False)
    follower = NodeService(home)

    async def claim_height() -> None:
        while True:
            forger.broadcast(MessageType.STATUS, [3, 0])
            await asyncio.sleep(0.5)

    claiming = asyncio.create_task(claim_height())
    await follower.start()
    p2p = follower.network.p2p
    try:
        assert follower.node.core.is_validator is False

        async def penalized() -> bool:
            scores = [p.score for p in p2p.peers() if p.node_id == forger.node_id]
            return bool(served) and (p2p.is_banned(forger.node_id) or
                                     (bool(scores) and scores[0] < 0))

        await wait_for(penalized, 20, "the full node refusing the forged block")
        assert follower.node.store.head_height == 0
        assert follower.node.store.get_block_header(1) is None
        # The honest validator's chain is then verified and applied, block for block.
        await p2p.connect(f"127.0.0.1:{single_node.service.network.p2p.bound_port}")
        target = source.store.head_height

        async def caught_up() -> bool:
            return follower.node.store.head_height >= target

        await wait_for(caught_up, 20, "the full node syncing the honest chain")
        assert follower.node.store.head_hash != bad_block.hash
        header = follower.node.store.get_block_header(1)
        assert header is not None and header.hash == block.hash
    finally:
        claiming.cancel()
        await asyncio.gather(claiming, return_exceptions=True)
        await follower.stop()
        await forger.stop()
