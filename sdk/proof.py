"""Checking what a node says without trusting it: certificates, headers, state proofs.

The trust anchor is a validator set the caller already trusts (from genesis, or from a
header it verified). `verify_state` checks that the node's block at the proof's
height is certified by a quorum of that set, that the header hashes to the
certified block hash, and that the state proof leads to the header's state root.
"""

from __future__ import annotations

from typing import Any

from chain.block import BlockHeader
from chain.errors import ChainError
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


__all__ = ["ProofError", "verify_block", "verify_state", "verify_state_proof"]
