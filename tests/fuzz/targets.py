"""Fuzz targets: what hostile bytes meet first (decoders, the p2p frame decoder, the
JSON-RPC dispatcher) and the invariants each must keep whatever it is given.

A target is `check(data: bytes) -> None`: it returns when the input was refused with
the component's typed error or accepted consistently, and raises AssertionError (or
any other exception: a crash) otherwise. Every target also bounds time per input.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain import codec
from chain.block import Block, BlockHeader
from chain.crypto import KeyPair
from chain.errors import ChainError
from chain.tx import Transaction, make_transaction
from chain.vote import CommitCertificate, Proposal, Vote, VoteKind
from p2p.errors import FrameError
from p2p.frames import MessageType, decode_frame, encode_frame

MAX_SECONDS_PER_INPUT = 1.0
"""An input that takes more CPU time than this is a hang (the decoders are linear in
the input). CPU time of the process, not wall time, so that a loaded machine pausing
the process is not taken for a hang; libFuzzer's own -timeout bounds wall time."""
CORPUS_ROOT = Path(__file__).parent / "corpus"

CHAIN_ID = "govchain-fuzz"
_KEY = KeyPair.from_seed(b"\x05" * 32)


@dataclass(frozen=True)
class Target:
    name: str
    check: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


def _timed(check: Callable[[bytes], None]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        started = time.process_time()
        check(data)
        elapsed = time.process_time() - started
        assert elapsed < MAX_SECONDS_PER_INPUT, f"input took {elapsed:.2f} s (a hang)"
    return run


def _decoder(decode: Callable[[bytes], Any]) -> Callable[[bytes], None]:
    """ChainError or a canonical value: what decodes re-encodes to the same bytes."""
    def check(data: bytes) -> None:
        try:
            value = decode(data)
        except ChainError:
            return
        assert _reencode(value) == data, "accepted a non-canonical encoding"
    return _timed(check)


def _reencode(value: Any) -> bytes:
    """The canonical bytes of a decoded object, computed afresh (not a cached copy)."""
    if isinstance(value, Transaction):
        sigs = [[s.public_key, s.signature] for s in value.signatures]
        return codec.encode([*value.body(), sigs])
    return codec.encode(value.to_value())


def _decode_value(cls: Any) -> Callable[[bytes], Any]:
    return lambda data: cls.from_value(codec.decode(data))


def _check_frame(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError:
        return
    assert encode_frame(frame.msg_type, frame.request_id, frame.payload) == data, \
        "accepted a non-canonical frame"


# ---------------------------------------------------------------- seeds


def _sample_tx() -> Transaction:
    return make_transaction(CHAIN_ID, _KEY, 7, "transfer",
                            {"to": b"\x02" * 20, "asset": "GOV", "amount": 42})


def _sample_block() -> Block:
    header = BlockHeader(CHAIN_ID, 3, 0, 1_700_000_000_000, b"\x01" * 32, _KEY.public_key,
                         b"\x02" * 32, b"\x05" * 32, b"\x03" * 32, b"\x04" * 32, b"\x04" * 32)
    return Block(header, (_sample_tx(),))


def _sample_vote() -> Vote:
    return Vote.create(CHAIN_ID, _KEY, VoteKind.PRECOMMIT, 3, 1, _sample_block().hash)


def _sample_certificate() -> CommitCertificate:
    vote = _sample_vote()
    return CommitCertificate(vote.height, vote.round, vote.block_hash,
                             ((vote.validator, vote.signature),))


def _sample_proposal() -> Proposal:
    return Proposal.create(CHAIN_ID, _KEY, 3, 0, -1, _sample_block())


def _enc(value: Any) -> bytes:
    return _reencode(value)


def _frame_seeds() -> list[bytes]:
    tx = _sample_tx().encoded
    return [
        encode_frame(MessageType.HELLO, 0, [2, CHAIN_ID, b"\x00" * 32, b"\x01" * 32,
                                            b"\x02" * 32, "127.0.0.1:26656", True]),
        encode_frame(MessageType.AUTH, 0, b"\x00" * 64),
        encode_frame(MessageType.ERROR, 0, ["busy", "try later"]),
        encode_frame(MessageType.TX, 0, tx),
        encode_frame(MessageType.TXS, 0, [tx, tx]),
        encode_frame(MessageType.VOTE, 0, _sample_vote().encoded),
        encode_frame(MessageType.PROPOSAL, 0, _enc(_sample_proposal())),
        encode_frame(MessageType.STATUS, 0, [12, 0]),
        encode_frame(MessageType.GET_BLOCKS, 3, [1, 64]),
        encode_frame(MessageType.BLOCKS, 3, [[_enc(_sample_block()),
                                              _enc(_sample_certificate())]]),
        encode_frame(MessageType.GET_VOTES, 4, 3),
        encode_frame(MessageType.VOTES, 4, [_sample_vote().encoded]),
        encode_frame(MessageType.PEERS, 5, ["127.0.0.1:1", "[::1]:2"]),
        encode_frame(MessageType.PING, 6, b"\x00" * 8),
    ]


# ---------------------------------------------------------------- RPC


class _RpcTarget:
    """A real node (LevelDB in a temp dir, driver not running) behind its dispatcher;
    built on first use. Invariants: handle_body never raises, never answers
    internal_error (an unhandled exception in a method), and leaves head, state and
    mempool as they were (no fuzz input is a validly signed transaction)."""

    def __init__(self) -> None:
        self._ready = False

    def _setup(self) -> None:
        from node.node import Node
        from rpc.dispatcher import RpcDispatcher
        from rpc.methods.chain import NodeApi
        from tests.node.conftest import make_genesis, make_home

        self._tmp = tempfile.TemporaryDirectory(prefix="govchain-fuzz-rpc-")
        validator = KeyPair.from_seed(b"\x01" * 32)
        home = make_home(Path(self._tmp.name) / "node", make_genesis([validator]), validator,
                         log_level="ERROR")
        self.loop = asyncio.new_event_loop()
        self.node = Node(home)
        self.dispatcher = RpcDispatcher(max_batch=64)
        NodeApi(self.node, max_batch=64).register(self.dispatcher)
        self.state_before = self._state()
        self._ready = True

    def _state(self) -> tuple[Any, ...]:
        store = self.node.store
        return (store.head_height, store.head_hash, len(self.node.mempool))

    def methods(self) -> list[str]:
        if not self._ready:
            self._setup()
        return sorted(self.dispatcher.methods)

    def check(self, data: bytes) -> None:
        if not self._ready:
            self._setup()  # not timed: the node is built once
        started = time.process_time()
        answer = self.loop.run_until_complete(self.dispatcher.handle_body(data))
        elapsed = time.process_time() - started
        assert elapsed < MAX_SECONDS_PER_INPUT, f"input took {elapsed:.2f} s (a hang)"
        for response in answer if isinstance(answer, list) else [answer]:
            if response is not None and "error" in response:
                assert response["error"].get("data", {}).get("reason") != "internal_error" \
                    and response["error"]["code"] != -32603, f"internal error: {response}"
        json.dumps(answer, default=lambda v: v.hex() if isinstance(v, bytes) else list(v))
        assert self._state() == self.state_before, "an invalid request changed node state"


RPC = _RpcTarget()


def _rpc_seeds() -> list[bytes]:
    calls: list[Any] = [
        {"jsonrpc": "2.0", "id": 1, "method": "node_status", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "chain_block", "params": {"height": 0}},
        {"jsonrpc": "2.0", "id": 3, "method": "tx_get", "params": {"hash": "00" * 32}},
        {"jsonrpc": "2.0", "id": 4, "method": "tx_submit",
         "params": {"tx": _sample_tx().encoded.hex()}},
        {"jsonrpc": "2.0", "id": 5, "method": "account_get",
         "params": {"address": "11" * 20}},
        [{"jsonrpc": "2.0", "id": 6, "method": "rpc_discover"},
         {"jsonrpc": "2.0", "method": "node_status"}],
        {"jsonrpc": "2.0", "id": 7, "method": "nope", "params": [1, 2]},
    ]
    return [json.dumps(c).encode() for c in calls]


TARGETS: dict[str, Target] = {
    "tx": Target("tx", _decoder(Transaction.decode), lambda: [_sample_tx().encoded]),
    "block": Target("block", _decoder(Block.decode), lambda: [_enc(_sample_block())]),
    "vote": Target("vote", _decoder(_decode_value(Vote)), lambda: [_sample_vote().encoded]),
    "proposal": Target("proposal", _decoder(_decode_value(Proposal)),
                       lambda: [_enc(_sample_proposal())]),
    "certificate": Target("certificate", _decoder(CommitCertificate.decode),
                          lambda: [_enc(_sample_certificate())]),
    "frame": Target("frame", _timed(_check_frame), _frame_seeds),
    "rpc": Target("rpc", RPC.check, _rpc_seeds),
}


def corpus_dir(name: str) -> Path:
    return CORPUS_ROOT / name


def corpus(name: str) -> list[bytes]:
    """Seeds plus the stored corpus of a target."""
    directory = corpus_dir(name)
    stored = [p.read_bytes() for p in sorted(directory.iterdir())] if directory.is_dir() else []
    return TARGETS[name].seeds() + stored
