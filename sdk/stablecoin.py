"""Stablecoin tools for auditors, holders and providers: the bar list, reports, travel rule.

The bar list stays off-chain; the chain holds its Merkle root, its bar count and its
total fine weight. `build_attestation` checks that the list's total equals the
stated weight before the auditor signs, `compute_bar_proof`/`verify_bar_proof` let a
holder show that a bar is in the attested list, and `compute_travel_commitment` is
what two providers put on a transfer for the record they exchange between them.
Stands on chain/ (and ledger's report payload) alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain import codec, merkle
from chain.crypto import DOMAIN_RESERVE_REPORT, KeyPair, signing_bytes
from ledger.reserve import get_report_payload

BAR_LEAF_TAG = "govchain/bar-list/v1"
"""First element of every bar-list leaf (a hash input, not a signing domain)."""
TRAVEL_RULE_TAG = "govchain/travel-rule/v1"
"""First element of a travel-rule commitment's input (a hash input, not a signing domain)."""
FINENESS_SCALE = 10_000
"""Fineness in parts per 10,000: 9999 is "four nines" gold."""
TEXT_PATTERN = re.compile(r"[\x20-\x7e]{1,64}")
"""Serials, refiners and vaults: 1 to 64 printable ASCII characters."""


class BarListError(ValueError):
    """Raised when a bar list entry is malformed or the list does not add up."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the reserve, as the vault's bar list names it."""

    serial: str
    """The refiner's serial number stamped on the bar."""
    refiner: str
    """The refiner (an LBMA Good Delivery name, for instance)."""
    weight_mg: int
    """Gross weight in milligrams."""
    fineness: int
    """Gold content in parts per 10,000 (9999 = 99.99 %)."""
    vault: str
    """Where the bar is held."""

    @property
    def fine_weight_mg(self) -> int:
        """Fine gold in the bar, in milligrams, rounded down."""
        return self.weight_mg * self.fineness // FINENESS_SCALE

    def encode_leaf(self) -> bytes:
        """The canonical leaf: msgpack of [domain, serial, refiner, weight_mg, fineness, vault]."""
        return codec.encode([BAR_LEAF_TAG, self.serial, self.refiner, self.weight_mg,
                             self.fineness, self.vault])

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Bar:
        if not isinstance(value, Mapping) or set(value) != {"serial", "refiner", "weight_mg",
                                                            "fineness", "vault"}:
            raise BarListError(f"bar {value!r}: expected serial, refiner, weight_mg, "
                               f"fineness, vault")
        for name in ("serial", "refiner", "vault"):
            if not isinstance(value[name], str) or not TEXT_PATTERN.fullmatch(value[name]):
                raise BarListError(f"bar {value!r}: {name} must be 1-64 printable characters")
        for name, hi in (("weight_mg", 2**40), ("fineness", FINENESS_SCALE)):
            item = value[name]
            if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= hi:
                raise BarListError(f"bar {value!r}: {name} must be a whole number in [1, {hi}]")
        return cls(value["serial"], value["refiner"], value["weight_mg"], value["fineness"],
                   value["vault"])


def parse_bar_list(entries: Sequence[Mapping[str, Any]]) -> list[Bar]:
    """The bars, in list order; refuses duplicate (refiner, serial) pairs."""
    bars = [Bar.from_json(entry) for entry in entries]
    seen: set[tuple[str, str]] = set()
    for bar in bars:
        if (bar.refiner, bar.serial) in seen:
            raise BarListError(f"bar {bar.refiner} {bar.serial} is listed twice")
        seen.add((bar.refiner, bar.serial))
    return bars


def compute_bar_root(bars: Sequence[Bar]) -> bytes:
    return bytes(merkle.compute_root([bar.encode_leaf() for bar in bars]))


def compute_total_fine_weight(bars: Sequence[Bar]) -> int:
    return sum(bar.fine_weight_mg for bar in bars)


def build_attestation(chain_id: str, symbol: str, bars: Sequence[Bar], *,
                      stated_fine_weight_mg: int, units_per_fine_mg: int,
                      report_hash: bytes, timestamp_ms: int,
                      report_key: KeyPair) -> dict[str, Any]:
    """The fields of an `attest` transaction, signed by the audit firm's report key.

    Raises BarListError when the bar list's total fine weight differs from the weight
    the report states: such a report must not be signed, let alone posted.
    """
    total = compute_total_fine_weight(bars)
    if total != stated_fine_weight_mg:
        raise BarListError(f"the bar list holds {total} mg of fine gold, the report states "
                           f"{stated_fine_weight_mg} mg")
    fields: dict[str, Any] = {
        "asset": symbol, "reserve": total * units_per_fine_mg, "report_hash": report_hash,
        "timestamp_ms": timestamp_ms, "bar_root": compute_bar_root(bars),
        "fine_weight_mg": total, "bar_count": len(bars), "report_key": report_key.public_key}
    message = signing_bytes(DOMAIN_RESERVE_REPORT, chain_id, get_report_payload(symbol, fields))
    fields["report_signature"] = report_key.sign(message)
    return fields


def compute_bar_proof(bars: Sequence[Bar], index: int) -> dict[str, Any]:
    """What a holder keeps to show bar `index` is in the attested list (JSON, hex)."""
    leaves = [bar.encode_leaf() for bar in bars]
    bar = bars[index]
    return {"bar": {"serial": bar.serial, "refiner": bar.refiner, "weight_mg": bar.weight_mg,
                    "fineness": bar.fineness, "vault": bar.vault},
            "index": index, "size": len(bars),
            "path": [h.hex() for h in merkle.compute_proof(leaves, index)]}


def verify_bar_proof(proof: Mapping[str, Any], bar_root: bytes) -> bool:
    """True when `proof` shows its bar in the list whose root an attestation carries."""
    try:
        bar = Bar.from_json(proof["bar"])
        path = [bytes.fromhex(h) for h in proof["path"]]
        return merkle.is_valid_proof(bar.encode_leaf(), int(proof["index"]),
                                     int(proof["size"]), path, bar_root)
    except (BarListError, KeyError, TypeError, ValueError):
        return False


def compute_travel_commitment(record: Mapping[str, Any], salt: bytes) -> bytes:
    """The 32 bytes a provider-to-provider transfer carries as `travel_rule`.

    sha256 of canonical msgpack [TRAVEL_RULE_TAG, salt, record]; the record is the
    IVMS 101 originator/beneficiary data as a map of text, the salt (at least 16 random
    bytes) keeps it from being guessed from the commitment. Both travel off-chain.
    """
    if len(salt) < 16:
        raise ValueError("the salt must be at least 16 random bytes")
    return hashlib.sha256(codec.encode([TRAVEL_RULE_TAG, salt, dict(record)])).digest()
