"""Tooling for the emergency path: a chain whose quorum is lost for good restarts from
its last final state under a new genesis that the operators agree on and sign off-chain.

export: read a stopped node's data directory, check its head against the head's
commit certificate, and write a new genesis embedding the whole state (app_state
.recovery) with the new validator set, plus an override file to collect signatures.
sign: an operator signs the new genesis hash with its validator key.
verify: recompute the snapshot's state root, compare it with the certified header of
the old chain, and list who signed. Procedure: docs/ledger.md, "Emergency path".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair, PublicKey, is_valid_signature, signing_bytes
from chain.genesis import Genesis
from chain.state_proof import compute_state_root
from chain.vote import Validator, ValidatorSet, validate_certificate
from ledger.execution import Ledger, default_modules
from node.config import NodeHome
from storage.chain_store import ChainStore

DOMAIN_GENESIS_OVERRIDE = "govchain/genesis-override/v1"
"""The domain of an operator's signature over a recovery genesis."""


class RecoveryError(ValueError):
    """The recovery cannot proceed as asked (printed as one line by the CLI)."""


@dataclass(frozen=True)
class Export:
    genesis: Genesis
    override: dict[str, Any]


def export_recovery(home_path: Path, chain_id: str, genesis_time_ms: int,
                    validators: list[Validator] | None = None) -> Export:
    """The recovery genesis from a stopped node's head state (its own final block)."""
    home = NodeHome.load(home_path)
    old = home.genesis
    if chain_id == old.chain_id:
        raise RecoveryError("give the recovered chain a new chain id, so that no signature "
                            "of the old chain can be replayed on it")
    store = ChainStore.open(str(home.data_dir), old)
    try:
        height = store.head_height
        header = store.get_block_header(height)
        certificate = store.get_certificate(height)
        if header is None or certificate is None:
            raise RecoveryError("the node has no final block to recover from")
        validate_certificate(certificate, store.get_validator_set(height), old.chain_id,
                             height=height, block_hash=header.hash)
        items = sorted(store.iterate_state(b""))
        ledger = Ledger(default_modules())
        state = dict(items)
        params = ledger.get_chain_params(state)
        last_set = ledger.get_validator_set(state)
    finally:
        store.close()
    if compute_state_root(items) != header.state_root:
        raise RecoveryError(f"the node's state does not match block {height}'s state root: "
                            "its data directory is damaged; use another operator's copy")
    if genesis_time_ms <= header.timestamp_ms:
        raise RecoveryError("the new genesis time must be after the last block's time")
    genesis = Genesis(
        chain_id=chain_id, genesis_time_ms=genesis_time_ms,
        validator_set=ValidatorSet(tuple(validators)) if validators else last_set,
        params=params,
        app_state={"recovery": {"chain_id": old.chain_id, "height": height,
                                "block_hash": header.hash.hex(),
                                "state_root": header.state_root.hex(),
                                "state": [[k.hex(), v.hex()] for k, v in items]}})
    override = {"genesis_hash": genesis.hash.hex(), "chain_id": chain_id,
                "old_chain_id": old.chain_id, "old_genesis_hash": old.hash.hex(),
                "height": height, "block_hash": header.hash.hex(), "signatures": []}
    return Export(genesis, override)


def get_override_message(override: dict[str, Any]) -> bytes:
    return signing_bytes(DOMAIN_GENESIS_OVERRIDE, override["chain_id"],
                         [override["genesis_hash"], override["old_chain_id"],
                          override["height"], override["block_hash"]])


def sign_override(override: dict[str, Any], key: KeyPair) -> dict[str, Any]:
    """`override` with `key`'s signature added (replacing an earlier one of it)."""
    signature = key.sign(get_override_message(override))
    others = [s for s in override["signatures"] if s["public_key"] != key.public_key.hex()]
    return {**override, "signatures": sorted(
        [*others, {"public_key": key.public_key.hex(), "signature": signature.hex()}],
        key=lambda s: str(s["public_key"]))}


def verify_override(genesis: Genesis, override: dict[str, Any],
                    old_home: Path | None = None) -> dict[str, Any]:
    """What the override proves: snapshot root, (optionally) the old chain's certified
    header, and which old and new validators signed. Raises RecoveryError if forged."""
    recovery = genesis.app_state.get("recovery")
    if not isinstance(recovery, dict) or genesis.hash.hex() != override["genesis_hash"]:
        raise RecoveryError("the override does not name this recovery genesis")
    items = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in recovery["state"]]
    if compute_state_root(items).hex() != recovery["state_root"]:
        raise RecoveryError("the embedded state does not hash to its claimed state root")
    message = get_override_message(override)
    signers = []
    for item in override["signatures"]:
        key = PublicKey(bytes.fromhex(item["public_key"]))
        if not is_valid_signature(key, message, bytes.fromhex(item["signature"])):
            raise RecoveryError(f"the signature of {item['public_key']} does not verify")
        signers.append(key)
    report: dict[str, Any] = {
        "height": recovery["height"], "state_root": recovery["state_root"],
        "new_validators_signed": [k.hex() for k in signers
                                  if genesis.validator_set.is_member(k)],
        "all_new_validators_signed": all(v.public_key in signers
                                         for v in genesis.validator_set.validators)}
    if old_home is not None:
        home = NodeHome.load(old_home)
        store = ChainStore.open(str(home.data_dir), home.genesis)
        try:
            header = store.get_block_header(int(recovery["height"]))
            old_set = store.get_validator_set(int(recovery["height"]) + 1)
        finally:
            store.close()
        if header is None or header.state_root.hex() != recovery["state_root"]:
            raise RecoveryError("the old chain's certified block at that height has another "
                                "state root")
        report["old_validators_signed"] = [k.hex() for k in signers if old_set.is_member(k)]
        report["old_quorum"] = old_set.quorum
    return report


def write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n")
