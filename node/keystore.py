"""Key files on disk: reading and writing them, and where their passphrase comes from.

The document format (sealed with argon2id + SecretBox, or plain for devnets) is
chain/keyfile.py's. An encrypted file holds the public key in the clear (so that
`keys show-public` needs no passphrase); a plaintext one is reported as insecure
wherever it is read. This module never logs, prints or writes a seed except through
`export_plaintext`, which the operator asks for by name.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import Address, KeyPair, PublicKey, compute_address
from chain.keyfile import (
    DEFAULT_KDF_COST,
    KDF_COSTS,
    KEYSTORE_FORMAT,
    KEYSTORE_VERSION,
    KeyFileError,
    WrongPassphraseError,
    decode_plain_key,
    decrypt_key,
    encode_plain_key,
    encrypt_key,
    is_encrypted,
    parse_key_document,
    validate_sealed_public_key,
)

ENV_PASSPHRASE = "GOVCHAIN_KEY_PASSPHRASE"
ENV_PASSPHRASE_FILE = "GOVCHAIN_KEY_PASSPHRASE_FILE"

KeystoreError = KeyFileError
"""The node's name for the key-file format's error (raised here and by chain.keyfile)."""


@dataclass(frozen=True)
class LoadedKey:
    """A key read from a file, and whether that file was encrypted."""

    key: KeyPair
    """The key pair."""
    encrypted: bool
    """False for a plaintext dev key file (insecure)."""


def read_key_doc(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise KeystoreError(f"key file {path} is missing") from e
    except OSError as e:
        raise KeystoreError(f"key file {path} is not a govchain key file: {e}") from e
    return parse_key_document(text, str(path))


@dataclass(frozen=True)
class PublicKeyInfo:
    """What a key file says in the clear, and how far that was checked."""

    public_key: PublicKey
    """The key file's public key."""
    address: Address
    """Its account address."""
    encrypted: bool
    """True for a sealed key file."""
    seed_checked: bool
    """True when the public key was derived from the seed (a plaintext file, or a sealed
    one unlocked); False when only the clear address was checked against it."""


def read_public_key(path: Path, passphrase: PassphraseSource | None = None) -> PublicKeyInfo:
    """The public key of a key file, refused if the file contradicts itself.

    A sealed file is unlocked only when `passphrase` gives one without a prompt;
    otherwise its clear address is checked against its clear public key.
    """
    doc = read_key_doc(path)
    if not isinstance(doc.get("public_key"), str):
        raise KeystoreError(f"key file {path} names no public_key")
    if not is_encrypted(doc):
        key = decode_plain_key(doc, str(path))
        return PublicKeyInfo(key.public_key, key.address, False, True)
    if passphrase is not None and passphrase.is_given():
        key = decrypt_key(doc, passphrase.get(str(path)), str(path))
        return PublicKeyInfo(key.public_key, key.address, True, True)
    public_key = validate_sealed_public_key(doc, str(path))
    return PublicKeyInfo(public_key, compute_address(public_key), True, False)


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` readable only by its owner, atomically (temp + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_encrypted_key_file(path: Path, key: KeyPair, passphrase: bytes,
                             cost: str = DEFAULT_KDF_COST) -> None:
    write_private_file(path, json.dumps(encrypt_key(key, passphrase, cost), indent=2) + "\n")


def export_plaintext(key: KeyPair) -> str:
    """The plaintext key file text: only for an export the operator asked for."""
    return json.dumps(encode_plain_key(key), indent=2) + "\n"


# ------------------------------------------------------------------ passphrases


@dataclass
class PassphraseSource:
    """Where a passphrase comes from, tried in order: file, environment, prompt."""

    file: str | None = None
    """A file holding the passphrase (first line; the trailing newline is dropped)."""
    env: Mapping[str, str] | None = None
    """Environment to read GOVCHAIN_KEY_PASSPHRASE(_FILE) from (default os.environ)."""
    prompt: bool = True
    """Ask on the terminal when stdin is one and nothing else gave a passphrase."""
    _prompted: bytes | None = field(default=None, repr=False)

    def is_given(self) -> bool:
        """True when a file or the environment gives the passphrase (no prompt needed)."""
        environ = os.environ if self.env is None else self.env
        return bool(self.file or environ.get(ENV_PASSPHRASE_FILE) or
                    environ.get(ENV_PASSPHRASE))

    def get(self, purpose: str, *, confirm: bool = False) -> bytes:
        """The passphrase; a prompt is answered once per source (both home keys)."""
        if self._prompted is not None:
            return self._prompted
        environ = os.environ if self.env is None else self.env
        path = self.file or environ.get(ENV_PASSPHRASE_FILE)
        if path:
            try:
                text = Path(path).read_text()
            except OSError as e:
                raise KeystoreError(f"cannot read the passphrase file {path}: {e}") from e
            return text.splitlines()[0].encode() if text.strip() else b""
        if environ.get(ENV_PASSPHRASE):
            return environ[ENV_PASSPHRASE].encode()
        if self.prompt and sys.stdin.isatty():
            first = getpass.getpass(f"passphrase for {purpose}: ")
            if confirm and getpass.getpass("repeat the passphrase: ") != first:
                raise KeystoreError("the two passphrases differ")
            self._prompted = first.encode()
            return self._prompted
        raise KeystoreError(
            f"{purpose} needs a passphrase: give --passphrase-file, set {ENV_PASSPHRASE} or "
            f"{ENV_PASSPHRASE_FILE}, set key_passphrase_file in config.toml, or run on a "
            "terminal to be asked")


def load_key_file(path: Path, passphrase: PassphraseSource | None) -> LoadedKey:
    """Read a key file, unlocking it with `passphrase` when it is encrypted."""
    doc = read_key_doc(path)
    if is_encrypted(doc):
        if passphrase is None:
            raise KeystoreError(f"key file {path} is encrypted and no passphrase was given")
        return LoadedKey(decrypt_key(doc, passphrase.get(str(path)), str(path)), True)
    return LoadedKey(decode_plain_key(doc, str(path)), False)


__all__ = ["DEFAULT_KDF_COST", "KDF_COSTS", "KEYSTORE_FORMAT", "KEYSTORE_VERSION", "KeystoreError",
           "LoadedKey", "PassphraseSource", "PublicKeyInfo", "WrongPassphraseError",
           "decrypt_key", "encrypt_key", "export_plaintext", "is_encrypted", "load_key_file",
           "read_key_doc", "read_public_key", "write_encrypted_key_file", "write_private_file"]
