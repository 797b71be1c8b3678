"""Key files: create, load and save ed25519 keys in govchain's key-file format.

A key file is JSON (chain/keyfile.py): a plain one {"public_key", "secret_seed"}
readable only by its owner (devnets), or one sealed under a passphrase. Keep it off
shared disks; whoever reads a plain one can sign for the account.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from chain.crypto import KeyPair
from chain.keyfile import (
    KeyFileError,
    decode_plain_key,
    decrypt_key,
    encode_plain_key,
    is_encrypted,
    parse_key_document,
)

ENV_PASSPHRASE = "GOVCHAIN_KEY_PASSPHRASE"
ENV_PASSPHRASE_FILE = "GOVCHAIN_KEY_PASSPHRASE_FILE"


def generate_key() -> KeyPair:
    """A new random key."""
    return KeyPair.generate()


def load_key(path: str | Path, passphrase: bytes | str | None = None, *,
             env: Mapping[str, str] | None = None) -> KeyPair:
    """Read a key file; raises KeyFileError naming the file if it is missing or wrong.

    An encrypted file is opened with `passphrase`, else with GOVCHAIN_KEY_PASSPHRASE
    or the file GOVCHAIN_KEY_PASSPHRASE_FILE names, else by asking on a terminal."""
    target = Path(path)
    try:
        text = target.read_text()
    except FileNotFoundError as e:
        raise KeyFileError(f"key file {target} is missing") from e
    except OSError as e:
        raise KeyFileError(f"key file {target} cannot be read: {e}") from e
    doc = parse_key_document(text, str(target))
    if not is_encrypted(doc):
        return decode_plain_key(doc, str(target))
    if passphrase is None:
        passphrase = _find_passphrase(str(target), os.environ if env is None else env)
    secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
    return decrypt_key(doc, secret, str(target))


def save_key(path: str | Path, key: KeyPair, *, overwrite: bool = False) -> Path:
    """Write `key` to a new owner-only PLAINTEXT file; refuses to overwrite unless told."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; refusing to overwrite a key file")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(encode_plain_key(key), f, indent=2)
        f.write("\n")
    return target


def _find_passphrase(where: str, env: Mapping[str, str]) -> bytes:
    file = env.get(ENV_PASSPHRASE_FILE)
    if file:
        try:
            lines = Path(file).read_text().splitlines()
        except OSError as e:
            raise KeyFileError(f"cannot read the passphrase file {file}: {e}") from e
        return lines[0].encode() if lines else b""
    if env.get(ENV_PASSPHRASE):
        return env[ENV_PASSPHRASE].encode()
    if sys.stdin.isatty():
        return getpass.getpass(f"passphrase for {where}: ").encode()
    raise KeyFileError(f"key file {where} is encrypted: pass a passphrase, or set "
                       f"{ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE}")
