"""Checking what a node says without trusting it: certificates, headers, state proofs,
transaction inclusion and results.

The trust anchor is a validator set the caller already trusts (from genesis, or from a
header it verified). `verify_block` checks that the node's block is certified by a
quorum of that set and that the header hashes to the certified block hash;
`verify_state` that a state proof leads to the header's state root; `verify_tx` that a
transaction is in the header's tx root and that its result (code and events) is in
the header's results root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import codec, merkle
from chain.block import BlockHeader
from chain.crypto import Hash32, compute_hash
from chain.errors import ChainError
from chain.results import OK_CODE, is_valid_result_proof, validate_result_leaf
from chain.state_proof import StateProof, verify_state_proof
from chain.vote import CommitCertificate, ValidatorSet, validate_certificate


class ProofError(Exception):
    """Raised when a node's answer does not prove what it claims."""


def verify_block(block_doc: dict[str, Any], validator_set: ValidatorSet,
                 chain_id: str) -> BlockHeader:
    """The header of a chain_block answer, once its certificate is checked."""
    try:
        header = BlockHeader.decode(bytes.fromhex(block_doc["header"]))
        certificate = CommitCertificate.decode(bytes.fromhex(block_doc["certificate"]["encoded"]))
        validate_certificate(certificate, validator_set, chain_id, height=header.height,
                             block_hash=header.hash)
    except (ChainError, KeyError, TypeError, ValueError) as e:
        raise ProofError(f"block is not certified by the trusted validator set: {e}") from e
    return header


def verify_state(proof_doc: dict[str, Any], header: BlockHeader) -> bytes | None:
    """The proven value of a state_proof answer under a verified `header`."""
    try:
        proof = StateProof.from_json(proof_doc["proof"])
        key = bytes.fromhex(proof_doc["key"])
        value = None if proof_doc["value"] is None else bytes.fromhex(proof_doc["value"])
    except (ChainError, KeyError, TypeError, ValueError) as e:
        raise ProofError(f"malformed state proof: {e}") from e
    if header.height != proof.height:
        raise ProofError(f"proof is for height {proof.height}, header is {header.height}")
    if not verify_state_proof(proof, key, value, header.state_root):
        raise ProofError("state proof does not lead to the certified state root")
    return value


@dataclass(frozen=True, slots=True)
class ProvenTx:
    """A transaction proven in a certified block, with its proven result."""

    tx_hash: Hash32
    """The transaction's hash."""
    tx: bytes
    """Its exact bytes (they hash to `tx_hash`)."""
    height: int
    """The height of the block holding it."""
    index: int
    """Its position in that block."""
    code: str
    """Its result code: "ok" when it succeeded, else the rejection code."""
    events: Any
    """The events it emitted, as canonical values ([kind, {attribute: value}] each)."""

    @property
    def succeeded(self) -> bool:
        return self.code == OK_CODE


def verify_tx(proof_doc: dict[str, Any], header: BlockHeader) -> ProvenTx:
    """The transaction and result proven by a tx_proof answer under a verified `header`.

    Checks that the transaction bytes hash to the claimed hash, that they are at
    `index` of the header's tx root, and that the result leaf names this transaction
    and is at the same index of the header's results root, with events that hash to
    the leaf's events hash. The result message is not committed and is not returned.
    """
    try:
        tx_hash = bytes.fromhex(proof_doc["hash"])
        tx = bytes.fromhex(proof_doc["tx"])
        index, size, height = proof_doc["index"], proof_doc["tx_count"], proof_doc["height"]
        path = [bytes.fromhex(p) for p in proof_doc["path"]]
        result = proof_doc["result"]
        leaf_bytes = bytes.fromhex(result["leaf"])
        result_path = [bytes.fromhex(p) for p in result["path"]]
        events_bytes = bytes.fromhex(result["events"])
        if not all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (index, size, height)):
            raise TypeError("index, tx_count and height must be integers")
        leaf = validate_result_leaf(leaf_bytes, tx_hash)
        events = codec.decode(events_bytes)
    except (ChainError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProofError(f"malformed tx proof: {e}") from e
    if height != header.height:
        raise ProofError(f"proof is for height {height}, header is {header.height}")
    if compute_hash(tx) != tx_hash:
        raise ProofError("the transaction bytes do not hash to the claimed hash")
    if not merkle.is_valid_proof(tx_hash, index, size, path, header.tx_root):
        raise ProofError("the transaction is not included: its path does not lead to "
                         "the certified tx root")
    if not is_valid_result_proof(leaf_bytes, index, size, result_path, header.results_root):
        raise ProofError("the result is not proven: its path does not lead to the "
                         "certified results root")
    if compute_hash(events_bytes) != leaf.events_hash:
        raise ProofError("the events given do not hash to the proven result's events hash")
    return ProvenTx(Hash32(tx_hash), tx, height, index, leaf.code, events)


def verify_tx_succeeded(proof_doc: dict[str, Any], header: BlockHeader) -> ProvenTx:
    """As verify_tx, and raise ProofError unless the proven result code is "ok"."""
    proven = verify_tx(proof_doc, header)
    if not proven.succeeded:
        raise ProofError(f"the transaction is included but was refused at execution with "
                         f"code {proven.code!r}")
    return proven


__all__ = ["ProofError", "ProvenTx", "verify_block", "verify_state", "verify_state_proof",
           "verify_tx", "verify_tx_succeeded"]
