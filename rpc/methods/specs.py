"""The MethodSpec (params, result, errors) of each public method in node/api.py.

Kept beside the methods' registration so that rpc_discover, docs and the schema-driven
fuzz test read one description. Changing a method's params means changing its spec.
"""

from __future__ import annotations

from rpc.dispatcher import BUSY, NOT_FOUND, TOO_LARGE, TX_REJECTED
from rpc.openrpc import (
    ADDRESS,
    ANY_OBJECT,
    HASH,
    HEIGHT,
    HEX,
    NONCE,
    MethodSpec,
    Param,
    array,
    nullable,
    obj,
)

EVENT = obj({"kind": {"type": "string"}, "attributes": ANY_OBJECT}, ["kind", "attributes"])

TX_STATUS = {
    "type": "object",
    "description": "pending (waiting_for says why, or null when ready), final (height, "
                   "index, code ok, events), rejected (code, message, where: admission, "
                   "eviction, expiry or execution), pruned (pruned_below: this node keeps "
                   "no older blocks) or unknown",
    "properties": {
        "hash": HASH,
        "status": {"enum": ["pending", "final", "rejected", "pruned", "unknown"]},
        "waiting_for": nullable({"type": "string"}),
        "height": HEIGHT, "index": NONCE,
        "code": {"type": "string"}, "message": {"type": "string"},
        "where": {"enum": ["admission", "eviction", "expiry", "execution"]},
        "events": array(EVENT),
        "pruned_below": HEIGHT,
    },
    "required": ["hash", "status"],
}

SIGNATURE = obj({"public_key": HEX, "signature": HEX})
CERTIFICATE = nullable(obj({"height": HEIGHT, "round": NONCE, "block_hash": HASH,
                            "signatures": array(obj({"validator": HEX, "signature": HEX})),
                            "encoded": HEX}))
BLOCK = obj({
    "hash": HASH, "height": HEIGHT, "round": NONCE, "timestamp_ms": NONCE, "prev_hash": HASH,
    "proposer": HEX, "tx_root": HASH, "results_root": HASH, "state_root": HASH,
    "validator_set_hash": HASH,
    "next_validator_set_hash": HASH, "header": HEX,
    "txs": {"type": "array", "description": "tx hashes, or whole txs when full is true"},
    "certificate": CERTIFICATE,
}, ["hash", "height", "header", "txs", "certificate"])

NODE_STATUS = MethodSpec(
    params=(),
    result=obj({"chain_id": {"type": "string"}, "genesis_hash": HASH, "height": NONCE,
                "head_hash": HASH, "head_time_ms": NONCE, "finalized_height": NONCE,
                "base_height": NONCE, "consensus": ANY_OBJECT, "node_id": HEX,
                "moniker": {"type": "string"},
                "is_validator": {"type": "boolean"}, "validator_key": nullable(HEX),
                "peers": NONCE, "mempool_size": NONCE, "version": {"type": "string"},
                "upgrade": nullable(ANY_OBJECT), "halted": nullable({"type": "string"})},
               ["chain_id", "height", "finalized_height"]),
    tags=("node",))

TX_SUBMIT = MethodSpec(
    params=(Param("tx", HEX, "the signed transaction, canonical msgpack as hex", True),
            Param("wait", {"enum": ["final"]},
                  'absent: answer once admitted; "final": answer once final or rejected'),
            Param("timeout_s", {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
                  "how long wait=final may take (default 30); then the status is pending")),
    result=TX_STATUS, errors=(TX_REJECTED, BUSY),
    description="Admits a transaction to the mempool and relays it. Submitting the same "
                "transaction again is harmless and answers its current status.",
    tags=("tx",))

TX_SUBMIT_BATCH = MethodSpec(
    params=(Param("txs", array(HEX), "signed transactions as hex", True),),
    result=array({"oneOf": [obj({"hash": HASH, "status": {"enum": ["pending"]}}),
                            obj({"error": ANY_OBJECT})]}),
    errors=(TOO_LARGE,),
    description="One answer per transaction, in order: {hash, status} or {hash?, error}.",
    tags=("tx",))

TX_GET = MethodSpec(
    params=(Param("hash", HASH, "the transaction hash", True),),
    result=TX_STATUS, tags=("tx",))

TX_PROOF = MethodSpec(
    params=(Param("hash", HASH, "the transaction hash", True),),
    result=obj({"hash": HASH, "height": HEIGHT, "index": NONCE, "tx_count": NONCE, "tx": HEX,
                "path": array(HASH),
                "result": obj({"code": {"type": "string"}, "message": {"type": "string"},
                               "events": HEX, "leaf": HEX, "path": array(HASH)},
                              ["code", "message", "events", "leaf", "path"])},
               ["hash", "height", "index", "tx_count", "tx", "path", "result"]),
    errors=(NOT_FOUND,),
    description="The exact transaction bytes (they hash to `hash`), its position in the "
                "block and the RFC 9162 audit path to the tx_root of the header at "
                "`height` (docs/protocol.md section 6); and its result: the result leaf "
                "(tx hash, code, events hash) with its audit path, at the same index, to "
                "the header's results_root, the canonical events whose hash the leaf "
                "holds, and the message, which is not committed (section 6.2). Inclusion "
                "alone says nothing of the outcome: a refused transaction is in its block "
                "too, with its refusal code in its result leaf.",
    tags=("tx",))

CHAIN_BLOCK = MethodSpec(
    params=(Param("height", HEIGHT, "height of the block (default: the latest)"),
            Param("hash", HASH, "hash of the block (instead of height)"),
            Param("full", {"type": "boolean"}, "whole transactions instead of hashes")),
    result=BLOCK, errors=(NOT_FOUND,), tags=("chain",))

CHAIN_VALIDATORS = MethodSpec(
    params=(Param("height", HEIGHT, "the height certified (default: the next one)"),),
    result=obj({"height": HEIGHT, "hash": HASH, "quorum": NONCE, "max_faulty": NONCE,
                "validators": array(obj({"public_key": HEX, "name": {"type": "string"}}))},
               ["height", "hash", "quorum", "validators"]),
    tags=("chain",))

CHAIN_VALIDATOR_CHANGES = MethodSpec(
    params=(Param("after_height", NONCE, "list changes taking effect above this height "
                  "(default 0: from genesis)"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 256},
                  "at most this many changes (default and most: 256)")),
    result=obj({"changes": array(obj({
        "from_height": HEIGHT, "hash": HASH,
        "validators": array(obj({"public_key": HEX, "name": {"type": "string"}})),
        "certified_by": obj({"height": HEIGHT, "header": HEX, "certificate": HEX},
                            ["height", "header", "certificate"])},
        ["from_height", "hash", "validators", "certified_by"])),
        "more": {"type": "boolean"}}, ["changes", "more"]),
    errors=(NOT_FOUND,),
    description="A light client's checkpoints: the header of height from_height - 1 names "
                "the new set's hash as next_validator_set_hash and is certified by the set "
                "before. more: true when the limit cut the list; ask again after the last "
                "from_height.",
    tags=("chain",))

CHAIN_EVIDENCE = MethodSpec(params=(), result=array({}), tags=("chain",))

STATE_ACCOUNT = MethodSpec(
    params=(Param("address", ADDRESS, "the account address", True),),
    result=obj({"address": ADDRESS, "nonce": NONCE, "next_nonce": NONCE, "pending": NONCE,
                "balances": {"type": "object", "additionalProperties": NONCE}},
               ["address", "nonce", "next_nonce", "balances"]),
    errors=(NOT_FOUND,),
    description="nonce counts executed transactions; next_nonce also counts this node's "
                "pending ones without a gap: use it for the next transaction.",
    tags=("state",))

STATE_PROOF = MethodSpec(
    params=(Param("key", HEX, "a raw state key (e.g. ledger.keys.get_account_key)", True),),
    result=obj({"height": NONCE, "key": HEX, "value": nullable(HEX), "proof": ANY_OBJECT},
               ["height", "key", "value", "proof"]),
    description="The value of a state key at the head and a proof against the state root "
                "of the head block's header; verify it with sdk.proof.",
    tags=("state",))

RPC_DISCOVER = MethodSpec(params=(), result=ANY_OBJECT,
                          description="This OpenRPC document.", tags=("rpc",))


# ---------------------------------------------------------------- ledger reads (api_ledger)

NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,32}$"}
RECORD_KEY = {"type": "string", "minLength": 1, "maxLength": 128}
START = {"type": "integer", "minimum": 0}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}

STATE_ASSET = MethodSpec(
    params=(Param("asset", NAME, "the asset symbol, e.g. KGS", True),
            Param("holder", ADDRESS, "an account whose balance and freeze state to add")),
    result=ANY_OBJECT, errors=(NOT_FOUND,),
    description="Supply, attested reserve, decimals, roles and the latest attestation of "
                "an asset (docs/ledger.md).", tags=("ledger",))
STATE_ASSETS = MethodSpec(
    params=(),
    result=obj({"assets": array(obj({"symbol": {"type": "string"}, "name": {"type": "string"},
                                     "decimals": NONCE, "reserve_backed": {"type": "boolean"},
                                     "supply": NONCE, "reserve": NONCE, "attestations": NONCE,
                                     "created_height": NONCE})),
                "height": NONCE}, ["assets", "height"]),
    description="Every asset's record, by symbol (at most 1000): what state_asset answers "
                "without the role holders and the latest attestation.", tags=("ledger",))
STATE_ATTESTATIONS = MethodSpec(
    params=(Param("asset", NAME, "the asset symbol", True),
            Param("start", START, "index of the first attestation (default 0)"),
            Param("limit", LIMIT, "most attestations to return (default 100)")),
    result=obj({"asset": {"type": "string"}, "attestations": {"type": "array"}},
               ["asset", "attestations"]),
    errors=(NOT_FOUND,), tags=("ledger",))
STATE_RECORD = MethodSpec(
    params=(Param("namespace", NAME, "the registry namespace", True),
            Param("key", RECORD_KEY, "the record key", True),
            Param("proof", {"type": "boolean"},
                  "add a state proof, the head header and its commit certificate")),
    result=obj({"namespace": {"type": "string"}, "key": {"type": "string"}, "height": NONCE,
                "record": ANY_OBJECT, "state_key": HEX, "value": HEX, "proof": ANY_OBJECT},
               ["namespace", "key", "height", "record"]),
    errors=(NOT_FOUND,),
    description="Verify the proof without trusting the node: `govchain verify-record` or "
                "sdk.ledger.verify_record.", tags=("ledger",))
STATE_RECORD_HISTORY = MethodSpec(
    params=(Param("namespace", NAME, "the registry namespace", True),
            Param("key", RECORD_KEY, "the record key", True),
            Param("start", {"type": "integer", "minimum": 1}, "first version (default 1)"),
            Param("limit", LIMIT, "most versions to return (default 100)")),
    result=obj({"namespace": {"type": "string"}, "key": {"type": "string"},
                "versions": {"type": "array"}}, ["namespace", "key", "versions"]),
    errors=(NOT_FOUND,), tags=("ledger",))
STATE_NAMESPACE = MethodSpec(
    params=(Param("namespace", NAME, "the registry namespace", True),),
    result=ANY_OBJECT, errors=(NOT_FOUND,), tags=("ledger",))
STATE_PROPOSAL = MethodSpec(
    params=(Param("id", {"type": "integer", "minimum": 1}, "the proposal id", True),),
    result=ANY_OBJECT, errors=(NOT_FOUND,), tags=("ledger",))
STATE_UPGRADE = MethodSpec(
    params=(Param("name", {"type": "string", "maxLength": 48},
                  "an upgrade plan's name (default: none, only the summary)"),),
    result=obj({"pending": nullable(ANY_OBJECT), "last_applied": nullable(ANY_OBJECT),
                "plan": nullable(ANY_OBJECT), "implemented": {"type": "array"},
                "params": ANY_OBJECT},
               ["pending", "last_applied", "implemented", "params"]),
    errors=(NOT_FOUND,), tags=("ledger",))
STATE_PROPOSALS = MethodSpec(
    params=(Param("status", {"enum": ["open", "passed", "failed", "expired"]},
                  "only proposals in this state"),
            Param("start", START, "the newest proposal id to consider (default: the last)"),
            Param("limit", LIMIT, "most proposals to return (default 100)")),
    result=obj({"count": NONCE, "proposals": {"type": "array"}}, ["count", "proposals"]),
    tags=("ledger",))
STATE_ROLES = MethodSpec(
    params=(Param("address", ADDRESS, "list this account's roles"),
            Param("role", {"type": "string"}, "or: list the holders of this role"),
            Param("scope", {"type": "string"}, "the role's scope (an asset or a namespace)")),
    result=ANY_OBJECT, tags=("ledger",))
