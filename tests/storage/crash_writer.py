"""Commits blocks in a loop until killed; prints each height once its commit returned.

Usage: python crash_writer.py DATA_DIR. Block h's changes are a pure function of h
(`changes_for`), so a test can recompute the state the store must hold.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from storage_builders import make_block, make_genesis, make_txs, make_validator_set

from storage.chain_store import ChainStore

KEYS_PER_BLOCK = 2000


def changes_for(height: int) -> dict[bytes, bytes | None]:
    """Updates 2,000 of 20,000 accounts; every 5th block deletes some instead."""
    changes: dict[bytes, bytes | None] = {}
    for i in range(KEYS_PER_BLOCK):
        account = (height * 7919 + i * 13) % 20_000
        delete = height % 5 == 0 and i % 10 == 0
        changes[b"acct/%05d" % account] = None if delete else b"h%d-i%d" % (height, i)
    return changes


def main() -> None:
    store = ChainStore.open(sys.argv[1], make_genesis())
    if not store.is_initialized:
        store.commit_genesis({b"param/x": b"1"}, make_validator_set())
    while True:
        height = store.head_height + 1
        changes = changes_for(height)
        txs = make_txs(3, nonce_base=3 * height)
        block, cert, prepared = make_block(store, changes, txs)
        store.commit_block(block, cert, changes, [("ok", "", [])] * len(txs), None, prepared)
        print(height, flush=True)


if __name__ == "__main__":
    main()
