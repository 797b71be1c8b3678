"""Assets: creation (by governance), mint, burn, reserve attestations, freeze and unfreeze.

An asset record keeps its supply; a reserve-backed asset (the stablecoin) also keeps
the reserve of its latest attestation, and a mint that would take the supply above
it is refused. Balances move only through ledger.accounts (apply_debit/apply_credit),
which also enforce freezes. Integers only; roles are checked at execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chain.crypto import HASH_SIZE
from chain.genesis import Genesis
from chain.tx import Transaction
from ledger import fields as f
from ledger.accounts import apply_tiered_credit, apply_tiered_debit, get_balance, is_frozen
from ledger.errors import (
    AlreadyFrozenError,
    AssetExistsError,
    CorruptStateError,
    InvalidGenesisStateError,
    NotFrozenError,
    NotReserveBackedError,
    ReserveExceededError,
    StaleAttestationError,
    SupplyOverflowError,
    UnknownAssetError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import get_asset_key, get_attestation_key, get_freeze_key
from ledger.reserve import (
    GOLD_FIELDS,
    validate_attestation_fresh,
    validate_gold_attestation,
    validate_gold_fields,
)
from ledger.roles import (
    AUDITOR,
    COMPLIANCE,
    ISSUER,
    apply_grant_role,
    get_role_holders,
    validate_role,
)
from ledger.state import Overlay, StateReader, get_value, put_value
from ledger.tiers import get_tier_policy

MINT = "mint"
BURN = "burn"
ATTEST = "attest"
FREEZE = "freeze"
UNFREEZE = "unfreeze"

MAX_DECIMALS = 18
MAX_ASSET_NAME = 64


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """What the ledger keeps of one asset (its symbol is the key)."""

    name: str
    """Human name, e.g. "Kyrgyz som stablecoin"."""
    decimals: int
    """Display decimals: amounts are integers in units of 10^-decimals."""
    reserve_backed: bool
    """True when supply is capped by the latest attested reserve."""
    supply: int
    """Total amount in existence: genesis balances + mints - burns."""
    reserve: int
    """The latest attested reserve, in the asset's units (0 before any attestation)."""
    attestations: int
    """The number of attestations posted (the next attestation index)."""
    created_height: int
    """0 for genesis assets, else the height of the governance decision."""

    def to_value(self) -> dict[str, Any]:
        return {"name": self.name, "decimals": self.decimals,
                "reserve_backed": self.reserve_backed, "supply": self.supply,
                "reserve": self.reserve, "attestations": self.attestations,
                "created_height": self.created_height}

    @classmethod
    def from_value(cls, value: Any) -> AssetRecord:
        try:
            return cls(**value)
        except TypeError as e:
            raise CorruptStateError(f"asset record has unexpected form: {e}") from e

    def replace(self, **changes: Any) -> AssetRecord:
        return AssetRecord(**{**self.to_value(), **changes})


def get_asset_record(view: StateReader, symbol: str) -> AssetRecord | None:
    value = get_value(view, get_asset_key(symbol), "asset record")
    return None if value is None else AssetRecord.from_value(value)


def get_existing_asset(view: StateReader, symbol: str) -> AssetRecord:
    record = get_asset_record(view, symbol)
    if record is None:
        raise UnknownAssetError(f"no asset {symbol!r}; governance creates assets")
    return record


def put_asset_record(view: Overlay, symbol: str, record: AssetRecord) -> None:
    put_value(view, get_asset_key(symbol), record.to_value())


# ------------------------------------------------------------------ creation (governance)


def validate_create_asset_args(args: Mapping[str, Any]) -> None:
    """Fields of a create_asset governance action."""
    f.validate_field_names(args, frozenset({"symbol", "name", "decimals", "issuer",
                                            "reserve_backed"}))
    f.expect_asset(args, "symbol")
    f.expect_text(args, "name", MAX_ASSET_NAME)
    f.expect_int(args, "decimals", 0, MAX_DECIMALS)
    f.expect_address(args, "issuer")
    f.expect_bool(args, "reserve_backed")


def apply_create_asset(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                       ) -> list[Event]:
    """Create the asset with zero supply and grant `issuer` the issuer role."""
    symbol: str = args["symbol"]
    if get_asset_record(view, symbol) is not None:
        raise AssetExistsError(f"asset {symbol!r} exists already")
    record = AssetRecord(args["name"], args["decimals"], args["reserve_backed"], 0, 0, 0,
                         ctx.height)
    put_asset_record(view, symbol, record)
    apply_grant_role(view, ISSUER, symbol, args["issuer"])
    return [Event("asset_created", {"asset": symbol, "reserve_backed": int(
        args["reserve_backed"]), "decimals": args["decimals"]}),
            Event("role_granted", {"role": ISSUER, "scope": symbol, "address": args["issuer"]})]


# ------------------------------------------------------------------ mint and burn


def validate_mint_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "to", "amount"}))
    f.expect_asset(fields, "asset")
    f.expect_address(fields, "to")
    f.expect_amount(fields, "amount")


def apply_mint(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """The issuer creates `amount` for `to`; capped by the reserve of a backed asset."""
    symbol, to, amount = tx.fields["asset"], tx.fields["to"], tx.fields["amount"]
    record = get_existing_asset(view, symbol)
    validate_role(view, ISSUER, symbol, tx.sender)
    supply = record.supply + amount
    if supply > f.MAX_AMOUNT:
        raise SupplyOverflowError(f"supply of {symbol} would exceed {f.MAX_AMOUNT}")
    if record.reserve_backed and supply > record.reserve:
        raise ReserveExceededError(
            f"minting {amount} {symbol} would make the supply {supply}, above the attested "
            f"reserve {record.reserve}; the auditor must attest a larger reserve first")
    if record.reserve_backed:
        latest = (get_attestation(view, symbol, record.attestations - 1)
                  if record.attestations else None)
        validate_attestation_fresh(view, ctx, symbol, latest)
    swept = apply_tiered_credit(view, symbol, to, amount, policy=get_tier_policy(view, symbol))
    put_asset_record(view, symbol, record.replace(supply=supply))
    return [Event("minted", {"asset": symbol, "to": to, "amount": amount, "supply": supply}),
            *swept]


def validate_burn_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "amount"}))
    f.expect_asset(fields, "asset")
    f.expect_amount(fields, "amount")


def apply_burn(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """A holder (the issuer included) destroys `amount` of its own balance: a redemption."""
    symbol, amount = tx.fields["asset"], tx.fields["amount"]
    record = get_existing_asset(view, symbol)
    apply_tiered_debit(view, ctx, symbol, tx.sender, amount, payment=False,
                       policy=get_tier_policy(view, symbol))
    if record.supply < amount:
        raise CorruptStateError(f"supply of {symbol} is below a holder's balance")
    supply = record.supply - amount
    put_asset_record(view, symbol, record.replace(supply=supply))
    return [Event("burned", {"asset": symbol, "from": tx.sender, "amount": amount,
                             "supply": supply})]


# ------------------------------------------------------------------ reserve attestations


ATTEST_FIELDS = frozenset({"asset", "reserve", "report_hash", "timestamp_ms"})


def validate_attest_fields(fields: Mapping[str, Any]) -> None:
    """The reserve figures; optionally (required under a reserve policy) the gold fields
    of ledger/reserve.py: bar_root, fine_weight_mg, bar_count, report_key and signature."""
    f.validate_field_names_optional(fields, ATTEST_FIELDS, GOLD_FIELDS)
    validate_gold_fields(fields)
    f.expect_asset(fields, "asset")
    f.expect_int(fields, "reserve", 0, f.MAX_AMOUNT)
    f.expect_bytes(fields, "report_hash", size=HASH_SIZE)
    f.expect_int(fields, "timestamp_ms", 1, f.MAX_AMOUNT)


def get_attestation(view: StateReader, symbol: str, index: int) -> dict[str, Any] | None:
    value = get_value(view, get_attestation_key(symbol, index), "attestation")
    return None if value is None else dict(value)


def apply_attest(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """The auditor posts the reserve; it becomes the cap on the supply.

    An attestation below the current supply is accepted (a shortfall must be
    publishable); the event reports it, and mints are refused until the reserve
    covers the supply again.
    """
    symbol = tx.fields["asset"]
    reserve, report_hash, timestamp_ms = (tx.fields["reserve"], tx.fields["report_hash"],
                                          tx.fields["timestamp_ms"])
    record = get_existing_asset(view, symbol)
    validate_role(view, AUDITOR, symbol, tx.sender)
    if not record.reserve_backed:
        raise NotReserveBackedError(f"asset {symbol!r} is not reserve-backed")
    if timestamp_ms > ctx.timestamp_ms:
        raise StaleAttestationError(
            f"attestation time {timestamp_ms} is after the block time {ctx.timestamp_ms}")
    validate_gold_attestation(view, ctx, symbol, tx.sender, tx.fields)
    if record.attestations:
        previous = get_attestation(view, symbol, record.attestations - 1)
        if previous is None:
            raise CorruptStateError(f"attestation {record.attestations - 1} of {symbol} is missing")
        if timestamp_ms <= previous["timestamp_ms"]:
            raise StaleAttestationError(
                f"attestation time {timestamp_ms} is not after the previous one "
                f"{previous['timestamp_ms']}")
    index = record.attestations
    attestation = {"index": index, "reserve": reserve, "report_hash": report_hash,
                   "timestamp_ms": timestamp_ms, "height": ctx.height, "auditor": tx.sender,
                   "supply": record.supply}
    attributes: dict[str, bytes | str | int] = {
        "asset": symbol, "index": index, "reserve": reserve, "report_hash": report_hash,
        "supply": record.supply, "shortfall": max(0, record.supply - reserve)}
    if "bar_root" in tx.fields:
        gold = {name: tx.fields[name] for name in ("bar_root", "fine_weight_mg", "bar_count",
                                                   "report_key")}
        attestation.update(gold)
        attributes.update(gold)
    put_value(view, get_attestation_key(symbol, index), attestation)
    put_asset_record(view, symbol, record.replace(reserve=reserve, attestations=index + 1))
    return [Event("attested", attributes)]


# ------------------------------------------------------------------ freeze


def validate_freeze_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"asset", "account"}))
    f.expect_asset(fields, "asset")
    f.expect_address(fields, "account")


def apply_freeze(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    symbol, account = tx.fields["asset"], tx.fields["account"]
    get_existing_asset(view, symbol)
    validate_role(view, COMPLIANCE, symbol, tx.sender)
    if is_frozen(view, account, symbol):
        raise AlreadyFrozenError(f"account {account.hex()} is already frozen for {symbol}")
    put_value(view, get_freeze_key(account, symbol), ctx.height)
    return [Event("frozen", {"asset": symbol, "account": account, "by": tx.sender})]


def apply_unfreeze(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    symbol, account = tx.fields["asset"], tx.fields["account"]
    get_existing_asset(view, symbol)
    validate_role(view, COMPLIANCE, symbol, tx.sender)
    if not is_frozen(view, account, symbol):
        raise NotFrozenError(f"account {account.hex()} is not frozen for {symbol}")
    view.delete(get_freeze_key(account, symbol))
    return [Event("unfrozen", {"asset": symbol, "account": account, "by": tx.sender})]


# ------------------------------------------------------------------ reads


def get_asset_info(view: StateReader, symbol: str) -> dict[str, Any]:
    """The asset with its role holders and latest attestation; raises UnknownAssetError."""
    record = get_existing_asset(view, symbol)
    latest = (get_attestation(view, symbol, record.attestations - 1)
              if record.attestations else None)
    return {"symbol": symbol, **record.to_value(),
            "issuers": list(get_role_holders(view, ISSUER, symbol)),
            "auditors": list(get_role_holders(view, AUDITOR, symbol)),
            "compliance": list(get_role_holders(view, COMPLIANCE, symbol)),
            "latest_attestation": latest}


def get_holder_info(view: StateReader, symbol: str, address: bytes) -> dict[str, Any]:
    return {"address": address, "balance": get_balance(view, address, symbol),
            "frozen": is_frozen(view, address, symbol)}


def get_attestations(view: StateReader, symbol: str, start: int, limit: int
                     ) -> list[dict[str, Any]]:
    """Attestations from index `start`, at most `limit`, oldest first."""
    record = get_existing_asset(view, symbol)
    end = min(record.attestations, start + limit)
    found = [get_attestation(view, symbol, i) for i in range(start, end)]
    return [a for a in found if a is not None]


# ------------------------------------------------------------------ genesis


def _genesis_supply(genesis: Genesis) -> dict[str, int]:
    supply: dict[str, int] = {}
    for account in genesis.accounts:
        for symbol, amount in account.balances.items():
            supply[symbol] = supply.get(symbol, 0) + amount
    return supply


def _apply_genesis_asset(view: Overlay, entry: Any, supply: int) -> str:
    if not isinstance(entry, dict):
        raise InvalidGenesisStateError(f"asset entry {entry!r} is not an object")
    known = {"symbol", "name", "decimals", "reserve_backed", "attestation"}
    if set(entry) - known or not {"symbol", "name"} <= set(entry):
        raise InvalidGenesisStateError(f"asset entry {entry!r}: expected {sorted(known)}")
    symbol = entry["symbol"]
    decimals = entry.get("decimals", 0)
    backed = entry.get("reserve_backed", False)
    if not f.is_valid_asset(symbol) or not isinstance(entry["name"], str) or \
            isinstance(decimals, bool) or not isinstance(decimals, int) or \
            not 0 <= decimals <= MAX_DECIMALS or not isinstance(backed, bool):
        raise InvalidGenesisStateError(f"asset entry {entry!r} has a bad value")
    if get_asset_record(view, symbol) is not None:
        raise InvalidGenesisStateError(f"asset {symbol!r} is listed twice")
    reserve, count = 0, 0
    attestation = entry.get("attestation")
    if attestation is not None:
        if not backed or not isinstance(attestation, dict) or \
                set(attestation) != {"reserve", "report_hash", "timestamp_ms"}:
            raise InvalidGenesisStateError(
                f"asset {symbol}: attestation needs reserve, report_hash, timestamp_ms and a "
                f"reserve-backed asset")
        reserve = int(attestation["reserve"])
        report_hash = bytes.fromhex(str(attestation["report_hash"]))
        if len(report_hash) != HASH_SIZE or not 0 <= reserve <= f.MAX_AMOUNT:
            raise InvalidGenesisStateError(f"asset {symbol}: bad attestation values")
        put_value(view, get_attestation_key(symbol, 0), {
            "index": 0, "reserve": reserve, "report_hash": report_hash,
            "timestamp_ms": int(attestation["timestamp_ms"]), "height": 0, "auditor": b"",
            "supply": supply})
        count = 1
    if backed and supply > reserve:
        raise InvalidGenesisStateError(
            f"asset {symbol}: genesis balances total {supply}, above the attested reserve "
            f"{reserve}")
    put_asset_record(view, symbol, AssetRecord(entry["name"], decimals, backed, supply,
                                               reserve, count, 0))
    return str(symbol)


class AssetsModule:
    """Assets, supply, reserve attestations and freezes."""

    name = "assets"
    tx_types: Mapping[str, TxHandler] = {
        MINT: TxHandler(validate_mint_fields, apply_mint),
        BURN: TxHandler(validate_burn_fields, apply_burn),
        ATTEST: TxHandler(validate_attest_fields, apply_attest),
        FREEZE: TxHandler(validate_freeze_fields, apply_freeze),
        UNFREEZE: TxHandler(validate_freeze_fields, apply_unfreeze),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        """Declared assets, then every other symbol holding genesis balances as a plain asset."""
        settings = genesis.app_state.get(self.name) or {}
        if not isinstance(settings, dict) or set(settings) - {"assets"}:
            raise InvalidGenesisStateError('app_state.assets takes {"assets": [...]} only')
        supply = _genesis_supply(genesis)
        try:
            for entry in settings.get("assets", []):
                symbol = entry.get("symbol") if isinstance(entry, dict) else None
                _apply_genesis_asset(view, entry, supply.get(str(symbol), 0))
        except (ValueError, TypeError) as e:
            raise InvalidGenesisStateError(f"app_state.assets has a bad value: {e}") from e
        for symbol in sorted(supply, key=str.encode):
            if get_asset_record(view, symbol) is None:
                put_asset_record(view, symbol,
                                 AssetRecord(symbol, 0, False, supply[symbol], 0, 0, 0))
