"""Block headers and blocks.

A block's hash is the hash of its header; the header commits to the transactions by
their Merkle root, to their results by `results_root` (chain.results) and to the state
after executing them by `state_root`. The commit
certificate that makes a block final is kept beside the block (see chain.vote), not
inside it, since it signs the block's hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain import codec, merkle
from chain.crypto import HASH_SIZE, PUBLIC_KEY_SIZE, Hash32, PublicKey, compute_hash
from chain.errors import MalformedError, TooLargeError
from chain.tx import Transaction

HEADER_VERSION = 2
"""Version 2 added `results_root`; version 1 headers (no results root) are refused."""
MAX_BLOCK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class BlockHeader:
    """What validators sign (by its hash) when they commit a block."""

    chain_id: str
    """The chain this block belongs to."""
    height: int
    """1 for the first block after genesis, then +1 each block."""
    round: int
    """The consensus round in which this block was proposed."""
    timestamp_ms: int
    """The proposer's clock, milliseconds since the Unix epoch; after the parent's."""
    prev_hash: Hash32
    """The parent block's hash; the genesis hash for height 1."""
    proposer: PublicKey
    """The public key of the validator that proposed this block."""
    tx_root: Hash32
    """Merkle root over the transactions' hashes, in block order."""
    results_root: Hash32
    """Merkle root over the transactions' result leaves, in block order (chain.results)."""
    state_root: Hash32
    """Root of the authenticated state after executing this block."""
    validator_set_hash: Hash32
    """Hash of the validator set that must certify this block."""
    next_validator_set_hash: Hash32
    """Hash of the validator set that certifies the next block."""
    version: int = HEADER_VERSION
    """Header format version."""

    def to_value(self) -> list[Any]:
        return [self.version, self.chain_id, self.height, self.round, self.timestamp_ms,
                self.prev_hash, self.proposer, self.tx_root, self.results_root, self.state_root,
                self.validator_set_hash, self.next_validator_set_hash]

    @cached_property
    def encoded(self) -> bytes:
        return codec.encode(self.to_value())

    @cached_property
    def hash(self) -> Hash32:
        return compute_hash(self.encoded)

    @classmethod
    def from_value(cls, value: Any) -> BlockHeader:
        if isinstance(value, tuple) and value and value[0] != HEADER_VERSION:
            raise MalformedError(
                f"header version {value[0]!r} is not supported; this node reads version "
                f"{HEADER_VERSION} (with results_root)")
        (version, chain_id, height, round_, timestamp_ms, prev_hash, proposer, tx_root,
         results_root, state_root, vset, next_vset) = codec.expect_tuple(value, 12, "header")
        return cls(
            chain_id=codec.expect_str(chain_id, "header chain_id", max_len=64),
            height=codec.expect_int(height, "header height"),
            round=codec.expect_int(round_, "header round", hi=2**32 - 1),
            timestamp_ms=codec.expect_int(timestamp_ms, "header timestamp_ms"),
            prev_hash=Hash32(codec.expect_bytes(prev_hash, "prev_hash", size=HASH_SIZE)),
            proposer=PublicKey(codec.expect_bytes(proposer, "proposer", size=PUBLIC_KEY_SIZE)),
            tx_root=Hash32(codec.expect_bytes(tx_root, "tx_root", size=HASH_SIZE)),
            results_root=Hash32(codec.expect_bytes(results_root, "results_root",
                                                   size=HASH_SIZE)),
            state_root=Hash32(codec.expect_bytes(state_root, "state_root", size=HASH_SIZE)),
            validator_set_hash=Hash32(codec.expect_bytes(vset, "validator_set_hash",
                                                         size=HASH_SIZE)),
            next_validator_set_hash=Hash32(codec.expect_bytes(
                next_vset, "next_validator_set_hash", size=HASH_SIZE)),
            version=version,
        )

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        return cls.from_value(codec.decode(data, max_size=4096))


@dataclass(frozen=True)
class Block:
    """A header and the transactions it commits to."""

    header: BlockHeader
    """The header; its hash is the block's hash."""
    txs: tuple[Transaction, ...]
    """The transactions, in execution order."""

    @property
    def hash(self) -> Hash32:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    @cached_property
    def encoded(self) -> bytes:
        # Transactions are embedded as their own canonical bytes, so each keeps the
        # exact encoding its hash and signatures were computed over.
        return codec.encode([self.header.to_value(), [tx.encoded for tx in self.txs]])

    def to_value(self) -> list[Any]:
        return [self.header.to_value(), [tx.encoded for tx in self.txs]]

    @classmethod
    def from_value(cls, value: Any, *, max_tx_bytes: int = 64 * 1024,
                   known_txs: Callable[[Hash32], Transaction | None] | None = None) -> Block:
        """Decode a block value. `known_txs` maps a tx hash to an already decoded
        transaction (a mempool), so that a transaction is decoded once per node."""
        header_value, tx_values = codec.expect_tuple(value, 2, "block")
        if not isinstance(tx_values, tuple):
            raise MalformedError("block txs: expected an array")
        txs = []
        for item in tx_values:
            data = codec.expect_bytes(item, "block tx")
            known = known_txs(compute_hash(data)) if known_txs is not None else None
            txs.append(known if known is not None
                       else Transaction.decode(data, max_size=max_tx_bytes))
        return cls(BlockHeader.from_value(header_value), tuple(txs))

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_BLOCK_BYTES,
               known_txs: Callable[[Hash32], Transaction | None] | None = None) -> Block:
        if len(data) > max_size:
            raise TooLargeError(f"block of {len(data)} bytes exceeds {max_size}")
        block = cls.from_value(codec.decode(data, max_size=max_size), known_txs=known_txs)
        block.__dict__["encoded"] = bytes(data)
        return block


def compute_tx_root(txs: tuple[Transaction, ...] | list[Transaction]) -> Hash32:
    """The Merkle root over the hashes of `txs` in order."""
    return merkle.compute_root([tx.hash for tx in txs])
