"""SDK for the government ledger: build and co-sign transactions, and verify records.

`LightClient` follows the chain from genesis without trusting the node: each header
must link to the previous one and carry a commit certificate by a quorum of the
validator set in force, and a set change is accepted only as the set whose hash the
previous certified header named. `verify_record` then checks a record's state proof
against the state root of a header verified that way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain import codec
from chain.block import BlockHeader
from chain.crypto import Address, Hash32, KeyPair, PublicKey
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.state_proof import StateProof, verify_state_proof
from chain.tx import Transaction
from chain.vote import CommitCertificate, Validator, ValidatorSet, validate_certificate
from ledger.keys import get_record_key
from sdk import Client


class VerificationError(Exception):
    """The node's answer does not prove what it claims: do not trust it."""


def build_tx(client: Client, key: KeyPair, tx_type: str, fields: dict[str, Any], *,
             sender: bytes | None = None, nonce: int | None = None,
             chain_id: str | None = None) -> Transaction:
    """A transaction signed by `key`; for a multisig `sender`, the first of M signatures."""
    address = Address(sender or key.address)
    chain_id = chain_id or client.status()["chain_id"]
    if nonce is None:
        nonce = client.next_nonce(address)
    return Transaction(chain_id, address, nonce, tx_type, fields).with_signature(key)


def add_signature(tx: Transaction, key: KeyPair) -> Transaction:
    """Co-sign `tx` offline (a multisig member adds its signature)."""
    return tx.with_signature(key)


@dataclass
class LightClient:
    """The verified tip of a chain: its last header hash and the set certifying the next."""

    genesis: Genesis
    fetch_block: Callable[[int], dict[str, Any]]
    """Returns the node's chain_block answer for a height (untrusted)."""
    fetch_validators: Callable[[int], dict[str, Any]]
    """Returns the node's chain_validators answer for a height (untrusted)."""
    height: int = 0
    last_hash: Hash32 | None = None
    validator_set: ValidatorSet | None = None
    headers: dict[int, BlockHeader] | None = None

    @classmethod
    def over_client(cls, genesis: Genesis, client: Client) -> LightClient:
        return cls(genesis, lambda h: dict(client.call("chain_block", height=h)),
                   lambda h: dict(client.call("chain_validators", height=h)))

    def __post_init__(self) -> None:
        self.last_hash = self.genesis.hash
        self.validator_set = self.genesis.validator_set
        self.headers = {}

    def sync_to(self, height: int) -> BlockHeader:
        """Verify every header up to `height`; return the verified header at `height`."""
        assert self.headers is not None
        while self.height < height:
            self._verify_next()
        header = self.headers.get(height)
        if header is None:
            raise VerificationError(f"height {height} was verified earlier and not kept")
        return header

    def _verify_next(self) -> None:
        assert self.validator_set is not None and self.headers is not None
        h = self.height + 1
        doc = self.fetch_block(h)
        try:
            header = BlockHeader.decode(bytes.fromhex(doc["header"]))
            certificate = CommitCertificate.decode(bytes.fromhex(doc["certificate"]["encoded"]))
            validate_certificate(certificate, self.validator_set, self.genesis.chain_id,
                                 height=h, block_hash=header.hash)
        except (ChainError, KeyError, TypeError, ValueError) as e:
            raise VerificationError(f"block {h}: {getattr(e, 'message', e)}") from e
        if header.height != h or header.prev_hash != self.last_hash:
            raise VerificationError(f"block {h} does not link to the verified block {h - 1}")
        if header.chain_id != self.genesis.chain_id:
            raise VerificationError(f"block {h} is for chain {header.chain_id!r}")
        if header.validator_set_hash != self.validator_set.hash:
            raise VerificationError(f"block {h} names another validator set than in force")
        if header.next_validator_set_hash != self.validator_set.hash:
            self.validator_set = self._fetch_set(h + 1, header.next_validator_set_hash)
        self.headers = {h: header}  # keep only the tip: memory stays flat on long chains
        self.height, self.last_hash = h, header.hash

    def _fetch_set(self, height: int, expected: Hash32) -> ValidatorSet:
        doc = self.fetch_validators(height)
        try:
            vset = ValidatorSet(tuple(Validator(PublicKey(bytes.fromhex(v["public_key"])),
                                                str(v.get("name", "")))
                                      for v in doc["validators"]))
        except (KeyError, TypeError, ValueError) as e:
            raise VerificationError(f"validator set of height {height}: {e}") from e
        if vset.hash != expected:
            raise VerificationError(
                f"the node's validator set for height {height} is not the one the certified "
                f"header {height - 1} names")
        return vset


def verify_record_answer(answer: dict[str, Any], header: BlockHeader) -> dict[str, Any]:
    """Check a state_record answer (with proof) against a verified header; return the record."""
    proof_doc = answer.get("proof")
    if not proof_doc:
        raise VerificationError("the answer carries no proof (ask with proof=true)")
    try:
        claimed = BlockHeader.decode(bytes.fromhex(proof_doc["header"]))
        proof = StateProof.from_json(proof_doc["state_proof"])
        value = bytes.fromhex(answer["value"])
        record = codec.decode(value)
    except (ChainError, KeyError, TypeError, ValueError) as e:
        raise VerificationError(f"the answer is malformed: {getattr(e, 'message', e)}") from e
    if claimed.hash != header.hash:
        raise VerificationError("the proof's header is not the verified header of its height")
    state_key = get_record_key(answer["namespace"], answer["key"])
    if not verify_state_proof(proof, state_key, value, header.state_root):
        raise VerificationError("the state proof does not match the certified state root")
    if not isinstance(record, dict) or (record.get("namespace"), record.get("key")) != (
            answer["namespace"], answer["key"]):
        raise VerificationError("the proven value is not the record asked for")
    return record


def verify_record(client: Client, genesis: Genesis, namespace: str, key: str, *,
                  light: LightClient | None = None) -> tuple[dict[str, Any], int]:
    """Fetch a record with its proof and verify it from genesis; return (record, height)."""
    answer = client.call("state_record", namespace=namespace, key=key, proof=True)
    height = int(answer["height"])
    light = light or LightClient.over_client(genesis, client)
    if light.height > height:
        raise VerificationError(f"the node answers for height {height}, behind the verified "
                                f"height {light.height}")
    header = light.sync_to(height)
    return verify_record_answer(answer, header), height
