"""Key files: create, load and save ed25519 keys (the node's own key-file format).

A key file is JSON {"public_key", "secret_seed"} readable only by its owner. Keep
it off shared disks; whoever reads it can sign for the account.
"""

from __future__ import annotations

from pathlib import Path

from chain.crypto import KeyPair
from node.config import read_key_file, write_key_file


def generate_key() -> KeyPair:
    """A new random key."""
    return KeyPair.generate()


def load_key(path: str | Path) -> KeyPair:
    """Read a key file; raises ConfigError naming the file if it is missing or wrong."""
    return read_key_file(Path(path))


def save_key(path: str | Path, key: KeyPair, *, overwrite: bool = False) -> Path:
    """Write `key` to a new owner-only file; refuses to overwrite unless told."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; refusing to overwrite a key file")
    write_key_file(target, key)
    return target
