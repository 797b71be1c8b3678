"""The key-file format: the JSON document that holds one ed25519 key, sealed or plain.

A sealed document keeps the public key in the clear and the 32-byte seed in a
SecretBox (XSalsa20-Poly1305) under a key that argon2id (pynacl pwhash) derives from
a passphrase; a plain one (devnets only) holds the seed in hex. The node's keystore
and the SDK both read keys through this module. It does no file I/O and never logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from chain.crypto import PUBLIC_KEY_SIZE, KeyPair, PublicKey, compute_address
from chain.errors import ChainError

KEYSTORE_FORMAT = "govchain-keystore"
KEYSTORE_VERSION = 1

KDF_COSTS: dict[str, tuple[int, int]] = {
    # name: (opslimit, memlimit bytes)
    "moderate": (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),  # 3, 256 MiB
    "interactive": (argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),  # 2, 64 MiB
    "test": (argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN),  # tests only: 1, 8 KiB
}
DEFAULT_KDF_COST = "moderate"
"""A key is unlocked once per start: a second of work and 256 MiB is a fair price."""


class KeyFileError(ChainError):
    """Raised when a key file cannot be read, decrypted or written."""

    code = "keystore_error"


class WrongPassphraseError(KeyFileError):
    """Raised when the passphrase does not open an encrypted key file."""

    code = "wrong_passphrase"


def parse_key_document(text: str, where: str) -> dict[str, Any]:
    """The JSON object of a key file's text; KeyFileError naming `where` if it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise KeyFileError(f"key file {where} is not a govchain key file: {e}") from e
    if not isinstance(doc, dict):
        raise KeyFileError(f"key file {where} is not a govchain key file")
    return doc


def is_encrypted(doc: Mapping[str, Any]) -> bool:
    return doc.get("format") == KEYSTORE_FORMAT


def encode_plain_key(key: KeyPair) -> dict[str, Any]:
    """The PLAINTEXT document of `key` (devnets, tests and explicit exports only)."""
    return {"public_key": key.public_key.hex(), "secret_seed": key.seed.hex()}


def decode_plain_key(doc: Mapping[str, Any], where: str) -> KeyPair:
    """The key of a plaintext document; its public_key, when present, must match."""
    try:
        key = KeyPair.from_seed(bytes.fromhex(doc["secret_seed"]))
    except (ValueError, KeyError, TypeError) as e:
        raise KeyFileError(f"key file {where} is not a govchain key file") from e
    if "public_key" in doc and doc["public_key"] != key.public_key.hex():
        raise KeyFileError(f"key file {where}: public_key does not match the secret seed")
    if "address" in doc and doc["address"] != key.address.hex():
        raise KeyFileError(f"key file {where}: address does not match the secret seed")
    return key


def validate_sealed_public_key(doc: Mapping[str, Any], where: str) -> PublicKey:
    """The clear public_key of a sealed document, checked against its clear address.

    This is all that can be checked without the passphrase: a public_key altered alone
    is caught here; one altered together with its address only when the seed is
    unlocked (decrypt_key compares them).
    """
    try:
        key = bytes.fromhex(doc["public_key"])
    except (KeyError, TypeError, ValueError) as e:
        raise KeyFileError(f"key file {where} names no valid public_key") from e
    if len(key) != PUBLIC_KEY_SIZE:
        raise KeyFileError(f"key file {where}: public_key is not {PUBLIC_KEY_SIZE} bytes")
    if doc.get("address") != compute_address(key).hex():
        raise KeyFileError(f"key file {where}: its address does not match its public_key "
                           "(the file was altered)")
    return PublicKey(key)


def encrypt_key(key: KeyPair, passphrase: bytes, cost: str = DEFAULT_KDF_COST) -> dict[str, Any]:
    """The keystore document sealing `key` under `passphrase`."""
    if cost not in KDF_COSTS:
        raise KeyFileError(f"unknown key derivation cost {cost!r}; use one of "
                           + ", ".join(KDF_COSTS))
    if not passphrase:
        raise KeyFileError("an empty passphrase does not protect a key; choose one")
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


def decrypt_key(doc: Mapping[str, Any], passphrase: bytes, where: str = "key file") -> KeyPair:
    """Open a keystore document; WrongPassphraseError if the passphrase is wrong."""
    try:
        if doc["version"] != KEYSTORE_VERSION or doc["kdf"]["name"] != "argon2id":
            raise KeyFileError(f"{where}: keystore version {doc['version']} / kdf "
                               f"{doc['kdf']['name']} is not supported by this node")
        kdf = doc["kdf"]
        salt = bytes.fromhex(kdf["salt"])
        sealed = bytes.fromhex(doc["cipher"]["sealed"])
        opslimit, memlimit = int(kdf["opslimit"]), int(kdf["memlimit"])
    except (KeyError, TypeError, ValueError) as e:
        raise KeyFileError(f"{where} is not a valid govchain keystore") from e
    try:
        box_key = argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt,
                               opslimit=opslimit, memlimit=memlimit)
        seed = nacl.secret.SecretBox(box_key).decrypt(sealed)
    except nacl.exceptions.CryptoError as e:
        raise WrongPassphraseError(f"{where}: wrong passphrase (or the file was altered)") \
            from e
    key = KeyPair.from_seed(seed)
    if doc.get("public_key") != key.public_key.hex():
        raise KeyFileError(f"{where}: the sealed key does not match its public_key")
    return key
