"""Commitments of private registry records and of read-log batches.

A private record keeps on the chain only SHA-256(tag || salt || payload), with a
32-byte random salt, so the chain proves that a payload existed and when without
holding it. Read requests are signed over their own domain; read-log entries are
Merkle leaves whose root a holder anchors on the chain. Pure: no I/O, no randomness
(the salt is drawn by the caller).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from chain import codec
from chain.crypto import HASH_SIZE, Hash32, compute_hash
from chain.merkle import compute_proof, compute_root, is_valid_proof

COMMITMENT_TAG = b"govchain/private-record/v1\x00"
"""Domain tag of a record commitment: no other hash in govchain starts with it."""
SALT_SIZE = 32
COMMITMENT_SIZE = HASH_SIZE
DOMAIN_PRIVATE_READ = "govchain/private-read/v1"
"""Signing domain of a reader's request to a holding node (private_read, private_reads)."""
DOMAIN_PRIVATE_FETCH = "govchain/private-fetch/v1"
"""Signing domain of a holder node's request for a payload from another holder."""
READ_LOG_TAG = b"govchain/read-log/v1\x00"


def compute_record_commitment(salt: bytes, payload: bytes) -> Hash32:
    """The commitment a private record holds on the chain."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"a salt is {SALT_SIZE} bytes, got {len(salt)}")
    return compute_hash(COMMITMENT_TAG + salt + payload)


def is_matching_commitment(commitment: bytes, salt: bytes, payload: bytes) -> bool:
    """True when `payload` and `salt` open `commitment` (compared in constant time)."""
    if len(salt) != SALT_SIZE or len(commitment) != COMMITMENT_SIZE:
        return False
    return hmac.compare_digest(compute_record_commitment(salt, payload), commitment)


def get_read_request_payload(action: str, namespace: str, key: str,
                             timestamp_ms: int) -> list[Any]:
    """What a reader signs in DOMAIN_PRIVATE_READ: the action ("read" or "reads"),
    the record and the time of the request (a node refuses stale or replayed ones)."""
    return [action, namespace, key, timestamp_ms]


def get_fetch_request_payload(namespace: str, key: str, box_key: bytes,
                              requester_node_key: bytes, server_node_key: bytes) -> list[Any]:
    """What a holder signs with its validator key to fetch a payload from a peer: the
    one-time public key the answer is sealed to, bound to both p2p identities, so the
    request cannot be replayed over another session nor its answer read by another."""
    return [namespace, key, box_key, requester_node_key, server_node_key]


def encode_read_entry(entry: dict[str, Any]) -> bytes:
    """The canonical bytes of a read-log entry: the leaf of its batch's Merkle tree."""
    return READ_LOG_TAG + codec.encode(entry)


def compute_read_log_root(entries: Sequence[bytes]) -> Hash32:
    """The root a holder anchors for a batch of encoded entries."""
    return compute_root(list(entries))


def compute_read_log_proof(entries: Sequence[bytes], index: int) -> tuple[Hash32, ...]:
    return compute_proof(list(entries), index)


def is_valid_read_log_proof(entry: bytes, index: int, size: int, path: Sequence[bytes],
                            root: bytes) -> bool:
    return is_valid_proof(entry, index, size, path, root)
