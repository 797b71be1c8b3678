"""The genesis document: the chain's identity, first validators, funds and parameters.

Loaded from JSON; its hash (over the canonical encoding of its contents) names the
chain's history, is the parent hash of block 1, and is checked in every p2p
handshake and on every start of a node's data directory.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chain import codec
from chain.crypto import ADDRESS_SIZE, PUBLIC_KEY_SIZE, Address, Hash32, PublicKey, compute_hash
from chain.errors import InvalidGenesisError
from chain.vote import Validator, ValidatorSet


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Parameters every node must agree on; changed only by governance."""

    block_interval_ms: int = 200
    """Minimum time between blocks when transactions wait."""
    empty_block_interval_ms: int = 5000
    """Time between blocks when no transaction waits."""
    max_block_txs: int = 10000
    """Most transactions in one block."""
    max_block_bytes: int = 8 * 1024 * 1024
    """Largest encoded block."""
    max_tx_bytes: int = 16 * 1024
    """Largest encoded transaction."""
    timeout_propose_ms: int = 1000
    """How long to wait for a proposal in round 0."""
    timeout_vote_ms: int = 500
    """How long to wait after a quorum of any prevotes or precommits in round 0."""
    timeout_delta_ms: int = 500
    """Added to each timeout per round."""
    timeout_max_ms: int = 10000
    """Cap on any timeout, however high the round."""
    clock_skew_ms: int = 5000
    """How far ahead of the local clock a proposal's timestamp may be."""

    def to_value(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> ChainParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise InvalidGenesisError(f"unknown chain parameter {sorted(unknown)[0]!r}")
        for key, item in value.items():
            if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
                raise InvalidGenesisError(f"chain parameter {key!r} must be a positive integer")
        return cls(**value)


@dataclass(frozen=True)
class GenesisAccount:
    """An account funded at genesis."""

    address: Address
    """The account's 20-byte address."""
    balances: dict[str, int]
    """Asset symbol to amount, in the asset's smallest unit."""

    @classmethod
    def from_json_value(cls, item: Any) -> GenesisAccount:
        """One entry of genesis.json's "accounts": {"address": hex, "balances": {...}}."""
        try:
            address = bytes.fromhex(item["address"])
            balances = dict(item.get("balances", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidGenesisError(f"account {item!r} is not "
                                      '{"address": hex, "balances": {...}}') from e
        if len(address) != ADDRESS_SIZE:
            raise InvalidGenesisError(f"account address {item['address']!r} is not 20 bytes")
        for symbol, amount in balances.items():
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise InvalidGenesisError(f"balance of {symbol} must be a whole number >= 0")
        return cls(Address(address), balances)


@dataclass(frozen=True)
class Genesis:
    """Everything a node needs to start the chain at height 0."""

    chain_id: str
    """The chain's name; every signature is bound to it."""
    genesis_time_ms: int
    """Milliseconds since the Unix epoch; block 1 must be later."""
    validator_set: ValidatorSet
    """The first validators, in proposer rotation order."""
    accounts: tuple[GenesisAccount, ...] = ()
    """Funded accounts."""
    params: ChainParams = field(default_factory=ChainParams)
    """Chain parameters."""
    app_state: dict[str, Any] = field(default_factory=dict)
    """Initial state of ledger modules beyond balances (roles, assets, registries)."""

    def to_value(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": self.validator_set.to_value(),
            "accounts": [[a.address, a.balances] for a in self.accounts],
            "params": self.params.to_value(),
            "app_state": self.app_state,
        }

    @cached_property
    def hash(self) -> Hash32:
        return compute_hash(codec.encode(self.to_value()))

    def to_json(self) -> str:
        doc = {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [{"name": v.name, "public_key": v.public_key.hex()}
                           for v in self.validator_set.validators],
            "accounts": [{"address": a.address.hex(), "balances": a.balances}
                         for a in self.accounts],
            "params": self.params.to_value(),
            "app_state": self.app_state,
        }
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Genesis:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidGenesisError(f"genesis is not valid JSON: {e}") from e
        if not isinstance(doc, dict):
            raise InvalidGenesisError("genesis must be a JSON object")
        try:
            return cls._from_doc(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidGenesisError(f"genesis is incomplete or has a bad value: {e!r}") from e

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Genesis:
        known = {"chain_id", "genesis_time_ms", "validators", "accounts", "params", "app_state"}
        unknown = set(doc) - known
        if unknown:
            raise InvalidGenesisError(f"unknown genesis field {sorted(unknown)[0]!r}")
        chain_id = doc["chain_id"]
        if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
            raise InvalidGenesisError("chain_id must be text of 1 to 64 characters")
        validators = []
        for item in doc["validators"]:
            key = bytes.fromhex(item["public_key"])
            if len(key) != PUBLIC_KEY_SIZE:
                raise InvalidGenesisError(f"validator key {item['public_key']!r} is not 32 bytes")
            validators.append(Validator(PublicKey(key), str(item.get("name", ""))))
        accounts = [GenesisAccount.from_json_value(item) for item in doc.get("accounts", [])]
        app_state = doc.get("app_state", {})
        codec.encode(app_state)  # refuses floats and other non-canonical values
        return cls(
            chain_id=chain_id,
            genesis_time_ms=int(doc["genesis_time_ms"]),
            validator_set=ValidatorSet(tuple(validators)),
            accounts=tuple(accounts),
            params=ChainParams.from_value(dict(doc.get("params", {}))),
            app_state=app_state,
        )
