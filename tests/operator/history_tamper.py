"""Rewriting one block in a stopped node's history segments with valid checksums, the
way a forger (not a failing disk) would: the audit must then name what differs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plyvel

from chain import codec
from chain.crypto import compute_hash
from storage import schema
from storage.chain_store import HISTORY_DIR
from storage.history import BlockLocation, HistoryStore, StoredBlock, get_segment


def read_stored(data_dir: Path, height: int) -> StoredBlock:
    db = plyvel.DB(str(data_dir))
    history = HistoryStore(str(data_dir / HISTORY_DIR))
    try:
        location = BlockLocation.decode(height, db.get(schema.block_location_key(height)))
        return history.read_block(location)
    finally:
        history.close()
        db.close()


def rewrite_block(data_dir: Path, height: int,
                  change: Callable[[StoredBlock], StoredBlock]) -> None:
    """Replace block `height`'s frames by `change(frames)` and write the blocks after it
    in its segment again behind them, moving their locations and index offsets along."""
    db = plyvel.DB(str(data_dir))
    history = HistoryStore(str(data_dir / HISTORY_DIR))
    try:
        segment = get_segment(height)
        heights = []
        for key, _ in db.iterator(prefix=schema.BLOCK_LOCATION):
            if get_segment(schema.decode_height(key[1:])) == segment:
                heights.append(schema.decode_height(key[1:]))
        blocks = {h: history.read_block(BlockLocation.decode(
            h, db.get(schema.block_location_key(h)))) for h in heights}
        blocks[height] = change(blocks[height])
        offset = 0
        for h in sorted(heights):
            stored = blocks[h]
            location, offsets = history.append_block(
                h, stored.header, stored.certificate, stored.tx_records, offset=offset)
            db.put(schema.block_location_key(h), location.encode())
            for index, (record, frame) in enumerate(zip(stored.tx_records, offsets,
                                                        strict=True)):
                key = schema.tx_index_key(compute_hash(codec.decode(record)[0]), h, index)
                if db.get(key) is not None:
                    db.put(key, frame.to_bytes(schema.OFFSET_SIZE, "big"))
            offset = location.end
    finally:
        history.close()
        db.close()
