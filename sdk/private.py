"""SDK for private registries: commit to a payload, sign read requests, verify offline.

A writer draws a salt and puts only the commitment on the chain (`make_commitment`).
A citizen who holds the payload and its salt proves it genuine against the chain with
`verify_private_record`: the record comes with a state proof checked from genesis, and
the payload never leaves the citizen's machine. `verify_read_log` checks a holder's
answer to `private_reads` against the anchors on the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nacl.utils

from chain import codec
from chain.commitment import (
    DOMAIN_PRIVATE_READ,
    SALT_SIZE,
    compute_record_commitment,
    encode_read_entry,
    get_read_request_payload,
    is_matching_commitment,
    is_valid_read_log_proof,
)
from chain.crypto import KeyPair, signing_bytes
from chain.genesis import Genesis
from chain.state_proof import StateProof, verify_state_proof
from ledger.keys import get_read_anchor_key
from sdk import Client
from sdk.ledger import LightClient, VerificationError, verify_record


def make_commitment(payload: bytes) -> tuple[bytes, bytes]:
    """(salt, commitment) for `payload`: keep the salt with the payload, put the
    commitment on the chain (private_put)."""
    salt = nacl.utils.random(SALT_SIZE)
    return salt, compute_record_commitment(salt, payload)


def sign_read_request(key: KeyPair, chain_id: str, action: str, namespace: str,
                      record_key: str, timestamp_ms: int) -> dict[str, Any]:
    """The params of private_read (action "read") or private_reads ("reads")."""
    message = signing_bytes(DOMAIN_PRIVATE_READ, chain_id,
                            get_read_request_payload(action, namespace, record_key,
                                                     timestamp_ms))
    return {"namespace": namespace, "key": record_key, "reader": key.public_key.hex(),
            "timestamp_ms": timestamp_ms, "signature": key.sign(message).hex()}


def verify_payload(record: Mapping[str, Any], salt: bytes, payload: bytes) -> None:
    """Raise VerificationError unless `payload` and `salt` open the record's commitment.
    Offline: `record` is the decoded record value (a state proof already vouched for it)."""
    commitment = record.get("commitment")
    if not isinstance(commitment, bytes):
        raise VerificationError("the record is not a private record (it has no commitment)")
    if not is_matching_commitment(commitment, salt, payload):
        raise VerificationError("the payload and salt do not open the record's commitment")


def verify_private_record(client: Client, genesis: Genesis, namespace: str, key: str,
                          salt: bytes, payload: bytes, *, light: LightClient | None = None
                          ) -> tuple[dict[str, Any], int]:
    """Verify from genesis that `payload` is the one the record commits to; the node
    is asked only for the record and its proof. Returns (record, height)."""
    record, height = verify_record(client, genesis, namespace, key, light=light)
    verify_payload(record, salt, payload)
    return record, height


def verify_read_log(client: Client, answer: Mapping[str, Any], *,
                    light: LightClient | None = None) -> list[dict[str, Any]]:
    """Check each anchored entry of a private_reads answer against its anchor on the
    chain (read with state_proof; with `light`, the anchor's state proof is checked
    against a header verified from genesis too); return the entries, each with
    "anchored" true or false. An entry not yet anchored is returned unproven. Raises
    VerificationError."""
    holder = bytes.fromhex(answer["holder"])
    checked = []
    for item in answer["entries"]:
        entry = _entry_from_json(item["entry"])
        anchor = item.get("anchor")
        if anchor is None:
            checked.append({**item["entry"], "anchored": False})
            continue
        state_key = get_read_anchor_key(holder, int(anchor["batch"]))
        proven = client.call("state_proof", key=state_key.hex())
        value = proven["value"]
        if value is None:
            raise VerificationError(f"no anchor {anchor['batch']} of {holder.hex()} on chain")
        if light is not None:
            header = light.sync_to(int(proven["height"]))
            if not verify_state_proof(StateProof.from_json(proven["proof"]), state_key,
                                      bytes.fromhex(value), header.state_root):
                raise VerificationError("the anchor's state proof fails against the "
                                        "certified state root")
        on_chain = codec.decode(bytes.fromhex(value))
        path = [bytes.fromhex(h) for h in anchor["path"]]
        if not is_valid_read_log_proof(encode_read_entry(entry), int(anchor["index"]),
                                       int(on_chain["count"]), path, on_chain["root"]):
            raise VerificationError(f"read-log entry {entry['seq']} is not in anchor "
                                    f"{anchor['batch']} of {holder.hex()}")
        checked.append({**item["entry"], "anchored": True})
    return checked


_BYTES_FIELDS = ("reader", "request")


def _entry_from_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: bytes.fromhex(v) if k in _BYTES_FIELDS else v for k, v in doc.items()}
