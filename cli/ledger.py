"""`govchain tx <type>`, `govchain query <thing>` and `govchain verify-record` for the ledger.

Hooked into node/cli.py's parser by one call (`add_ledger_commands`). A transaction
is submitted at once, or written to a file (`--out`) for multisig members to co-sign
offline (`govchain tx sign --add-signature`) and for one of them to submit
(`govchain tx submit`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair
from chain.genesis import Genesis
from chain.tx import Transaction
from cli.options import add_rpc_option
from ledger.governance import sign_acceptance
from node.config import read_key_file
from node.keystore import PassphraseSource
from sdk import Client
from sdk.tx import load_tx_file, save_tx_file

BYTES_FIELDS = frozenset({"to", "account", "address", "issuer", "public_key", "new_public_key",
                          "report_hash", "doc_hash", "signature", "auditor", "linked"})
"""Fields given as hex on the command line and carried as bytes in the transaction."""

LEDGER_QUERIES = ("asset", "attestations", "record", "record-history", "namespace",
                  "proposal", "proposals", "roles")


class LedgerCliError(ValueError):
    """A user error: node/cli.py prints it as one line and exits with status 1."""


def _hex(text: str, what: str, size: int | None = None) -> bytes:
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as e:
        raise LedgerCliError(f"{what}: {text!r} is not hex") from e
    if size is not None and len(value) != size:
        raise LedgerCliError(f"{what}: expected {size} bytes, got {len(value)}")
    return value


def decode_json_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Hex text to bytes for the byte fields (members, holders: lists of hex keys)."""
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if name in BYTES_FIELDS and isinstance(value, str):
            out[name] = _hex(value, name)
        elif name in ("members", "holders") and isinstance(value, list):
            out[name] = [_hex(str(v), name) for v in value]
        elif isinstance(value, dict):
            out[name] = decode_json_fields(value) if name == "args" else value
        else:
            out[name] = value
    return out


# ------------------------------------------------------------------ tx files


def write_tx_file(path: Path, tx: Transaction) -> dict[str, Any]:
    """Write a tx file in the SDK's format (sdk.tx), for offline co-signing."""
    save_tx_file(path, tx)
    return {"file": str(path), "signatures": len(tx.signatures), "type": tx.tx_type}


def read_tx_file(path: Path) -> Transaction:
    try:
        return load_tx_file(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LedgerCliError(f"{path} is not a govchain transaction file: {e}") from e


def _submit_or_save(args: argparse.Namespace, tx_type: str, fields: dict[str, Any]
                    ) -> dict[str, Any]:
    client = Client(args.rpc)
    key = read_key_file(Path(args.key), PassphraseSource(file=args.passphrase_file))
    sender = _hex(args.sender, "sender", 20) if args.sender else key.address
    chain_id = args.chain_id or client.status()["chain_id"]
    nonce = args.nonce if args.nonce is not None else client.next_nonce(sender)
    tx = Transaction(chain_id, sender, nonce, tx_type, fields).with_signature(key)  # type: ignore[arg-type]
    if args.out:
        return write_tx_file(Path(args.out), tx)
    result: dict[str, Any] = client.submit(tx, wait="final" if args.wait else None)
    return result


# ------------------------------------------------------------------ tx commands


def _fields_propose(a: argparse.Namespace) -> dict[str, Any]:
    try:
        action_args = json.loads(a.args)
    except ValueError as e:
        raise LedgerCliError(f"--args is not JSON: {e}") from e
    if not isinstance(action_args, dict):
        raise LedgerCliError("--args must be a JSON object")
    expiry = a.expiry_height
    if expiry is None:
        expiry = int(Client(a.rpc).status()["height"]) + a.expires_in
    return {"action": a.action, "args": decode_json_fields({"args": action_args})["args"],
            "expiry_height": expiry}


def _fields_accept(a: argparse.Namespace) -> dict[str, Any]:
    candidate = read_key_file(Path(a.candidate_key),
                              PassphraseSource(file=a.candidate_passphrase_file))
    chain_id = a.chain_id or Client(a.rpc).status()["chain_id"]
    return {"public_key": candidate.public_key, "name": a.name,
            "signature": sign_acceptance(chain_id, candidate, a.name)}


def _fields_record(a: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {"namespace": a.namespace, "key": a.record_key}
    if a.value is not None:
        fields["value"] = a.value.encode()
    if a.value_hex is not None:
        fields["value"] = _hex(a.value_hex, "--value-hex")
    if a.doc_hash:
        fields["doc_hash"] = _hex(a.doc_hash, "--doc-hash", 32)
    if a.meta:
        fields["metadata"] = dict(item.partition("=")[::2] for item in a.meta)
    return fields


def _fields_policy(a: argparse.Namespace) -> dict[str, Any]:
    return {"threshold": a.threshold, "members": [_hex(m, "--member", 32) for m in a.member]}


TX_COMMANDS: dict[str, tuple[str, str, Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "propose": ("propose", "propose a governance action (validators)", _fields_propose),
    "vote": ("vote", "approve a governance proposal (validators)",
             lambda a: {"proposal": a.proposal}),
    "validator-accept": ("validator_accept", "prove possession of a candidate validator key",
                         _fields_accept),
    "mint": ("mint", "mint an asset (issuer)",
             lambda a: {"asset": a.asset, "to": _hex(a.to, "--to", 20), "amount": a.amount}),
    "burn": ("burn", "burn (redeem) your own holding",
             lambda a: {"asset": a.asset, "amount": a.amount}),
    "attest": ("attest", "post a reserve attestation (auditor)",
               lambda a: {"asset": a.asset, "reserve": a.reserve,
                          "report_hash": _hex(a.report_hash, "--report-hash", 32),
                          "timestamp_ms": a.timestamp_ms}),
    "freeze": ("freeze", "freeze an account for an asset (compliance)",
               lambda a: {"asset": a.asset, "account": _hex(a.account, "--account", 20)}),
    "unfreeze": ("unfreeze", "unfreeze an account for an asset (compliance)",
                 lambda a: {"asset": a.asset, "account": _hex(a.account, "--account", 20)}),
    "multisig-create": ("multisig_create", "create an M-of-N account", _fields_policy),
    "multisig-update": ("multisig_update", "change a multisig's members (M signatures)",
                        _fields_policy),
    "record-put": ("record_put", "put a new registry record (writer)", _fields_record),
    "record-update": ("record_update", "update a registry record (writer)", _fields_record),
    "record-status": ("record_status", "set a record's status (writer)",
                      lambda a: {"namespace": a.namespace, "key": a.record_key,
                                 "status": a.status, **({"reason": a.reason} if a.reason
                                                        else {})}),
}


def _add_tx_arguments(name: str, p: argparse.ArgumentParser) -> None:
    if name == "propose":
        p.add_argument("--action", required=True,
                       help="the governance action, e.g. grant_role (docs/ledger.md)")
        p.add_argument("--args", required=True, help="JSON object; byte fields as hex")
        p.add_argument("--expires-in", type=int, default=1000, help="blocks from the head")
        p.add_argument("--expiry-height", type=int,
                       help="the last height at which it may pass (instead of --expires-in)")
    elif name == "vote":
        p.add_argument("--proposal", type=int, required=True, help="the proposal's id")
    elif name == "validator-accept":
        p.add_argument("--candidate-key", required=True, help="the new validator's key file")
        p.add_argument("--name", required=True, help="the validator's name, e.g. ministry")
        p.add_argument("--candidate-passphrase-file",
                       help="passphrase of an encrypted candidate key file (else "
                            "$GOVCHAIN_KEY_PASSPHRASE(_FILE) or a prompt)")
    elif name in ("mint", "burn", "attest", "freeze", "unfreeze"):
        p.add_argument("--asset", required=True, help="the asset's symbol, e.g. KGS")
        if name == "mint":
            p.add_argument("--to", required=True, help="the recipient's address (hex)")
        if name in ("mint", "burn"):
            p.add_argument("--amount", type=int, required=True,
                           help="in the asset's smallest unit")
        if name == "attest":
            p.add_argument("--reserve", type=int, required=True,
                           help="the audited reserve, in the asset's smallest unit")
            p.add_argument("--report-hash", required=True, help="sha256 of the audit report")
            p.add_argument("--timestamp-ms", type=int, required=True,
                           help="when the reserve was audited, ms since the Unix epoch")
        if name in ("freeze", "unfreeze"):
            p.add_argument("--account", required=True, help="the account's address (hex)")
    elif name.startswith("multisig"):
        p.add_argument("--threshold", type=int, required=True,
                       help="signatures needed (M of the N members)")
        p.add_argument("--member", action="append", required=True, help="member public key")
    else:
        p.add_argument("--namespace", required=True, help="the registry namespace")
        p.add_argument("--record-key", required=True, help="the record's key in it")
        if name == "record-status":
            p.add_argument("--status", required=True,
                           choices=["active", "suspended", "revoked"], help="the new status")
            p.add_argument("--reason", help="why, kept with the record")
        else:
            p.add_argument("--value", help="UTF-8 text value")
            p.add_argument("--value-hex", help="binary value, hex (instead of --value)")
            p.add_argument("--doc-hash", help="sha256 of the document, hex")
            p.add_argument("--meta", action="append", metavar="NAME=TEXT",
                           help="a metadata entry; repeatable")
    add_common_tx_arguments(p)


def add_common_tx_arguments(p: argparse.ArgumentParser) -> None:
    """--key, --sender, --nonce, --chain-id, --out, --no-wait, --rpc: every tx command's."""
    p.add_argument("--key", required=True, help="signer's key file")
    p.add_argument("--passphrase-file", help="passphrase of an encrypted --key (else "
                   "$GOVCHAIN_KEY_PASSPHRASE(_FILE) or a prompt)")
    p.add_argument("--sender", help="multisig account address (default: the key's)")
    p.add_argument("--nonce", type=int, help="default: the account's next nonce")
    p.add_argument("--chain-id", help="default: the node's")
    p.add_argument("--out", help="write the signed tx to this file instead of submitting")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="return once admitted instead of waiting for finality")
    add_rpc_option(p)


def make_tx_command(tx_type: str, build: Callable[[argparse.Namespace], dict[str, Any]]
                     ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        result = _submit_or_save(args, tx_type, build(args))
        _print(result, args.json)
        return 1 if result.get("status") == "rejected" else 0
    return run


# ------------------------------------------------------------------ queries


def run_ledger_query(client: Client, what: str, ref: str | None,
                     extra: str | None = None) -> Any:
    def need(text: str) -> str:
        if not ref:
            raise LedgerCliError(f"query {what} needs {text}")
        return ref

    if what == "asset":
        params: dict[str, Any] = {"asset": need("an asset symbol")}
        if extra:
            params["holder"] = extra
        return client.call("state_asset", **params)
    if what == "attestations":
        return client.call("state_attestations", asset=need("an asset symbol"))
    if what in ("record", "record-history"):
        namespace, _, key = need("NAMESPACE/KEY").partition("/")
        method = "state_record" if what == "record" else "state_record_history"
        return client.call(method, namespace=namespace, key=key)
    if what == "namespace":
        return client.call("state_namespace", namespace=need("a namespace"))
    if what == "proposal":
        return client.call("state_proposal", id=int(need("a proposal id")))
    if what == "proposals":
        filters: dict[str, Any] = {"status": ref} if ref else {}
        return client.call("state_proposals", **filters)
    if what == "roles":
        return client.call("state_roles", address=need("an address"))
    raise LedgerCliError(f"unknown query {what!r}")


def cmd_verify_record(args: argparse.Namespace) -> int:
    """Fetch the record's proof bundle and check it: the validator-set changes from
    genesis (one request per 256), not every block (sdk.bundle)."""
    from sdk.bundle import BundleError, verify_bundle
    from sdk.bundle_builder import BundleSourceError, build_record_bundle

    genesis = Genesis.from_json(Path(args.genesis).read_text())
    namespace, _, key = args.record.partition("/")
    try:
        fact = verify_bundle(build_record_bundle(Client(args.rpc), genesis, namespace, key),
                             genesis)
    except (BundleError, BundleSourceError) as e:
        raise LedgerCliError(f"NOT VERIFIED: {e}") from e
    record = {k: v for k, v in fact.subject.items() if k != "value_text"}
    _print({"verified": True, "height": fact.height, "record": _jsonable(record),
            "signed_by": [s.name for s in fact.signers]}, args.json)
    return 0


def cmd_verify_private(args: argparse.Namespace) -> int:
    """A citizen's check of a private record's payload: only the record is fetched."""
    from sdk.ledger import VerificationError
    from sdk.private import verify_private_record

    genesis = Genesis.from_json(Path(args.genesis).read_text())
    namespace, _, key = args.record.partition("/")
    try:
        salt = bytes.fromhex(args.salt)
    except ValueError as e:
        raise LedgerCliError("--salt must be the 32-byte salt as hex") from e
    payload = Path(args.payload).read_bytes()
    try:
        record, height = verify_private_record(Client(args.rpc), genesis, namespace, key,
                                               salt, payload)
    except (VerificationError, ValueError) as e:
        raise LedgerCliError(f"NOT VERIFIED: {e}") from e
    _print({"verified": True, "height": height, "record": _jsonable(record)}, args.json)
    return 0


# ------------------------------------------------------------------ wiring


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _print(doc: Any, as_json: bool) -> None:
    if as_json or not isinstance(doc, dict):
        print(json.dumps(_jsonable(doc), indent=2, sort_keys=True))
        return
    width = max((len(str(k)) for k in doc), default=0)
    for key, value in doc.items():
        if isinstance(value, dict | list):
            value = json.dumps(_jsonable(value))
        print(f"{str(key).ljust(width)}  {value}")


def _subparsers_of(parser: argparse.ArgumentParser) -> Any:
    # argparse has no public accessor for a parser's subcommand table.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise AssertionError("parser has no subcommands")


def add_ledger_commands(sub: Any) -> None:
    """Add the ledger's tx subcommands, queries and verify-record to the govchain parser."""
    tx_sub = _subparsers_of(sub.choices["tx"])
    for name, (tx_type, summary, build) in TX_COMMANDS.items():
        p = tx_sub.add_parser(name, help=summary)
        _add_tx_arguments(name, p)
        p.set_defaults(func=make_tx_command(tx_type, build))
    # `tx sign` (offline co-signing) and `tx send-file` / `tx submit` are the SDK's
    # (node/cli_sdk.py), over the same tx file format.

    query = sub.choices["query"]
    what = next(a for a in query._actions if a.dest == "what")
    what.choices = [*what.choices, *LEDGER_QUERIES]
    query.add_argument("extra", nargs="?", help="asset: a holder address")
    base = query.get_default("func")

    def cmd_query(args: argparse.Namespace) -> int:
        if args.what not in LEDGER_QUERIES:
            result: int = base(args)
            return result
        _print(run_ledger_query(Client(args.rpc), args.what, args.ref, args.extra), args.json)
        return 0
    query.set_defaults(func=cmd_query)

    _add_recovery_commands(sub)
    p = sub.add_parser("verify-record",
                       help="fetch a record with its proof and verify it from genesis")
    p.add_argument("record", help="NAMESPACE/KEY")
    p.add_argument("--genesis", required=True, help="the chain's genesis.json")
    add_rpc_option(p)
    p.set_defaults(func=cmd_verify_record)
    p = sub.add_parser("verify-private",
                       help="verify a private record's payload you hold against the chain, "
                            "from genesis; the payload is not sent anywhere")
    p.add_argument("record", help="NAMESPACE/KEY")
    p.add_argument("--payload", required=True, help="file holding the payload")
    p.add_argument("--salt", required=True, help="the payload's 32-byte salt, hex")
    p.add_argument("--genesis", required=True, help="the chain's genesis.json")
    add_rpc_option(p)
    p.set_defaults(func=cmd_verify_private)


# ------------------------------------------------------------------ recovery


def cmd_recovery_export(args: argparse.Namespace) -> int:
    from chain.crypto import PublicKey
    from chain.vote import Validator
    from node.ops.recovery import export_recovery, write_json

    validators = []
    for text in args.validator or []:
        key, _, name = text.partition("=")
        validators.append(Validator(PublicKey(_hex(key, "--validator", 32)), name))
    export = export_recovery(Path(args.home), args.chain_id, args.genesis_time_ms,
                             validators or None)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "genesis.json").write_text(export.genesis.to_json())
    write_json(out / "override.json", export.override)
    _print({"genesis": str(out / "genesis.json"), "override": str(out / "override.json"),
            "genesis_hash": export.genesis.hash.hex(),
            "height": export.override["height"]}, args.json)
    return 0


def cmd_recovery_sign(args: argparse.Namespace) -> int:
    from node.ops.recovery import sign_override, write_json

    path = Path(args.override)
    override = sign_override(json.loads(path.read_text()), read_key_file(Path(args.key)))
    write_json(path, override)
    _print({"override": str(path), "signatures": len(override["signatures"])}, args.json)
    return 0


def cmd_recovery_verify(args: argparse.Namespace) -> int:
    from node.ops.recovery import verify_override

    genesis = Genesis.from_json(Path(args.genesis).read_text())
    report = verify_override(genesis, json.loads(Path(args.override).read_text()),
                             Path(args.old_home) if args.old_home else None)
    _print(report, args.json)
    return 0 if report["all_new_validators_signed"] else 1


def _add_recovery_commands(sub: Any) -> None:
    recovery = sub.add_parser("recovery", help="emergency restart of a chain that lost its "
                              "quorum (docs/ledger.md)")
    rsub = recovery.add_subparsers(dest="recovery_command", required=True)
    p = rsub.add_parser("export", help="new genesis from a stopped node's last final state")
    p.add_argument("--home", required=True, help="a stopped node's home on the old chain")
    p.add_argument("--chain-id", required=True, help="the recovered chain's new id")
    p.add_argument("--genesis-time-ms", type=int, required=True,
                   help="the recovered chain's genesis time, ms since the Unix epoch")
    p.add_argument("--validator", action="append", metavar="PUBLIC_KEY=NAME",
                   help="the new validator set (default: the last set in force)")
    p.add_argument("--out-dir", required=True,
                   help="folder for the new genesis.json and override.json")
    p.set_defaults(func=cmd_recovery_export)
    p = rsub.add_parser("sign", help="sign the override with your validator key")
    p.add_argument("--override", required=True, help="the override.json to sign")
    p.add_argument("--key", required=True, help="your validator key file")
    p.set_defaults(func=cmd_recovery_sign)
    p = rsub.add_parser("verify", help="check the snapshot and list the signers")
    p.add_argument("--override", required=True, help="the override.json to check")
    p.add_argument("--genesis", required=True, help="the recovered chain's genesis.json")
    p.add_argument("--old-home", help="a node home of the old chain to compare against")
    p.set_defaults(func=cmd_recovery_verify)


# ------------------------------------------------------------------ devnet genesis


DEV_STABLECOIN = "KGS"
DEV_NAMESPACE = "licenses"
DEV_RESERVE = 100_000_000  # 1,000,000.00 KGS (2 decimals)


def add_dev_ledger(genesis: Genesis, accounts: list[KeyPair], balance: int) -> Genesis:
    """The devnet's ledger: stablecoin KGS (reserve-backed, a genesis attestation), its
    issuer/auditor/compliance on dev accounts 0/1/2, namespace "licenses" with account 3
    as writer, and a 2-of-3 treasury over accounts 0-2 funded like a dev account."""
    from dataclasses import replace

    from chain.crypto import compute_hash, compute_multisig_address
    from chain.genesis import GenesisAccount

    def holder(i: int) -> str:
        return accounts[i % len(accounts)].address.hex()

    grants = [{"role": role, "scope": DEV_STABLECOIN, "address": holder(i)}
              for i, role in enumerate(("issuer", "auditor", "compliance"))]
    grants.append({"role": "writer", "scope": DEV_NAMESPACE, "address": holder(3)})
    app_state: dict[str, Any] = {
        "assets": {"assets": [{
            "symbol": DEV_STABLECOIN, "name": "Som stablecoin (gold-backed)", "decimals": 2,
            "reserve_backed": True,
            "attestation": {"reserve": DEV_RESERVE,
                            "report_hash": compute_hash(b"devnet reserve report").hex(),
                            "timestamp_ms": genesis.genesis_time_ms}}]},
        "registry": {"namespaces": [{"name": DEV_NAMESPACE, "max_value_bytes": 4096,
                                     "description": "licences of crypto-asset providers"}]},
        "roles": {"grants": grants},
    }
    extra: tuple[GenesisAccount, ...] = ()
    if len(accounts) >= 3:
        members = tuple(k.public_key for k in accounts[:3])
        app_state["multisig"] = {"accounts": [{"threshold": 2,
                                               "members": [m.hex() for m in members]}]}
        extra = (GenesisAccount(compute_multisig_address(2, members),
                                {"GOV": balance}),)
    return replace(genesis, accounts=genesis.accounts + extra,
                   app_state={**genesis.app_state, **app_state})


parse_hex = _hex
print_doc = _print
"""For the other ledger command modules (cli/stablecoin.py)."""

__all__ = [
    "LedgerCliError",
    "add_common_tx_arguments",
    "add_dev_ledger",
    "add_ledger_commands",
    "decode_json_fields",
    "make_tx_command",
    "parse_hex",
    "print_doc",
    "read_tx_file",
    "write_tx_file",
]
