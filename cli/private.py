"""`govchain private ...`: private registry records from the command line (docs/privacy.md).

`put` draws the salt, puts the commitment on the chain and, once final, hands the
payload to the holder node it talks to (an admin call: run it on the ministry's own
node); the salt is written beside the payload, for the citizen. `grant`, `revoke`
and `erase` send the chain transactions; `read` and `reads` send a signed request.
Hooked into the parser by `add_private_commands`; no logic a library user would need.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from chain.tx import Transaction
from cli.ledger import LedgerCliError, _print
from cli.options import add_rpc_option
from node.config import read_key_file
from sdk import Client
from sdk.private import make_commitment, sign_read_request, verify_payload


def _split_ref(ref: str) -> tuple[str, str]:
    namespace, _, key = ref.partition("/")
    if not namespace or not key:
        raise LedgerCliError(f"{ref!r}: expected NAMESPACE/KEY")
    return namespace, key


def _address(text: str, what: str) -> bytes:
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as e:
        raise LedgerCliError(f"{what}: {text!r} is not hex") from e
    if len(value) != 20:
        raise LedgerCliError(f"{what}: expected a 20-byte address")
    return value


def _send(args: argparse.Namespace, tx_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    client = Client(args.rpc)
    key = read_key_file(Path(args.key))
    tx = Transaction(client.chain_id, key.address, client.next_nonce(key.address), tx_type,
                     fields).with_signature(key)
    result: dict[str, Any] = client.submit(tx, wait="final")
    if result.get("status") != "final":
        raise LedgerCliError(f"{tx_type} {result.get('status')}: {result.get('code')} "
                             f"{result.get('message', '')}".strip())
    return result


def cmd_put(args: argparse.Namespace) -> int:
    namespace, key = _split_ref(args.record)
    payload = Path(args.payload).read_bytes()
    salt, commitment = make_commitment(payload)
    salt_file = Path(args.salt_out or f"{args.payload}.salt")
    salt_file.write_text(salt.hex() + "\n")
    fields: dict[str, Any] = {"namespace": namespace, "key": key, "commitment": commitment}
    if args.subject:
        fields["subject"] = _address(args.subject, "--subject")
    if args.meta:
        fields["metadata"] = dict(item.partition("=")[::2] for item in args.meta)
    result = _send(args, "private_put", fields)
    Client(args.rpc).call("private_submit", namespace=namespace, key=key, salt=salt.hex(),
                          payload=payload.hex())
    _print({"record": args.record, "height": result["height"],
            "commitment": commitment.hex(), "salt_file": str(salt_file)}, args.json)
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    namespace, key = _split_ref(args.record)
    expires_ms = int(time.time() * 1000) + args.hours * 3_600_000
    result = _send(args, "private_grant", {"namespace": namespace, "key": key,
                                           "grantee": _address(args.grantee, "--grantee"),
                                           "expires_ms": expires_ms})
    _print({"record": args.record, "height": result["height"], "expires_ms": expires_ms},
           args.json)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    namespace, key = _split_ref(args.record)
    result = _send(args, "private_revoke", {"namespace": namespace, "key": key,
                                            "grantee": _address(args.grantee, "--grantee")})
    _print({"record": args.record, "height": result["height"]}, args.json)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    namespace, key = _split_ref(args.record)
    result = _send(args, "private_erase", {"namespace": namespace, "key": key,
                                           "reason": args.reason})
    _print({"record": args.record, "height": result["height"]}, args.json)
    return 0


def _signed_call(args: argparse.Namespace, action: str) -> dict[str, Any]:
    namespace, key = _split_ref(args.record)
    client = Client(args.rpc)
    params = sign_read_request(read_key_file(Path(args.key)), client.chain_id, action,
                               namespace, key, int(time.time() * 1000))
    answer: dict[str, Any] = client.call("private_read" if action == "read"
                                         else "private_reads", **params)
    return answer


def cmd_read(args: argparse.Namespace) -> int:
    answer = _signed_call(args, "read")
    payload, salt = bytes.fromhex(answer["payload"]), bytes.fromhex(answer["salt"])
    verify_payload({"commitment": bytes.fromhex(answer["commitment"])}, salt, payload)
    Path(args.out).write_bytes(payload)
    _print({"record": args.record, "out": args.out, "salt": salt.hex(),
            "basis": answer["basis"], "opens_commitment": True}, args.json)
    return 0


def cmd_reads(args: argparse.Namespace) -> int:
    _print(_signed_call(args, "reads"), True)
    return 0


def add_private_commands(sub: Any) -> None:
    """Add `govchain private put|grant|revoke|erase|read|reads` to the parser."""
    top = sub.add_parser("private", help="private registry records (docs/privacy.md)")
    commands = top.add_subparsers(dest="private_command", required=True)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        p.add_argument("record", help="NAMESPACE/KEY")
        p.add_argument("--key", required=True, help="signer's key file")
        add_rpc_option(p)
        p.set_defaults(func=func)
        return p

    p = command("put", "commit to a payload on the chain and hand it to this holder node "
                "(writer; admin RPC)", cmd_put)
    p.add_argument("--payload", required=True, help="file holding the payload")
    p.add_argument("--subject", help="the citizen's address (may grant reads)")
    p.add_argument("--meta", action="append", metavar="NAME=TEXT",
                   help="public metadata the namespace allows; repeatable")
    p.add_argument("--salt-out", help="where to write the salt (default: PAYLOAD.salt)")
    for name, func, help_text in (("grant", cmd_grant, "let an account read (subject, writer)"),
                                  ("revoke", cmd_revoke, "withdraw a grant")):
        p = command(name, help_text, func)
        p.add_argument("--grantee", required=True, help="the reader's address")
        if name == "grant":
            p.add_argument("--hours", type=int, default=24, help="how long it lasts")
    p = command("erase", "order the payload erased (authority)", cmd_erase)
    p.add_argument("--reason", required=True, help="the order, e.g. its reference")
    p = command("read", "fetch the payload with a signed request and check it", cmd_read)
    p.add_argument("--out", required=True, help="file to write the payload to")
    command("reads", "who read the record (subject, writers, holders, authorities)", cmd_reads)
