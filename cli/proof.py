"""`govchain proof`, `govchain verify` and `govchain verify-document`: proof bundles.

`proof` asks a node for the material and writes one file; `verify` checks such a file
against a genesis file with no network; `verify-document` hashes a document and checks it
against a record's hash. The checks are sdk.bundle's: this module only reads files,
prints and maps failures to exit status 2 (1 stays for usage errors).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain.genesis import Genesis
from cli.options import add_rpc_option
from sdk import Client
from sdk.bundle import (
    BundleError,
    Checkpoint,
    VerifiedFact,
    WrongRecordError,
    check_document,
    verify_bundle,
)
from sdk.bundle_builder import (
    BundleSourceError,
    build_account_bundle,
    build_payment_bundle,
    build_record_bundle,
    encode_bundle,
)

NOT_VERIFIED_STATUS = 2
"""Exit status when a bundle or a document does not verify."""
DOCUMENT_CHUNK_BYTES = 1 << 20


class ProofCliError(ValueError):
    """A user error (a bad argument, an unreadable file): one line, exit status 1."""


def _genesis(path: str) -> Genesis:
    try:
        return Genesis.from_json(Path(path).read_text())
    except OSError as e:
        raise ProofCliError(f"cannot read the genesis file {path}: {e.strerror}") from e


def _checkpoint(text: str | None) -> Checkpoint | None:
    if text is None:
        return None
    try:
        return Checkpoint.parse(text)
    except ValueError as e:
        raise ProofCliError(str(e)) from e


def _record_name(text: str) -> tuple[str, str]:
    namespace, sep, key = text.partition("/")
    if not sep or not namespace or not key:
        raise ProofCliError(f"a record is named NAMESPACE/KEY, not {text!r}")
    return namespace, key


def _hex_arg(text: str, what: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as e:
        raise ProofCliError(f"{what} {text!r} is not hex") from e
    if len(value) != size:
        raise ProofCliError(f"{what} is {size} bytes ({2 * size} hex digits)")
    return value


def _not_verified(error: BundleError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"verified": False, "error": error.code, "message": error.message}))
    print(f"govchain: NOT VERIFIED: {error.code}: {error.message}", file=sys.stderr)
    return NOT_VERIFIED_STATUS


# ------------------------------------------------------------------ what was checked


def _when(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _amount(amount: int, decimals: int | None) -> str:
    if not decimals:
        return f"{amount:,}"
    whole, part = divmod(amount, 10**decimals)
    return f"{whole:,}.{part:0{decimals}d}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def describe(fact: VerifiedFact) -> list[str]:
    """The lines `govchain verify` prints: what was checked, in plain words."""
    names = ", ".join(s.name if s.name_proven else f"{s.name} (name as the bundle states it)"
                      for s in fact.signers)
    trust = ("the genesis file" if fact.trusted_from == "genesis"
             else f"the stated {fact.trusted_from}")
    lines = [f"VERIFIED against {trust} of chain {fact.chain_id}",
             f"block {fact.height:,} ({fact.block_hash.hex()[:16]}...), made "
             f"{_when(fact.timestamp_ms)}",
             f"signed by {len(fact.signers)} of {fact.set_size} validators (quorum "
             f"{fact.quorum}): {names}",
             f"validator-set changes followed: {fact.set_changes}"]
    s = fact.subject
    if fact.kind == "record" and not s["exists"]:
        lines.append(f"record {s['namespace']}/{s['key']}: proven absent at this block")
    elif fact.kind == "record":
        lines += [f"record {s['namespace']}/{s['key']}: version {s['version']}, "
                  f"status {s['status']}, written at block {_count(s['written_at'])}",
                  f"  value: {s['value_text']}",
                  f"  record hash (SHA-256 of the stored record): {s['value_hash'].hex()}"]
        if s["doc_hash"]:
            lines.append(f"  document hash: {bytes(s['doc_hash']).hex()}")
    elif fact.kind == "account":
        lines.append(f"account {s['address'].hex()}: nonce {s['nonce']}"
                     + ("" if s["exists"] else " (no account record)"))
        for symbol, b in s["balances"].items():
            lines.append(f"  {symbol}: {_amount(b['amount'], b['decimals'])}")
    elif fact.kind == "tx":
        lines.append(f"transaction {s['hash'].hex()}: {s['type']} by {s['sender'].hex()}, "
                     f"nonce {s['nonce']}, included at index {s['index']}")
        result, reported = s.get("result"), s.get("reported") or {}
        if result is not None:
            lines.append(f"  outcome proven: {'succeeded' if result['ok'] else 'refused'} "
                         f"(code {result['code']})")
        else:
            why = ("the bundle holds no result proof" if s.get("results_committed")
                   else "this block commits no results")
            lines.append(f"  outcome NOT proven ({why}): the node reported "
                         f"{reported.get('status')} {reported.get('code') or ''}".rstrip())
    return lines


def _fact_json(fact: VerifiedFact) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.hex()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value
    return {"verified": True, "kind": fact.kind, "chain_id": fact.chain_id,
            "height": fact.height, "block_hash": fact.block_hash.hex(),
            "timestamp_ms": fact.timestamp_ms, "set_size": fact.set_size,
            "quorum": fact.quorum, "set_changes": fact.set_changes,
            "trusted_from": fact.trusted_from,
            "signers": [{"public_key": s.public_key.hex(), "name": s.name,
                         "name_proven": s.name_proven} for s in fact.signers],
            "subject": plain(fact.subject)}


def _show(fact: VerifiedFact, as_json: bool, elapsed_ms: float | None = None) -> None:
    if as_json:
        print(json.dumps(_fact_json(fact), indent=2, sort_keys=True))
        return
    for line in describe(fact):
        print(line)
    if elapsed_ms is not None:
        print(f"checked offline in {elapsed_ms:.1f} ms")


# ------------------------------------------------------------------ commands


def cmd_proof(args: argparse.Namespace) -> int:
    genesis = _genesis(args.genesis)
    checkpoint = _checkpoint(args.checkpoint)
    client = Client(args.rpc)
    try:
        if args.what == "record":
            namespace, key = _record_name(args.ref)
            bundle = build_record_bundle(client, genesis, namespace, key, checkpoint=checkpoint)
        elif args.what == "payment":
            bundle = build_payment_bundle(client, genesis, _hex_arg(args.ref, "TXHASH", 32),
                                          checkpoint=checkpoint)
        else:
            bundle = build_account_bundle(
                client, genesis, _hex_arg(args.ref, "ADDRESS", 20),
                assets=args.asset or None, checkpoint=checkpoint)
    except BundleSourceError as e:
        raise ProofCliError(str(e)) from e
    try:  # the node is not trusted: a bundle that does not verify is not written
        fact = verify_bundle(bundle, genesis, checkpoint=checkpoint)
    except BundleError as e:
        return _not_verified(e, args.json)
    data = encode_bundle(bundle)
    Path(args.out).write_bytes(data)
    if not args.json:
        print(f"wrote {args.out} ({len(data):,} bytes); it verifies:")
    _show(fact, args.json)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    genesis = _genesis(args.genesis)
    checkpoint = _checkpoint(args.checkpoint)
    data = _read(args.file)
    started = time.perf_counter()
    try:
        fact = verify_bundle(data, genesis, checkpoint=checkpoint)
    except BundleError as e:
        return _not_verified(e, args.json)
    _show(fact, args.json, (time.perf_counter() - started) * 1000)
    return 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ProofCliError(f"cannot read {path}: {e.strerror}") from e


def compute_document_hash(path: str) -> bytes:
    """SHA-256 of the file at `path`, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(DOCUMENT_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as e:
        raise ProofCliError(f"cannot read the document {path}: {e.strerror}") from e
    return digest.digest()


def cmd_verify_document(args: argparse.Namespace) -> int:
    genesis = _genesis(args.genesis)
    checkpoint = _checkpoint(args.checkpoint)
    namespace, key = _record_name(args.record)
    document_hash = compute_document_hash(args.file)
    bundle: bytes | dict[str, Any]
    if args.bundle:
        bundle = _read(args.bundle)
    else:
        try:
            bundle = build_record_bundle(Client(args.rpc), genesis, namespace, key,
                                         checkpoint=checkpoint)
        except BundleSourceError as e:
            raise ProofCliError(str(e)) from e
    try:
        fact = verify_bundle(bundle, genesis, checkpoint=checkpoint)
        if fact.kind != "record" or (fact.subject["namespace"], fact.subject["key"]) != (
                namespace, key):
            raise WrongRecordError(f"the bundle does not prove the record {args.record}")
        check_document(fact, document_hash)
    except BundleError as e:
        return _not_verified(e, args.json)
    if args.json:
        print(json.dumps({**_fact_json(fact), "document_hash": document_hash.hex(),
                          "document_matches": True}, indent=2, sort_keys=True))
        return 0
    print(f"MATCH: the document's SHA-256 {document_hash.hex()} is the hash record "
          f"{args.record} holds")
    _show(fact, False)
    if fact.subject.get("status") != "active":
        print(f"note: the record's status is {fact.subject.get('status')}")
    return 0


def add_proof_commands(sub: Any) -> None:
    """Add `proof`, `verify` and `verify-document` to the govchain parser."""
    p = sub.add_parser("proof", help="write a proof bundle that anyone can check offline")
    p.add_argument("what", choices=["record", "payment", "account"], help="what to prove")
    p.add_argument("ref", help="record: NAMESPACE/KEY; payment: TXHASH; account: ADDRESS")
    p.add_argument("--asset", action="append",
                   help="account: prove only this asset's balance (repeatable)")
    p.add_argument("--out", required=True, help="the bundle file to write")
    p.add_argument("--genesis", required=True,
                   help="the chain's genesis.json (the bundle is checked before it is written)")
    p.add_argument("--checkpoint", metavar="HEIGHT:HASH",
                   help="start the validator-set chain at this trusted block, not genesis")
    add_rpc_option(p)
    p.set_defaults(func=cmd_proof)

    p = sub.add_parser("verify", help="check a proof bundle offline against a genesis file")
    p.add_argument("file", help="the bundle (from `govchain proof` or the explorer)")
    p.add_argument("--genesis", required=True, help="a genesis.json you trust")
    p.add_argument("--checkpoint", metavar="HEIGHT:HASH",
                   help="a block you trust, for bundles that start from it")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("verify-document",
                       help="check a document against the hash a registry record holds")
    p.add_argument("file", help="the document")
    p.add_argument("--record", required=True, help="NAMESPACE/KEY of the record")
    p.add_argument("--genesis", required=True, help="a genesis.json you trust")
    p.add_argument("--bundle", help="a record bundle to check against (no network)")
    p.add_argument("--checkpoint", metavar="HEIGHT:HASH",
                   help="a block you trust, for bundles that start from it")
    add_rpc_option(p)
    p.set_defaults(func=cmd_verify_document)
