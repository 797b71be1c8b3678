"""Restores a state snapshot chunk by chunk, slowly, until killed (a crash mid-restore).

Usage: python restore_writer.py SNAPSHOT_DIR DATA_DIR. Prints each chunk index once its
batch is written; sleeps between chunks so that a test can kill it in the middle.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chain.snapshot import SnapshotChunk, SnapshotManifest, verify_chunk
from storage.snapshot import MANIFEST_FILE, StateRestore, chunk_file_name


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = SnapshotManifest.decode((source / MANIFEST_FILE).read_bytes())
    restore = StateRestore.begin(target, manifest)
    print("begun", flush=True)
    for index in range(manifest.chunk_count):
        chunk = SnapshotChunk.decode((source / chunk_file_name(index)).read_bytes())
        restore.write_chunk(index, verify_chunk(manifest, index, chunk))
        print(index, flush=True)
        time.sleep(0.2)
    time.sleep(60)  # never finishes: the test kills it


if __name__ == "__main__":
    main()
