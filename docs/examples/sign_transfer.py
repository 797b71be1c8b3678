"""Build and sign a govchain transfer from fixed seeds and print every intermediate.

The output is pasted in docs/protocol.md ("Worked example") and
tests/chain/test_protocol_doc.py checks that the two agree, so the document cannot
drift from the code. Run from the repository root:

    PYTHONPATH=. python docs/examples/sign_transfer.py
"""

from __future__ import annotations

from chain import merkle
from chain.block import compute_tx_root
from chain.crypto import (
    DOMAIN_VOTE,
    KeyPair,
    compute_address,
    compute_multisig_address,
    signing_bytes,
)
from chain.tx import Transaction
from chain.vote import Vote, VoteKind

CHAIN_ID = "govchain-example"
SENDER_SEED = bytes([0x64]) * 32
RECIPIENT_SEED = bytes([0x65]) * 32
VALIDATOR_SEED = bytes([0x01]) * 32


def compute_lines() -> list[str]:
    """The example's output, one "name: value" line each."""
    sender = KeyPair.from_seed(SENDER_SEED)
    recipient = KeyPair.from_seed(RECIPIENT_SEED)
    fields = {"to": recipient.address, "asset": "GOV", "amount": 250}
    unsigned = Transaction(CHAIN_ID, sender.address, 0, "transfer", fields)
    tx = unsigned.with_signature(sender)
    multisig = compute_multisig_address(2, (recipient.public_key, sender.public_key))
    validator = KeyPair.from_seed(VALIDATOR_SEED)
    block_hash = bytes(range(32))
    precommit = Vote.create(CHAIN_ID, validator, VoteKind.PRECOMMIT, 1, 0, block_hash)
    vote_bytes = signing_bytes(DOMAIN_VOTE, CHAIN_ID,
                               Vote.payload(VoteKind.PRECOMMIT, 1, 0, block_hash))
    return [
        f"chain_id: {CHAIN_ID}",
        f"sender_seed: {SENDER_SEED.hex()}",
        f"sender_public_key: {sender.public_key.hex()}",
        f"sender_address: {compute_address(sender.public_key).hex()}",
        f"recipient_address: {recipient.address.hex()}",
        f"signing_bytes: {tx.signing_bytes.hex()}",
        f"signature: {tx.signatures[0].signature.hex()}",
        f"tx_encoded: {tx.encoded.hex()}",
        f"tx_hash: {tx.hash.hex()}",
        f"tx_root_of_this_tx: {compute_tx_root([tx]).hex()}",
        f"merkle_root_of_a_b_c: {merkle.compute_root([b'a', b'b', b'c']).hex()}",
        f"multisig_2_of_2_address: {multisig.hex()}",
        f"validator_public_key: {validator.public_key.hex()}",
        f"precommit_signing_bytes: {vote_bytes.hex()}",
        f"precommit_signature: {precommit.signature.hex()}",
    ]


if __name__ == "__main__":
    print("\n".join(compute_lines()))
