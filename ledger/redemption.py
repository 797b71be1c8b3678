"""Redemption: a holder burns coins against a request; the issuer records the outcome.

`redeem` burns the holder's coins (the supply falls at once) and opens request
redeem/v1/<asset>/<id>, carrying the holder's reference for the issuer's back office.
The issuer answers with `redemption_settle`: `paid` (with its payout reference) or
`refused` (with a reason), which returns the coins to the holder. A request is settled
once. The request record is the state a holder proves (state_redemption with proof).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.accounts import apply_tiered_credit, apply_tiered_debit
from ledger.assets import get_existing_asset, put_asset_record
from ledger.errors import (
    InvalidGenesisStateError,
    MalformedFieldsError,
    RedemptionClosedError,
    SupplyOverflowError,
    UnknownRedemptionError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import get_redemption_count_key, get_redemption_key
from ledger.roles import ISSUER, validate_role
from ledger.state import Overlay, StateReader, get_value, put_value
from ledger.tiers import get_tier_policy

REDEEM = "redeem"
REDEMPTION_SETTLE = "redemption_settle"
PENDING, PAID, REFUSED = "pending", "paid", "refused"
MAX_REFERENCE = 64
MAX_NOTE = 128


def get_redemption(view: StateReader, symbol: str, request_id: int) -> dict[str, Any] | None:
    value = get_value(view, get_redemption_key(symbol, request_id), "redemption request")
    return None if value is None else dict(value)


def get_redemption_count(view: StateReader, symbol: str) -> int:
    value = get_value(view, get_redemption_count_key(symbol), "redemption count")
    return 0 if value is None else int(value)


def validate_redeem_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "amount", "reference"}))
    f.expect_asset(fields, "asset")
    f.expect_amount(fields, "amount")
    if not f.expect_text(fields, "reference", MAX_REFERENCE):
        raise MalformedFieldsError("reference", "must not be empty")


def apply_redeem(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """Burn the sender's coins and open a redemption request."""
    symbol, amount = tx.fields["asset"], tx.fields["amount"]
    record = get_existing_asset(view, symbol)
    apply_tiered_debit(view, ctx, symbol, tx.sender, amount, payment=False,
                       policy=get_tier_policy(view, symbol))
    supply = record.supply - amount
    put_asset_record(view, symbol, record.replace(supply=supply))
    request_id = get_redemption_count(view, symbol) + 1
    put_value(view, get_redemption_count_key(symbol), request_id)
    put_value(view, get_redemption_key(symbol, request_id), {
        "id": request_id, "asset": symbol, "holder": tx.sender, "amount": amount,
        "reference": tx.fields["reference"], "height": ctx.height, "status": PENDING,
        "settled_height": 0, "settled_by": b"", "note": ""})
    return [Event("redemption_requested", {"amount": amount, "asset": symbol,
                                           "holder": tx.sender, "id": request_id,
                                           "reference": tx.fields["reference"],
                                           "supply": supply})]


def validate_settle_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "request", "outcome", "note"}))
    f.expect_asset(fields, "asset")
    f.expect_int(fields, "request", 1, 2**63 - 1)
    if fields["outcome"] not in (PAID, REFUSED):
        raise MalformedFieldsError("outcome", f"expected {PAID!r} or {REFUSED!r}")
    f.expect_text(fields, "note", MAX_NOTE)


def apply_settle(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """The issuer records the payout or the refusal; a refusal gives the coins back."""
    symbol, request_id, outcome = (tx.fields["asset"], tx.fields["request"],
                                   tx.fields["outcome"])
    record = get_existing_asset(view, symbol)
    validate_role(view, ISSUER, symbol, tx.sender)
    request = get_redemption(view, symbol, request_id)
    if request is None:
        raise UnknownRedemptionError(f"no redemption request {request_id} of {symbol}")
    if request["status"] != PENDING:
        raise RedemptionClosedError(
            f"redemption request {request_id} of {symbol} is {request['status']} already")
    events: list[Event] = []
    if outcome == REFUSED:
        supply = record.supply + request["amount"]
        if supply > f.MAX_AMOUNT:
            raise SupplyOverflowError(f"supply of {symbol} would exceed {f.MAX_AMOUNT}")
        events = apply_tiered_credit(view, symbol, request["holder"], request["amount"],
                                     policy=get_tier_policy(view, symbol))
        put_asset_record(view, symbol, record.replace(supply=supply))
    request.update(status=outcome, settled_height=ctx.height, settled_by=tx.sender,
                   note=tx.fields["note"])
    put_value(view, get_redemption_key(symbol, request_id), request)
    return [Event("redemption_settled", {"asset": symbol, "id": request_id,
                                         "note": tx.fields["note"], "outcome": outcome}),
            *events]


class RedemptionModule:
    """Redemption requests and their settlement by the issuer."""

    name = "redemption"
    tx_types: Mapping[str, TxHandler] = {
        REDEEM: TxHandler(validate_redeem_fields, apply_redeem),
        REDEMPTION_SETTLE: TxHandler(validate_settle_fields, apply_settle),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        if genesis.app_state.get(self.name):
            raise InvalidGenesisStateError("app_state.redemption takes no settings")
