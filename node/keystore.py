"""Encrypted key files: argon2id (pynacl pwhash) derives a key that seals the seed in a
SecretBox (XSalsa20-Poly1305).

A key file is JSON. An encrypted one holds the public key in the clear (so that
`keys show-public` needs no passphrase) and the sealed 32-byte seed; a plaintext one
(devnets only) holds the seed in hex and is reported as insecure wherever it is read.
This module never logs, prints or writes a seed except through `export_plaintext`,
which the operator asks for by name.
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

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from chain.crypto import KeyPair
from node.errors import ConfigError

KEYSTORE_FORMAT = "govchain-keystore"
KEYSTORE_VERSION = 1
ENV_PASSPHRASE = "GOVCHAIN_KEY_PASSPHRASE"
ENV_PASSPHRASE_FILE = "GOVCHAIN_KEY_PASSPHRASE_FILE"

KDF_COSTS: dict[str, tuple[int, int]] = {
    # name: (opslimit, memlimit bytes)
    "moderate": (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),  # 3, 256 MiB
    "interactive": (argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),  # 2, 64 MiB
    "test": (argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN),  # tests only: 1, 8 KiB
}
DEFAULT_KDF_COST = "moderate"
"""A key is unlocked once per start: a second of work and 256 MiB is a fair price."""


class KeystoreError(ConfigError):
    """Raised when a key file cannot be read, decrypted or written."""

    code = "keystore_error"


class WrongPassphraseError(KeystoreError):
    """Raised when the passphrase does not open an encrypted key file."""

    code = "wrong_passphrase"


@dataclass(frozen=True)
class LoadedKey:
    """A key read from a file, and whether that file was encrypted."""

    key: KeyPair
    """The key pair."""
    encrypted: bool
    """False for a plaintext dev key file (insecure)."""


def encrypt_key(key: KeyPair, passphrase: bytes, cost: str = DEFAULT_KDF_COST) -> dict[str, Any]:
    """The keystore document sealing `key` under `passphrase`."""
    if cost not in KDF_COSTS:
        raise KeystoreError(f"unknown key derivation cost {cost!r}; use one of "
                            + ", ".join(KDF_COSTS))
    if not passphrase:
        raise KeystoreError("an empty passphrase does not protect a key; choose one")
    opslimit, memlimit = KDF_COSTS[cost]
    salt = nacl.utils.random(argon2id.SALTBYTES)
    box_key = argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt,
                           opslimit=opslimit, memlimit=memlimit)
    sealed = nacl.secret.SecretBox(box_key).encrypt(key.seed)
    return {
        "format": KEYSTORE_FORMAT, "version": KEYSTORE_VERSION,
        "public_key": key.public_key.hex(), "address": key.address.hex(),
        "kdf": {"name": "argon2id", "salt": salt.hex(), "opslimit": opslimit,
                "memlimit": memlimit},
        "cipher": {"name": "xsalsa20poly1305", "sealed": bytes(sealed).hex()},
    }


def is_encrypted(doc: Mapping[str, Any]) -> bool:
    return doc.get("format") == KEYSTORE_FORMAT


def decrypt_key(doc: Mapping[str, Any], passphrase: bytes, where: str = "key file") -> KeyPair:
    """Open a keystore document; WrongPassphraseError if the passphrase is wrong."""
    try:
        if doc["version"] != KEYSTORE_VERSION or doc["kdf"]["name"] != "argon2id":
            raise KeystoreError(f"{where}: keystore version {doc['version']} / kdf "
                                f"{doc['kdf']['name']} is not supported by this node")
        kdf = doc["kdf"]
        salt = bytes.fromhex(kdf["salt"])
        sealed = bytes.fromhex(doc["cipher"]["sealed"])
        opslimit, memlimit = int(kdf["opslimit"]), int(kdf["memlimit"])
    except (KeyError, TypeError, ValueError) as e:
        raise KeystoreError(f"{where} is not a valid govchain keystore") from e
    try:
        box_key = argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt,
                               opslimit=opslimit, memlimit=memlimit)
        seed = nacl.secret.SecretBox(box_key).decrypt(sealed)
    except nacl.exceptions.CryptoError as e:
        raise WrongPassphraseError(f"{where}: wrong passphrase (or the file was altered)") \
            from e
    key = KeyPair.from_seed(seed)
    if doc.get("public_key") != key.public_key.hex():
        raise KeystoreError(f"{where}: the sealed key does not match its public_key")
    return key


def read_key_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise KeystoreError(f"key file {path} is missing") from e
    except (OSError, ValueError) as e:
        raise KeystoreError(f"key file {path} is not a govchain key file: {e}") from e
    if not isinstance(doc, dict):
        raise KeystoreError(f"key file {path} is not a govchain key file")
    return doc


def get_public_key_hex(path: Path) -> str:
    """The public key of a key file (encrypted or not), without unlocking it."""
    doc = read_key_doc(path)
    value = doc.get("public_key")
    if not isinstance(value, str):
        raise KeystoreError(f"key file {path} names no public_key")
    return value


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
    return json.dumps({"public_key": key.public_key.hex(),
                       "secret_seed": key.seed.hex()}, indent=2) + "\n"


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
    try:
        key = KeyPair.from_seed(bytes.fromhex(doc["secret_seed"]))
    except (ValueError, KeyError, TypeError) as e:
        raise KeystoreError(f"key file {path} is not a govchain key file") from e
    if "public_key" in doc and doc["public_key"] != key.public_key.hex():
        raise KeystoreError(f"key file {path}: public_key does not match the secret seed")
    return LoadedKey(key, False)
