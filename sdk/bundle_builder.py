"""Making proof bundles: what `govchain proof` asks a node for, and how it is laid out.

The builders fetch the validator-set changes (`chain_validator_changes`), the block and
the proofs from a node, and trust none of it: a bundle is checked with
sdk.bundle.verify_bundle before it is handed on (the CLI does). No check lives here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from chain import codec
from chain.genesis import Genesis
from chain.vote import CommitCertificate
from ledger.keys import get_account_key, get_asset_key, get_balance_key, get_record_key
from sdk.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, Checkpoint

STATE_PROOF_ATTEMPTS = 20
"""Reads of several state proofs retried until all come from one head height."""


class BundleSourceError(Exception):
    """Raised when the node's answers cannot make a bundle (unknown record, pruned block)."""


def _trimmed(cert_hex: str, quorum: int) -> str:
    """The certificate with only its first `quorum` signatures: still a valid quorum,
    and a quarter fewer signatures to check per set change on a 4-validator chain."""
    cert = CommitCertificate.decode(bytes.fromhex(cert_hex))
    return CommitCertificate(cert.height, cert.round, cert.block_hash,
                             cert.signatures[:quorum]).encoded.hex()


def _set_json(from_height: int, vset_doc: dict[str, Any],
              certified_by: dict[str, Any] | None) -> dict[str, Any]:
    return {"from_height": from_height, "hash": vset_doc["hash"],
            "validators": [{"public_key": v["public_key"], "name": v["name"]}
                           for v in vset_doc["validators"]],
            "certified_by": certified_by}


def fetch_set_chain(client: Any, genesis: Genesis, height: int,
                    checkpoint: Checkpoint | None = None
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(checkpoint section, validator_sets) for a block at `height`, from the node's
    chain_validator_changes, one request per 256 changes."""
    if checkpoint is None:
        first = {"hash": genesis.validator_set.hash.hex(),
                 "validators": [{"public_key": v.public_key.hex(), "name": v.name}
                                for v in genesis.validator_set.validators]}
        sets, after, section = [_set_json(1, first, None)], 0, None
    else:
        if checkpoint.height >= height:
            raise BundleSourceError(f"the checkpoint {checkpoint.height} is not below the "
                                    f"block {height} to prove")
        block = client.call("chain_block", height=checkpoint.height)
        section = {"height": checkpoint.height, "header": block["header"]}
        first = client.call("chain_validators", height=checkpoint.height + 1)
        sets, after = [_set_json(checkpoint.height + 1, first, None)], checkpoint.height + 1
    quorum = 2 * len(sets[0]["validators"]) // 3 + 1
    while True:
        page = client.call("chain_validator_changes", after_height=after)
        for change in page["changes"]:
            if change["from_height"] > height:
                return section, sets
            by = dict(change["certified_by"])
            by["certificate"] = _trimmed(by["certificate"], quorum)
            sets.append(_set_json(change["from_height"], change, by))
            quorum = 2 * len(change["validators"]) // 3 + 1
            after = change["from_height"]
        if not page["more"]:
            return section, sets


def _assemble(client: Any, genesis: Genesis, kind: str, height: int, proof: Any,
              reported: Any, checkpoint: Checkpoint | None) -> dict[str, Any]:
    section, sets = fetch_set_chain(client, genesis, height, checkpoint)
    block = client.call("chain_block", height=height)
    certificate = (block.get("certificate") or {}).get("encoded")
    if certificate is None:
        raise BundleSourceError(f"the node has no certificate for block {height}")
    return {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "kind": kind,
            "chain_id": genesis.chain_id, "genesis_hash": genesis.hash.hex(),
            "checkpoint": section, "validator_sets": sets,
            "block": {"height": height, "header": block["header"], "certificate": certificate},
            "proof": proof, "reported": reported}


def _state_proofs(client: Any, keys_of: Callable[[dict[bytes, Any]], list[bytes]]
                  ) -> tuple[int, list[dict[str, Any]]]:
    """State proofs of the keys `keys_of` names (given the values read so far), all at one
    head height: read again when a block lands between two reads."""
    for _ in range(STATE_PROOF_ATTEMPTS):
        answers: dict[bytes, dict[str, Any]] = {}
        pending = keys_of({})
        while pending:
            for key in pending:
                answers[key] = client.call("state_proof", key=key.hex())
            values = {k: None if a["value"] is None else codec.decode(bytes.fromhex(a["value"]))
                      for k, a in answers.items()}
            pending = [k for k in keys_of(values) if k not in answers]
        heights = {a["height"] for a in answers.values()}
        if len(heights) == 1:
            items = [{"key": a["key"], "value": a["value"], "state_proof": a["proof"]}
                     for a in answers.values()]
            return heights.pop(), items
    raise BundleSourceError("the node's head moved during every attempt to read the proofs")


def build_record_bundle(client: Any, genesis: Genesis, namespace: str, key: str, *,
                        checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """A bundle proving the current version of record `namespace/key` (or its absence)."""
    if "/" in namespace or not namespace or not key:
        raise BundleSourceError(f"{namespace}/{key} is not a record name (NAMESPACE/KEY)")
    state_key = get_record_key(namespace, key)
    height, items = _state_proofs(client, lambda values: [state_key])
    proof = {"namespace": namespace, "key": key, "value": items[0]["value"],
             "state_proof": items[0]["state_proof"]}
    return _assemble(client, genesis, "record", height, proof, None, checkpoint)


def build_account_bundle(client: Any, genesis: Genesis, address: bytes, *,
                         assets: Sequence[str] | None = None,
                         checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """A bundle proving an account's nonce and its balances (of `assets`, default all)."""
    account_key = get_account_key(address)

    def keys_of(values: dict[bytes, Any]) -> list[bytes]:
        if assets is not None:
            symbols = list(assets)
        elif account_key not in values:
            return [account_key]
        else:
            symbols = list((values[account_key] or {}).get("assets", ()))
        return [account_key, *(k for s in symbols
                               for k in (get_balance_key(address, s), get_asset_key(s)))]
    height, items = _state_proofs(client, keys_of)
    proof: dict[str, Any] = {"address": address.hex(), "entries": items}
    if assets is not None:
        proof["assets"] = list(assets)
    return _assemble(client, genesis, "account", height, proof, None, checkpoint)


def build_payment_bundle(client: Any, genesis: Genesis, tx_hash: bytes, *,
                         checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """A bundle proving that transaction `tx_hash` is in a final block, with its result
    proven when the node's tx_proof carries one (headers with a results root)."""
    answer = dict(client.call("tx_proof", hash=tx_hash.hex()))
    status = client.call("tx_get", hash=tx_hash.hex())
    proof = {name: answer[name] for name in ("hash", "height", "index", "tx_count", "tx",
                                             "path")}
    result = answer.get("result")
    if isinstance(result, dict) and "leaf" in result and "path" in result:
        proof["result"] = {"leaf": result["leaf"], "path": list(result["path"])}
    reported = {"status": status.get("status"), "code": status.get("code"),
                "message": status.get("message")}
    return _assemble(client, genesis, "tx", int(answer["height"]), proof, reported,
                     checkpoint)


def encode_bundle(bundle: dict[str, Any]) -> bytes:
    """The bundle as a file: JSON, two-space indented, one trailing newline."""
    return (json.dumps(bundle, indent=2) + "\n").encode()
