"""The audit of a store that does not hold every block: what can be checked without it.

A store that joined by state sync, or that pruned old blocks (`retain_blocks`), holds no
block below its base height, so it cannot be replayed from genesis. Both keep the same
proven headers below the base (the trust chain: each height after which the validator
set changes, and the base's parent). This checks instead: those headers prove the
base's parent from the trust point, the stored state gives the head's state root, and
every block from the base on (read from its history segment) links to its parent,
matches its transactions and their results (codes and events against the header's
results root) and is certified. It never writes to the store and never claims a replay
it did not do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chain.block import compute_tx_root
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.results import compute_results_root
from chain.state_proof import compute_state_root
from chain.vote import validate_certificate
from node.errors import NodeError
from node.ops.errors import AuditDamage
from storage.chain_store import ChainStore
from storage.errors import CorruptionError, StorageError


class StateSyncedAuditMismatch(NodeError):
    """Raised when a check of a state-synced store fails (same fields as AuditMismatch)."""

    code = "audit_mismatch"

    def __init__(self, height: int, what: str) -> None:
        super().__init__(f"height {height}: {what}")
        self.height = height
        self.what = what


@dataclass(frozen=True)
class StateSyncedAuditReport:
    """What the audit of a state-synced store checked."""

    base_height: int
    """The lowest height whose block is held (blocks below it are not here)."""
    trusted_from: int
    """0 when its validator sets are proven from genesis, else the checkpoint height."""
    headers_proven: int
    """Headers below the base whose certificates were checked."""
    blocks: int
    """Blocks from the base on checked (link, tx root, certificate; not re-executed)."""
    state_keys: int
    """State entries hashed into the recomputed root."""
    head_height: int
    """The head."""
    state_root: str
    """The head's state root (hex), equal to the one recomputed from the entries."""
    seconds: float
    """Wall time of the checks."""

    def to_json(self) -> dict[str, Any]:
        trust = "the genesis" if self.trusted_from == 0 else \
            f"the trusted checkpoint at height {self.trusted_from}"
        return {
            "replayed_from_genesis": False,
            "note": (f"this store holds blocks from height {self.base_height} on (it joined "
                     "by state sync, or pruned older blocks): it is pruned below height "
                     f"{self.base_height}, so it cannot be replayed from genesis (audit an "
                     "archive node for that). Checked instead: the headers that prove the "
                     f"base's parent from {trust}, the state entries against the head's "
                     "state root, and each held block's parent, tx root and certificate"),
            "base_height": self.base_height, "headers_proven": self.headers_proven,
            "blocks": self.blocks, "state_keys": self.state_keys,
            "head_height": self.head_height, "state_root": self.state_root,
            "seconds": round(self.seconds, 3),
        }


def audit_state_synced(store: ChainStore, genesis: Genesis) -> StateSyncedAuditReport:
    """Check what a state-synced store allows; raise StateSyncedAuditMismatch at the
    first failure."""
    started = time.monotonic()
    try:
        trusted_from, headers = _check_trust_chain(store, genesis)
        keys = _check_state(store)
        blocks = _check_blocks_after_base(store, genesis.chain_id)
    except CorruptionError as e:  # a segment or table that no longer reads: names it
        raise AuditDamage(e.message) from e
    except StorageError as e:
        raise StateSyncedAuditMismatch(store.head_height, f"stored data cannot be read: "
                                                          f"{e.message}") from e
    return StateSyncedAuditReport(store.base_height, trusted_from, headers, blocks, keys,
                                  store.head_height, store.head_state_root.hex(),
                                  time.monotonic() - started)


def _check_certified(store: ChainStore, height: int, chain_id: str) -> None:
    header, certificate = store.get_block_header(height), store.get_certificate(height)
    if header is None or certificate is None:
        raise StateSyncedAuditMismatch(height, "the header or its certificate is missing")
    validator_set = store.get_validator_set(height)
    if header.validator_set_hash != validator_set.hash:
        raise StateSyncedAuditMismatch(height, "the header names another validator set than "
                                               "the one stored for its height")
    try:
        validate_certificate(certificate, validator_set, chain_id, height=height,
                             block_hash=header.hash)
    except ChainError as e:
        raise StateSyncedAuditMismatch(height, f"commit certificate: {e.message}") from e


def _check_trust_chain(store: ChainStore, genesis: Genesis) -> tuple[int, int]:
    """Each stored set change up to the base is proven by the header before it, and the
    base's parent header by the set of its height; returns (trusted from, headers
    checked)."""
    base = store.base_height
    changes = list(store.iterate_validator_set_changes(0, base))
    if not changes:
        raise StateSyncedAuditMismatch(base, "no validator set is stored at or below the base")
    first_height, first_set = changes[0]
    if first_height == 0 and first_set.hash != genesis.validator_set.hash:
        raise StateSyncedAuditMismatch(0, "the stored genesis validator set is not the "
                                          "genesis document's")
    checked = 0
    # The first set is trusted (the genesis's, or the checkpoint's, by the hash the
    # operator gave); every later one must be named by a certified header before it.
    for height, validator_set in changes[1:]:
        _check_certified(store, height - 1, genesis.chain_id)
        header = store.get_block_header(height - 1)
        assert header is not None, "checked just above"
        if header.next_validator_set_hash != validator_set.hash:
            raise StateSyncedAuditMismatch(height - 1, "the stored validator set of the next "
                                                       "height is not the one the header names")
        checked += 1
    _check_certified(store, base - 1, genesis.chain_id)
    return first_height, checked + 1


def _check_state(store: ChainStore) -> int:
    count = 0

    def entries() -> Any:
        nonlocal count
        for item in store.iterate_state(b""):
            count += 1
            yield item

    if compute_state_root(entries()) != store.head_state_root:
        raise StateSyncedAuditMismatch(store.head_height, "the stored state entries do not "
                                                          "give the head's state root")
    return count


def _check_blocks_after_base(store: ChainStore, chain_id: str) -> int:
    previous = store.get_block_header(store.base_height - 1)
    assert previous is not None, "the base's parent header was checked first"
    for height in range(store.base_height, store.head_height + 1):
        block = store.get_block(height)
        if block is None:
            raise StateSyncedAuditMismatch(height, "the block is missing")
        if block.header.prev_hash != previous.hash:
            raise StateSyncedAuditMismatch(height, "the block does not name its parent")
        if compute_tx_root(block.txs) != block.header.tx_root:
            raise StateSyncedAuditMismatch(height, "the stored transactions do not give the "
                                                   "header's tx root")
        if compute_results_root(store.get_result_leaves(height)) != block.header.results_root:
            raise StateSyncedAuditMismatch(height, "the stored results (codes and events) do "
                                                   "not give the header's results root")
        _check_certified(store, height, chain_id)
        previous = block.header
    return max(0, store.head_height - store.base_height + 1)
