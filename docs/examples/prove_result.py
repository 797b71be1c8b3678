"""Inclusion paths, result leaves, a results root, a genesis hash and a key file, from
fixed inputs, with every intermediate printed.

The output is pasted in docs/protocol.md ("Worked example: proofs, genesis, key file")
and tests/chain/test_protocol_doc.py checks that the two agree and recomputes each
value from the written rules alone. Run from the repository root:

    PYTHONPATH=. python docs/examples/prove_result.py
"""

from __future__ import annotations

import json

import nacl.pwhash.argon2id as argon2id
import nacl.secret

from chain import codec, merkle
from chain.crypto import KeyPair
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.keyfile import KEYSTORE_FORMAT, KEYSTORE_VERSION
from chain.results import ResultLeaf, compute_result_proof, compute_results_root
from chain.tx import Transaction
from chain.vote import Validator, ValidatorSet

CHAIN_ID = "govchain-example"
SENDER_SEED = bytes([0x64]) * 32
RECIPIENT_SEED = bytes([0x65]) * 32
VALIDATOR_SEED = bytes([0x01]) * 32
LEAVES = [b"a", b"b", b"c", b"d", b"e"]
KEY_PASSPHRASE = b"correct horse battery staple"
KEY_SALT = bytes(range(16))
"""Fixed only for the example: a real key file takes a random salt and nonce."""
KEY_NONCE = bytes(range(24))


def compute_payments() -> tuple[Transaction, Transaction, list[list[object]]]:
    """The transfer of sign_transfer.py (nonce 0, succeeded) and the next one (nonce 1,
    refused because the sender's account is frozen), and the events of the first."""
    sender = KeyPair.from_seed(SENDER_SEED)
    recipient = KeyPair.from_seed(RECIPIENT_SEED)
    fields = {"to": recipient.address, "asset": "GOV", "amount": 250}
    paid = Transaction(CHAIN_ID, sender.address, 0, "transfer", fields).with_signature(sender)
    refused = Transaction(CHAIN_ID, sender.address, 1, "transfer",
                          fields).with_signature(sender)
    events: list[list[object]] = [["transferred", {"amount": 250, "asset": "GOV",
                                                   "from": sender.address,
                                                   "to": recipient.address}]]
    return paid, refused, events


def compute_genesis() -> Genesis:
    """A one-validator genesis whose app_state holds an address as a hex string."""
    validator = KeyPair.from_seed(VALIDATOR_SEED)
    sender = KeyPair.from_seed(SENDER_SEED)
    return Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=1_735_689_600_000,
        validator_set=ValidatorSet((Validator(validator.public_key, "ministry-of-finance"),)),
        accounts=(GenesisAccount(sender.address, {"GOV": 1000}),),
        params=ChainParams(),
        app_state={"roles": {"grants": [{"address": sender.address.hex(), "role": "writer",
                                         "scope": "licenses"}]}})


def compute_key_document() -> dict[str, object]:
    """The sealed key file of the sender's key (chain/keyfile.py's format), with the
    "test" cost and the fixed salt and nonce above."""
    key = KeyPair.from_seed(SENDER_SEED)
    opslimit, memlimit = argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN
    box_key = argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, KEY_PASSPHRASE, KEY_SALT,
                           opslimit=opslimit, memlimit=memlimit)
    sealed = nacl.secret.SecretBox(box_key).encrypt(key.seed, KEY_NONCE)
    return {
        "format": KEYSTORE_FORMAT, "version": KEYSTORE_VERSION,
        "public_key": key.public_key.hex(), "address": key.address.hex(),
        "kdf": {"name": "argon2id", "salt": KEY_SALT.hex(), "opslimit": opslimit,
                "memlimit": memlimit},
        "cipher": {"name": "xsalsa20poly1305", "sealed": bytes(sealed).hex()},
    }


def compute_lines() -> list[str]:
    """The example's output, one "name: value" line each."""
    paid, refused, events = compute_payments()
    results = [ResultLeaf.of(paid.hash, "ok", events),
               ResultLeaf.of(refused.hash, "account_frozen", [])]
    genesis = compute_genesis()
    return [
        "merkle_leaves: " + ",".join(leaf.decode() for leaf in LEAVES),
        f"merkle_root_of_a_to_e: {merkle.compute_root(LEAVES).hex()}",
        "merkle_path_of_c: " + ",".join(p.hex() for p in merkle.compute_proof(LEAVES, 2)),
        "merkle_path_of_e: " + ",".join(p.hex() for p in merkle.compute_proof(LEAVES, 4)),
        f"paid_tx_hash: {paid.hash.hex()}",
        f"refused_tx_hash: {refused.hash.hex()}",
        f"paid_events: {codec.encode(events).hex()}",
        f"paid_events_hash: {results[0].events_hash.hex()}",
        f"paid_result_leaf: {results[0].encoded.hex()}",
        f"refused_result_leaf: {results[1].encoded.hex()}",
        f"results_root: {compute_results_root(results).hex()}",
        "refused_result_path: " + ",".join(p.hex() for p in compute_result_proof(results, 1)),
        f"genesis_encoded: {codec.encode(genesis.to_value()).hex()}",
        f"genesis_hash: {genesis.hash.hex()}",
        f"key_file: {json.dumps(compute_key_document(), sort_keys=True)}",
    ]


if __name__ == "__main__":
    print("\n".join(compute_lines()))
