"""The RPC reads of the stablecoin: the supply report, tiers, redemption requests.

Each answer can carry, with `proof: true`, one state proof per state key it read (the
asset record, the latest attestation, the reserve policy, each tier's holder count,
the redemption request), all against the head header, with that header and its
commit certificate: a client checks them with the genesis alone, as for records.
Nothing here writes state.
"""

from __future__ import annotations

from typing import Any

from chain.state_proof import verify_state_proof
from ledger.assets import get_attestation, get_existing_asset
from ledger.errors import LedgerError
from ledger.keys import (
    get_asset_key,
    get_asset_rules_key,
    get_attestation_key,
    get_redemption_key,
    get_reserve_policy_key,
    get_tier_count_key,
)
from ledger.redemption import get_redemption
from ledger.reserve import get_reserve_policy, is_attestation_expired
from ledger.tiers import get_account_tier_info, get_tier_info
from node.node import Node
from rpc.dispatcher import NOT_FOUND, RpcDispatcher, RpcError, invalid_params
from rpc.openrpc import ADDRESS, ANY_OBJECT, MethodSpec, Param
from rpc.params import parse_hex, parse_int, to_json

NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,32}$"}
PROOF = Param("proof", {"type": "boolean"},
              "add a state proof of every key read, the head header and its certificate")
STATE_SUPPLY_REPORT = MethodSpec(
    params=(Param("asset", NAME, "the asset symbol, e.g. KGS", True), PROOF),
    result=ANY_OBJECT, errors=(NOT_FOUND,),
    description="Supply, attested reserve, bar-list root, attestation age and expiry, "
                "holders by tier (counts only): `govchain report supply`.", tags=("ledger",))
STATE_TIERS = MethodSpec(
    params=(Param("asset", NAME, "the asset symbol", True),
            Param("account", ADDRESS, "an account whose tier and rolling-day total to add")),
    result=ANY_OBJECT, errors=(NOT_FOUND,),
    description="The asset's identity tiers, limits and holder counts.", tags=("ledger",))
STATE_REDEMPTION = MethodSpec(
    params=(Param("asset", NAME, "the asset symbol", True),
            Param("id", {"type": "integer", "minimum": 1}, "the request id", True), PROOF),
    result=ANY_OBJECT, errors=(NOT_FOUND,),
    description="A redemption request: holder, amount, reference, status (pending, paid, "
                "refused), settlement.", tags=("ledger",))


def register_stablecoin_methods(dispatcher: RpcDispatcher, node: Node) -> None:
    api = StablecoinApi(node)
    r = dispatcher.register
    r("state_supply_report", api.state_supply_report, ("asset", "proof"),
      "Supply, reserve, bar-list root, attestation age, holders by tier; provable",
      spec=STATE_SUPPLY_REPORT)
    r("state_tiers", api.state_tiers, ("asset", "account"),
      "Identity tiers of an asset; an account's tier and rolling-day total", spec=STATE_TIERS)
    r("state_redemption", api.state_redemption, ("asset", "id", "proof"),
      "A redemption request and its outcome; provable", spec=STATE_REDEMPTION)


def _parse_asset(params: dict[str, Any]) -> str:
    value = params.get("asset")
    if not isinstance(value, str) or not value or len(value) > 32 or "/" in value:
        raise invalid_params("asset must be 1 to 32 letters, digits, '.', '_' or '-'")
    return value


class StablecoinApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    def _head_time_ms(self) -> int:
        head = self.node.store.head_block()
        return head.header.timestamp_ms if head else self.node.genesis.genesis_time_ms

    def _prove(self, keys: list[bytes]) -> dict[str, Any]:
        """Proofs of `keys` at the head, all of one height (read again if a block lands)."""
        store = self.node.store
        for _attempt in range(5):
            height = store.head_height
            if height == 0:
                raise RpcError(NOT_FOUND, "no_final_block",
                               "no block is final yet: a proof needs a certified header")
            header, certificate = store.get_block_header(height), store.get_certificate(height)
            proofs = []
            for key in keys:
                value, proof = store.get_state(key), store.get_state_proof(key)
                if header is None or proof.height != height or not verify_state_proof(
                        proof, key, value, header.state_root):
                    break
                proofs.append({"state_key": key.hex(),
                               "value": None if value is None else value.hex(),
                               "state_proof": proof.to_json()})
            else:
                if header is not None and certificate is not None and \
                        store.head_height == height:
                    return {"height": height, "header": header.encoded.hex(),
                            "certificate": certificate.encoded.hex(), "proofs": proofs}
        raise RpcError(NOT_FOUND, "busy_try_again", "the head moved during every attempt")

    async def state_supply_report(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = _parse_asset(params)
        state = self.node.state
        try:
            record = get_existing_asset(state, symbol)
        except LedgerError as e:
            raise RpcError(NOT_FOUND, e.code, e.message) from e
        now_ms = self._head_time_ms()
        index = record.attestations - 1
        latest = get_attestation(state, symbol, index) if record.attestations else None
        tiers = get_tier_info(state, symbol)
        report: dict[str, Any] = {
            "asset": symbol, "supply": record.supply, "reserve": record.reserve,
            "reserve_backed": record.reserve_backed, "decimals": record.decimals,
            "head_time_ms": now_ms, "height": self.node.store.head_height,
            "attestation": None, "reserve_policy": get_reserve_policy(state, symbol),
            "holders_by_tier": None if tiers is None else {
                str(t["tier"]): t["holders"] for t in tiers["tiers"]}}
        if latest is not None:
            report["attestation"] = {
                "index": index, "timestamp_ms": latest["timestamp_ms"],
                "age_ms": now_ms - int(latest["timestamp_ms"]),
                "expired": is_attestation_expired(state, symbol, latest, now_ms),
                "bar_root": latest.get("bar_root"), "bar_count": latest.get("bar_count"),
                "fine_weight_mg": latest.get("fine_weight_mg"),
                "report_hash": latest["report_hash"], "auditor": latest["auditor"]}
        if params.get("proof"):
            keys = [get_asset_key(symbol), get_reserve_policy_key(symbol),
                    get_asset_rules_key(symbol)]
            if latest is not None:
                keys.append(get_attestation_key(symbol, index))
            if tiers is not None:
                keys += [get_tier_count_key(symbol, t["tier"]) for t in tiers["tiers"]]
            report["proof"] = self._prove(keys)
        result: dict[str, Any] = to_json(report)
        return result

    async def state_tiers(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = _parse_asset(params)
        info = get_tier_info(self.node.state, symbol)
        if info is None:
            raise RpcError(NOT_FOUND, "unknown_tier", f"asset {symbol!r} has no tiers")
        answer: dict[str, Any] = {"asset": symbol, **info}
        if params.get("account") is not None:
            account = parse_hex(params["account"], "account", size=20)
            answer["account"] = get_account_tier_info(self.node.state, symbol, account,
                                                      self._head_time_ms())
        result: dict[str, Any] = to_json(answer)
        return result

    async def state_redemption(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = _parse_asset(params)
        request_id = parse_int(params.get("id"), "id", lo=1)
        request = get_redemption(self.node.state, symbol, request_id)
        if request is None:
            raise RpcError(NOT_FOUND, "unknown_redemption",
                           f"no redemption request {request_id} of {symbol}")
        answer: dict[str, Any] = {"request": to_json(request),
                                  "state_key": get_redemption_key(symbol, request_id).hex()}
        if params.get("proof"):
            answer["proof"] = self._prove([get_redemption_key(symbol, request_id)])
        return answer
