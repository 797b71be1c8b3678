"""The stablecoin's commands: tiers, gold attestations, redemption, bar lists, the travel
rule and `govchain report supply`.

`tx attest-gold` builds the attestation from the bar list file and refuses to sign
when its total fine weight differs from the stated one; `barlist root|proof|verify`
let auditors and holders work with the list off-chain; `report supply` prints the
supply report and checks each state proof against the certified head header.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from chain.block import BlockHeader
from chain.state_proof import StateProof, verify_state_proof
from chain.vote import CommitCertificate
from cli.ledger import (
    LedgerCliError,
    add_common_tx_arguments,
    make_tx_command,
    parse_hex,
    print_doc,
)
from cli.options import add_rpc_option
from node.config import read_key_file
from sdk import Client
from sdk.stablecoin import (
    Bar,
    BarListError,
    build_attestation,
    compute_bar_proof,
    compute_bar_root,
    compute_total_fine_weight,
    compute_travel_commitment,
    parse_bar_list,
    verify_bar_proof,
)


def read_bar_list(path: str) -> list[Bar]:
    """A bar list file: a JSON array of {serial, refiner, weight_mg, fineness, vault}."""
    try:
        entries = json.loads(Path(path).read_text())
        if not isinstance(entries, list):
            raise BarListError("a bar list is a JSON array of bars")
        return parse_bar_list(entries)
    except (OSError, ValueError) as e:
        raise LedgerCliError(f"{path}: {e}") from e


def _fields_attest_gold(a: argparse.Namespace) -> dict[str, Any]:
    chain_id = a.chain_id or Client(a.rpc).status()["chain_id"]
    try:
        return build_attestation(
            chain_id, a.asset, read_bar_list(a.bar_list),
            stated_fine_weight_mg=a.fine_weight_mg, units_per_fine_mg=a.units_per_fine_mg,
            report_hash=parse_hex(a.report_hash, "--report-hash", 32),
            timestamp_ms=a.timestamp_ms, report_key=read_key_file(Path(a.report_key)))
    except BarListError as e:
        raise LedgerCliError(f"refusing to sign: {e}") from e


def _fields_transfer(a: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {"to": parse_hex(a.to, "--to", 20), "asset": a.asset,
                              "amount": a.amount}
    if a.travel_rule:
        fields["travel_rule"] = parse_hex(a.travel_rule, "--travel-rule", 32)
    return fields


TX_COMMANDS: dict[str, tuple[str, str, Any, tuple[tuple[str, dict[str, Any]], ...]]] = {
    "tier-assign": ("tier_assign", "put an account in an identity tier (kyc provider)",
                    lambda a: {"asset": a.asset, "account": parse_hex(a.account, "--account", 20),
                               "tier": a.tier},
                    (("--account", {"required": True, "help": "the account (hex)"}),
                     ("--tier", {"type": int, "required": True, "help": "the tier number"}))),
    "tier-sweep": ("tier_sweep", "name the linked account that takes what exceeds your limit",
                   lambda a: {"asset": a.asset, "linked": parse_hex(a.linked, "--linked", 20)},
                   (("--linked", {"required": True,
                                  "help": "the linked account (your own address removes it)"}),)),
    "redeem": ("redeem", "burn coins against a redemption request",
               lambda a: {"asset": a.asset, "amount": a.amount, "reference": a.reference},
               (("--amount", {"type": int, "required": True, "help": "smallest units"}),
                ("--reference", {"required": True, "help": "your back-office reference"}))),
    "redemption-settle": ("redemption_settle", "record a redemption's payout or refusal "
                          "(issuer)",
                          lambda a: {"asset": a.asset, "request": a.request,
                                     "outcome": a.outcome, "note": a.note},
                          (("--request", {"type": int, "required": True, "help": "request id"}),
                           ("--outcome", {"required": True, "choices": ["paid", "refused"],
                                          "help": "paid, or refused (coins back to the holder)"}),
                           ("--note", {"default": "", "help": "payout reference or reason"}))),
    "attest-gold": ("attest", "attest the reserve from a bar list, signed with the audit "
                    "firm's report key (auditor)", _fields_attest_gold,
                    (("--bar-list", {"required": True, "help": "bar list JSON file"}),
                     ("--fine-weight-mg", {"type": int, "required": True,
                                           "help": "the report's stated fine weight"}),
                     ("--units-per-fine-mg", {"type": int, "required": True,
                                              "help": "the asset's reserve policy rate"}),
                     ("--report-hash", {"required": True, "help": "sha256 of the report"}),
                     ("--timestamp-ms", {"type": int, "required": True,
                                         "help": "the report's date, ms since the epoch"}),
                     ("--report-key", {"required": True,
                                       "help": "the audit firm's registered report key file"}))),
    "transfer-travel": ("transfer", "a transfer carrying a travel-rule commitment",
                        _fields_transfer,
                        (("--to", {"required": True, "help": "recipient (hex)"}),
                         ("--amount", {"type": int, "required": True, "help": "smallest units"}),
                         ("--travel-rule", {"help": "the 32-byte commitment (hex), from "
                                                    "`govchain travel-rule commit`"}))),
}


def cmd_report_supply(args: argparse.Namespace) -> int:
    client = Client(args.rpc)
    report = client.call("state_supply_report", asset=args.asset, proof=True)
    proof = report.pop("proof")
    header = BlockHeader.decode(bytes.fromhex(proof["header"]))
    certificate = CommitCertificate.decode(bytes.fromhex(proof["certificate"]))
    verified = certificate.height == header.height and all(
        verify_state_proof(StateProof.from_json(item["state_proof"]),
                           bytes.fromhex(item["state_key"]),
                           None if item["value"] is None else bytes.fromhex(item["value"]),
                           header.state_root) for item in proof["proofs"])
    if not verified:
        raise LedgerCliError("NOT VERIFIED: a state proof does not match the head header")
    attestation = report.get("attestation") or {}
    print_doc({"asset": report["asset"], "supply": report["supply"],
               "attested_reserve": report["reserve"],
               "bar_list_root": attestation.get("bar_root"),
               "fine_weight_mg": attestation.get("fine_weight_mg"),
               "attestation_age_s": (attestation["age_ms"] // 1000) if attestation else None,
               "attestation_expired": attestation.get("expired"),
               "holders_by_tier": report["holders_by_tier"], "height": proof["height"],
               "state_proofs": f"{len(proof['proofs'])} verified against the state root of "
                               f"height {proof['height']}"}, args.json)
    return 0


def cmd_barlist(args: argparse.Namespace) -> int:
    if args.action == "verify":
        doc = json.loads(Path(args.file).read_text())
        ok = verify_bar_proof(doc, parse_hex(args.root, "--root", 32))
        print_doc({"verified": ok}, args.json)
        return 0 if ok else 1
    bars = read_bar_list(args.file)
    if args.action == "root":
        print_doc({"bar_root": compute_bar_root(bars).hex(), "bar_count": len(bars),
                   "fine_weight_mg": compute_total_fine_weight(bars)}, args.json)
        return 0
    matches = [i for i, bar in enumerate(bars) if bar.serial == args.serial]
    if len(matches) != 1:
        raise LedgerCliError(f"serial {args.serial!r} is in the list {len(matches)} times")
    print(json.dumps(compute_bar_proof(bars, matches[0]), indent=2))
    return 0


def cmd_travel_commit(args: argparse.Namespace) -> int:
    record = json.loads(Path(args.record).read_text())
    if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
        raise LedgerCliError("a travel-rule record is a JSON object of text fields")
    salt = parse_hex(args.salt, "--salt") if args.salt else os.urandom(16)
    print_doc({"travel_rule": compute_travel_commitment(record, salt).hex(),
               "salt": salt.hex()}, args.json)
    return 0


def add_stablecoin_commands(sub: Any) -> None:
    tx_sub = next(a for a in sub.choices["tx"]._actions
                  if isinstance(a, argparse._SubParsersAction))
    for name, (tx_type, summary, build, options) in TX_COMMANDS.items():
        p = tx_sub.add_parser(name, help=summary)
        p.add_argument("--asset", required=True, help="the asset's symbol, e.g. KGS")
        for flag, kwargs in options:
            p.add_argument(flag, **kwargs)
        add_common_tx_arguments(p)
        p.set_defaults(func=make_tx_command(tx_type, build))

    report = sub.add_parser("report", help="reports the chain can prove")
    rsub = report.add_subparsers(dest="report", required=True)
    p = rsub.add_parser("supply", help="supply, attested reserve, bar-list root, attestation "
                                       "age, holders by tier; every figure state-proven")
    p.add_argument("--asset", required=True, help="the asset's symbol, e.g. KGS")
    add_rpc_option(p)
    p.set_defaults(func=cmd_report_supply)

    p = sub.add_parser("barlist", help="bar list: Merkle root, a bar's inclusion proof, check")
    p.add_argument("action", choices=["root", "proof", "verify"],
                   help="root: the list's Merkle root; proof: a bar's inclusion proof; "
                        "verify: check a proof against a root")
    p.add_argument("file", help="the bar list JSON (root, proof) or a proof JSON (verify)")
    p.add_argument("--serial", help="proof: the bar's serial number")
    p.add_argument("--root", help="verify: the bar_root of the attestation")
    p.set_defaults(func=cmd_barlist)

    travel = sub.add_parser("travel-rule", help="travel-rule record commitments")
    tsub = travel.add_subparsers(dest="travel", required=True)
    p = tsub.add_parser("commit", help="the commitment a provider transfer carries")
    p.add_argument("record", help="originator/beneficiary record, a JSON object of text")
    p.add_argument("--salt", help="hex; default: 16 random bytes (printed)")
    p.set_defaults(func=cmd_travel_commit)
