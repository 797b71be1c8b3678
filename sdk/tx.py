"""Building, signing and exchanging transactions of any type, including multisig.

`build_tx` makes an unsigned transaction of any `tx_type` from plain fields; each
signer adds a signature with `sign_tx`, online or offline. A tx file carries a
transaction between signers: JSON with the canonical encoding (authoritative) and a
readable view. Field values in JSON use "0x..." hex for bytes (addresses, hashes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chain.crypto import Address, KeyPair
from chain.tx import Transaction

TX_FILE_FORMAT = "govchain-tx/1"


def fields_from_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON fields to canonical values: "0x..." strings become bytes."""
    return {key: _value_from_json(value) for key, value in fields.items()}


def _value_from_json(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x"):
        return bytes.fromhex(value[2:])
    if isinstance(value, list):
        return tuple(_value_from_json(v) for v in value)
    if isinstance(value, dict):
        return {k: _value_from_json(v) for k, v in value.items()}
    return value


def fields_to_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical values to JSON: bytes become "0x..." strings."""
    return {key: _value_to_json(value) for key, value in fields.items()}


def _value_to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_value_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _value_to_json(v) for k, v in value.items()}
    return value


def build_tx(chain_id: str, tx_type: str, fields: Mapping[str, Any], *, sender: bytes,
             nonce: int) -> Transaction:
    """An unsigned transaction of any type; `fields` may use "0x..." hex for bytes."""
    return Transaction(chain_id, Address(bytes(sender)), nonce, tx_type,
                       fields_from_json(fields))


def sign_tx(tx: Transaction, *keys: KeyPair) -> Transaction:
    """`tx` with a signature of each key added (signatures stay sorted, one per key)."""
    for key in keys:
        tx = tx.with_signature(key)
    return tx


def tx_to_json(tx: Transaction) -> dict[str, Any]:
    """The tx file document of `tx`."""
    return {"format": TX_FILE_FORMAT, "hash": tx.hash.hex(), "chain_id": tx.chain_id,
            "sender": "0x" + tx.sender.hex(), "nonce": tx.nonce, "type": tx.tx_type,
            "fields": fields_to_json(tx.fields),
            "signers": ["0x" + s.public_key.hex() for s in tx.signatures],
            "tx": tx.encoded.hex()}


def tx_from_json(doc: Mapping[str, Any]) -> Transaction:
    """The transaction of a tx file document (its `tx` encoding is authoritative)."""
    if doc.get("format") != TX_FILE_FORMAT or not isinstance(doc.get("tx"), str):
        raise ValueError(f"not a {TX_FILE_FORMAT} document")
    return Transaction.decode(bytes.fromhex(doc["tx"]))


def save_tx_file(path: str | Path, tx: Transaction) -> Path:
    """Write `tx` (signed or not) to a tx file, replacing it atomically."""
    target = Path(path)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(json.dumps(tx_to_json(tx), indent=2) + "\n")
    os.replace(temp, target)
    return target


def load_tx_file(path: str | Path) -> Transaction:
    return tx_from_json(json.loads(Path(path).read_text()))


def add_signature_to_file(path: str | Path, key: KeyPair) -> Transaction:
    """Offline co-signing: load a tx file, add `key`'s signature, write it back."""
    tx = sign_tx(load_tx_file(path), key)
    save_tx_file(path, tx)
    return tx
