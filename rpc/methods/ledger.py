"""The RPC reads of the government ledger: assets, attestations, records with proofs,
namespaces, proposals and roles (documented in docs/ledger.md).

Each method reads the committed state through the ledger modules' read functions and
answers plain JSON (bytes as hex). Nothing here writes state. A record proof carries
the head header and its commit certificate so a client can check it against the
genesis and the validator-set changes alone (sdk.ledger.verify_record).
"""

from __future__ import annotations

from typing import Any

from chain import codec
from chain.crypto import compute_address
from chain.state_proof import verify_state_proof
from ledger.assets import AssetRecord, get_asset_info, get_attestations, get_holder_info
from ledger.errors import LedgerError
from ledger.fields import is_valid_asset
from ledger.governance import get_proposal_count, get_proposal_info
from ledger.keys import ASSET_PREFIX, LAST_UPGRADE_KEY, get_record_key
from ledger.multisig import get_multisig_info
from ledger.private import get_erasure
from ledger.registry import (
    RECORD_KEY_PATTERN,
    get_namespace_info,
    get_record,
    get_record_history,
)
from ledger.roles import get_account_roles, get_role_holders
from ledger.state import get_value
from ledger.upgrades import UPGRADE_NAME_PATTERN, get_pending_upgrade, get_upgrade_plan
from node.node import Node
from rpc.dispatcher import NOT_FOUND, RpcDispatcher, RpcError, invalid_params
from rpc.methods import specs
from rpc.methods.private import describe_erasure
from rpc.methods.stablecoin import register_stablecoin_methods
from rpc.params import parse_hex, parse_int, to_json

MAX_LIST = 1000


def register_ledger_methods(dispatcher: RpcDispatcher, node: Node) -> None:
    """Add the ledger reads to `dispatcher` (called once from NodeApi.register)."""
    api = LedgerApi(node)
    r = dispatcher.register
    r("state_asset", api.state_asset, ("asset", "holder"),
      "An asset: supply, reserve, roles, latest attestation; a holder's balance",
      spec=specs.STATE_ASSET)
    r("state_assets", api.state_assets, (), "Every asset: symbol, name, decimals, supply, reserve",
      spec=specs.STATE_ASSETS)
    r("state_attestations", api.state_attestations, ("asset", "start", "limit"),
      "Reserve attestations of an asset, oldest first", spec=specs.STATE_ATTESTATIONS)
    r("state_record", api.state_record, ("namespace", "key", "proof"),
      "A registry record's current version; with proof: state proof, header, certificate",
      spec=specs.STATE_RECORD)
    r("state_record_history", api.state_record_history, ("namespace", "key", "start", "limit"),
      "Every version of a registry record, oldest first", spec=specs.STATE_RECORD_HISTORY)
    r("state_namespace", api.state_namespace, ("namespace",),
      "A registry namespace: limits, record count, writers", spec=specs.STATE_NAMESPACE)
    r("state_proposal", api.state_proposal, ("id",), "A governance proposal",
      spec=specs.STATE_PROPOSAL)
    r("state_proposals", api.state_proposals, ("status", "start", "limit"),
      "Governance proposals, newest first", spec=specs.STATE_PROPOSALS)
    r("state_upgrade", api.state_upgrade, ("name",),
      "Upgrade plans, the upgrades this node implements, the chain parameters in force",
      spec=specs.STATE_UPGRADE)
    r("state_roles", api.state_roles, ("address", "role", "scope"),
      "The roles of an account, or the holders of a role in a scope", spec=specs.STATE_ROLES)
    register_stablecoin_methods(dispatcher, node)  # state_supply_report, state_tiers...


def _parse_name(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not is_valid_asset(value):
        raise invalid_params(f"{name} must be 1 to 32 letters, digits, '.', '_' or '-'")
    assert isinstance(value, str)
    return value


def _parse_record_key(params: dict[str, Any]) -> str:
    value = params.get("key")
    if not isinstance(value, str) or RECORD_KEY_PATTERN.fullmatch(value) is None:
        raise invalid_params(f"key must match {RECORD_KEY_PATTERN.pattern}")
    return value


def _not_found(error: LedgerError) -> RpcError:
    return RpcError(NOT_FOUND, error.code, error.message)


class LedgerApi:
    """The ledger read methods over one Node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def state_asset(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = _parse_name(params, "asset")
        try:
            info = get_asset_info(self.node.state, symbol)
        except LedgerError as e:
            raise _not_found(e) from e
        if params.get("holder") is not None:
            holder = parse_hex(params["holder"], "holder", size=20)
            info["holder"] = get_holder_info(self.node.state, symbol, holder)
        return {**to_json(info), "height": self.node.store.head_height}

    async def state_assets(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self.node.store
        assets = []
        for key, value in store.iterate_state(ASSET_PREFIX):
            record = AssetRecord.from_value(codec.decode(value))
            assets.append({"symbol": key[len(ASSET_PREFIX):].decode(), **record.to_value()})
            if len(assets) >= MAX_LIST:
                break
        return {"assets": assets, "height": store.head_height}

    async def state_attestations(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = _parse_name(params, "asset")
        start = parse_int(params.get("start", 0), "start")
        limit = parse_int(params.get("limit", 100), "limit", lo=1, hi=MAX_LIST)
        try:
            found = get_attestations(self.node.state, symbol, start, limit)
        except LedgerError as e:
            raise _not_found(e) from e
        return {"asset": symbol, "attestations": to_json(found)}

    async def state_record(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace, key = _parse_name(params, "namespace"), _parse_record_key(params)
        state_key = get_record_key(namespace, key)
        store = self.node.store
        for _attempt in range(5):  # a block may commit between our reads: read again
            height = store.head_height
            value = store.get_state(state_key)
            if value is None:
                raise RpcError(NOT_FOUND, "unknown_record", f"no record {namespace}/{key}")
            answer: dict[str, Any] = {"namespace": namespace, "key": key, "height": height,
                                      "record": to_json(codec.decode(value)),
                                      "state_key": state_key.hex(), "value": value.hex()}
            erasure = get_erasure(self.node.state, namespace, key)
            if erasure is not None:  # a private record's payload, erased by lawful order
                answer["erased"] = describe_erasure(erasure)
            if not params.get("proof"):
                return answer
            if height == 0:
                raise RpcError(NOT_FOUND, "no_final_block",
                               "no block is final yet: a proof needs a certified header")
            proof = store.get_state_proof(state_key)
            header = store.get_block_header(height)
            certificate = store.get_certificate(height)
            if proof.height != height or header is None or certificate is None or \
                    not verify_state_proof(proof, state_key, value, header.state_root):
                continue
            answer["proof"] = {"state_proof": proof.to_json(), "header": header.encoded.hex(),
                               "certificate": certificate.encoded.hex()}
            return answer
        raise RpcError(NOT_FOUND, "busy_try_again", "the head moved during every attempt")

    async def state_record_history(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace, key = _parse_name(params, "namespace"), _parse_record_key(params)
        start = parse_int(params.get("start", 1), "start", lo=1)
        limit = parse_int(params.get("limit", 100), "limit", lo=1, hi=MAX_LIST)
        versions = get_record_history(self.node.state, namespace, key, start, limit)
        if not versions and get_record(self.node.state, namespace, key) is None:
            raise RpcError(NOT_FOUND, "unknown_record", f"no record {namespace}/{key}")
        return {"namespace": namespace, "key": key, "versions": to_json(versions)}

    async def state_namespace(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _parse_name(params, "namespace")
        try:
            result: dict[str, Any] = to_json(get_namespace_info(self.node.state, name))
        except LedgerError as e:
            raise _not_found(e) from e
        return result

    async def state_proposal(self, params: dict[str, Any]) -> dict[str, Any]:
        proposal_id = parse_int(params.get("id"), "id", lo=1)
        info = get_proposal_info(self.node.state, proposal_id, self.node.store.head_height)
        if info is None:
            raise RpcError(NOT_FOUND, "unknown_proposal", f"no proposal {proposal_id}")
        result: dict[str, Any] = to_json(info)
        return result

    async def state_upgrade(self, params: dict[str, Any]) -> dict[str, Any]:
        state, ledger = self.node.state, self.node.ledger
        last = get_value(state, LAST_UPGRADE_KEY, "last upgrade")
        result: dict[str, Any] = {
            "pending": to_json(get_pending_upgrade(state)),
            "last_applied": (None if last is None else
                             {"name": last[0], "height": last[1], "info": last[2]}),
            "implemented": [{"name": u.name, "summary": u.summary}
                            for u in sorted(ledger.upgrades.values(), key=lambda u: u.name)],
            "params": ledger.get_chain_params(state).to_value()}
        name = params.get("name")
        if name is not None:
            if not isinstance(name, str) or UPGRADE_NAME_PATTERN.fullmatch(name) is None:
                raise invalid_params(f"name must match {UPGRADE_NAME_PATTERN.pattern}")
            plan = get_upgrade_plan(state, name)
            if plan is None:
                raise RpcError(NOT_FOUND, "unknown_upgrade", f"no upgrade named {name!r}")
            result["plan"] = to_json(plan)
        return result

    async def state_proposals(self, params: dict[str, Any]) -> dict[str, Any]:
        status = params.get("status")
        if status not in (None, "open", "passed", "failed", "expired"):
            raise invalid_params("status must be open, passed, failed or expired")
        count = get_proposal_count(self.node.state)
        start = parse_int(params.get("start", count), "start", lo=0)
        limit = parse_int(params.get("limit", 100), "limit", lo=1, hi=MAX_LIST)
        height = self.node.store.head_height
        found = []
        for proposal_id in range(min(start, count), 0, -1):
            info = get_proposal_info(self.node.state, proposal_id, height)
            if info is not None and status in (None, info["status"]):
                found.append(to_json(info))
                if len(found) >= limit:
                    break
        return {"count": count, "proposals": found}

    async def state_roles(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self.node.state
        if params.get("address") is not None:
            address = parse_hex(params["address"], "address", size=20)
            validators = self.node.ledger.get_validator_set(state)
            is_validator = any(compute_address(v.public_key) == address
                               for v in validators.validators)
            return {"address": address.hex(), "validator": is_validator,
                    "roles": [{"role": r, "scope": s}
                              for r, s in get_account_roles(state, address)],
                    "multisig": to_json(get_multisig_info(state, address))}
        role = params.get("role")
        if not isinstance(role, str) or not role.isidentifier():
            raise invalid_params("give `address`, or `role` and `scope`")
        scope = _parse_name(params, "scope")
        return {"role": role, "scope": scope,
                "holders": [a.hex() for a in get_role_holders(state, role, scope)]}
