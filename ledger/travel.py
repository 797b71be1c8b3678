"""The travel rule (FATF R.16): provider-to-provider transfers carry a data commitment.

A transfer of an asset with a governance-set threshold, between two accounts that
hold the asset's `kyc` role (licensed providers), of at least the threshold, must
carry `travel_rule`: a 32-byte commitment to the originator/beneficiary record. The
record itself travels off-chain between the two providers (docs/ledger.md); the chain
never holds it. Pure: reads the threshold and the two role lists, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger import fields as f
from ledger.errors import TravelRuleRequiredError, UnknownAssetError
from ledger.interface import BlockContext, Event
from ledger.keys import get_asset_key
from ledger.roles import KYC, has_role
from ledger.state import Overlay, StateReader
from ledger.tiers import NO_RULES, TierPolicy, get_asset_rules, put_asset_rules

SET_TRAVEL_RULE = "set_travel_rule"
TRAVEL_RULE_FIELD = "travel_rule"
"""The optional transfer field: sha256 commitment to the travel-rule record (32 bytes)."""


def get_travel_threshold(view: StateReader, symbol: str) -> int | None:
    """The amount from which a provider-to-provider transfer needs a commitment, or None."""
    rules = get_asset_rules(view, symbol)
    return rules.travel_threshold if rules is not None and rules.travel_threshold else None


def is_provider(view: StateReader, symbol: str, address: bytes) -> bool:
    return has_role(view, KYC, symbol, address)


def validate_travel_rule(view: StateReader, rules: TierPolicy, symbol: str, sender: bytes,
                         to: bytes, amount: int, commitment: bytes | None) -> None:
    """Refuse a provider-to-provider transfer at or above the threshold without commitment.

    `rules` is the asset's rules record (ledger/tiers.py), which the transfer reads once.
    """
    threshold = rules.travel_threshold
    if commitment is not None or not threshold or amount < threshold:
        return
    if is_provider(view, symbol, sender) and is_provider(view, symbol, to):
        raise TravelRuleRequiredError(
            f"a transfer of {amount} {symbol} between two licensed providers (threshold "
            f"{threshold}) must carry travel_rule, the commitment to the originator and "
            f"beneficiary record exchanged off-chain")


def validate_set_travel_rule_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"asset", "threshold"}))
    f.expect_asset(args, "asset")
    f.expect_int(args, "threshold", 0, f.MAX_AMOUNT)


def apply_set_travel_rule(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                          ) -> list[Event]:
    """Set the threshold; 0 removes the rule (1 covers every amount, as in the EU)."""
    symbol, threshold = args["asset"], args["threshold"]
    if view.get(get_asset_key(symbol)) is None:
        raise UnknownAssetError(f"no asset {symbol!r}; governance creates assets")
    rules = get_asset_rules(view, symbol) or NO_RULES
    put_asset_rules(view, symbol, rules.replace(travel_threshold=threshold))
    return [Event("travel_rule_set", {"asset": symbol, "threshold": threshold})]


GOVERNANCE_ACTIONS = {SET_TRAVEL_RULE: (validate_set_travel_rule_args, apply_set_travel_rule)}
