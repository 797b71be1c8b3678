"""CLI commands over the SDK: tx build/sign/send-file/status, subscribe, admin, rpc.

Every command prints a human table, or JSON with `--json` (accepted before or after
the subcommand). Anything that waits shows progress on stderr when stderr is a
terminal, and one line otherwise; stdout stays clean for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from cli.options import FIELD_INT, add_rpc_option
from node.config import ADMIN_TOKEN_FILE
from sdk import (
    AsyncClient,
    Client,
    add_signature_to_file,
    build_tx,
    load_key,
    load_tx_file,
    save_tx_file,
    sign_tx,
    tx_to_json,
)
from sdk.client import TX_NOTIFICATION_TIMEOUT_S

# ------------------------------------------------------------------ output


def render_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as an aligned text table (columns: the union of keys, in order)."""
    if not rows:
        return "(none)"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def render(doc: Any, as_json: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if as_json:
        print(json.dumps(doc, indent=2, sort_keys=True), file=out)
    elif isinstance(doc, list) and all(isinstance(r, dict) for r in doc):
        print(render_table(doc), file=out)
    elif isinstance(doc, dict):
        width = max((len(str(k)) for k in doc), default=0)
        for key, value in doc.items():
            print(f"{str(key).ljust(width)}  {_cell(value) if value is not None else '-'}",
                  file=out)
    else:
        print(doc, file=out)


class Progress:
    """A one-line progress indication on stderr while something waits."""

    FRAMES = "|/-\\"

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.ticks = 0
        self.is_tty = self.stream.isatty()
        if not self.is_tty:
            print(f"{label} ...", file=self.stream, flush=True)

    def update(self, info: dict[str, Any] | None = None) -> None:
        self.ticks += 1
        if not self.is_tty:
            return
        detail = ""
        if info and info.get("waiting_for"):
            detail = f" ({info['waiting_for']})"
        elapsed = time.monotonic() - self.started
        frame = self.FRAMES[self.ticks % len(self.FRAMES)]
        self.stream.write(f"\r{frame} {self.label} {elapsed:5.1f} s{detail}\033[K")
        self.stream.flush()

    def done(self, outcome: str) -> None:
        elapsed = time.monotonic() - self.started
        if self.is_tty:
            self.stream.write("\r\033[K")
        print(f"{self.label}: {outcome} after {elapsed:.1f} s", file=self.stream, flush=True)


def submit_and_show(client: Client, tx: Any, *, wait: bool, as_json: bool,
                    timeout_s: float = 60.0) -> int:
    """Submit `tx`; with `wait`, show progress until final or rejected. Exit status."""
    info = client.submit(tx)
    if wait and info["status"] not in ("final", "rejected"):
        progress = Progress(f"tx {tx.hash.hex()[:16]}... waiting for finality")
        try:
            info = client.wait_final(tx.hash, timeout_s, poll_s=0.2, on_wait=progress.update)
        except TimeoutError:
            progress.done("still pending")
            info = client.get_tx(tx.hash)
            render(info, as_json)
            return 2
        progress.done(info["status"])
    render(info, as_json)
    return 1 if info["status"] == "rejected" else 0


def _client(args: argparse.Namespace) -> Client:
    token = None
    if getattr(args, "admin_token_file", None):
        token = Path(args.admin_token_file).read_text().strip()
    return Client(args.rpc, admin_token=token)


def _parse_fields(pairs: list[str] | None, fields_json: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(fields_json) if fields_json else {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--field expects NAME=VALUE, got {pair!r}")
        fields[name] = _field_int(name, text) if text.lstrip("-").isdigit() else text
    return fields


def _field_int(name: str, text: str) -> int:
    try:
        return FIELD_INT(text)
    except argparse.ArgumentTypeError as e:
        raise ValueError(f"--field {name}: {e}") from None


# ------------------------------------------------------------------ commands


def cmd_tx_build(args: argparse.Namespace) -> int:
    key = load_key(args.key) if args.key else None
    sender = bytes.fromhex(args.sender.removeprefix("0x")) if args.sender else \
        key.address if key else None
    if sender is None:
        raise ValueError("tx build needs --key or --sender")
    needs_node = args.chain_id is None or args.nonce is None
    client = _client(args) if needs_node else None
    chain_id = args.chain_id or (client.chain_id if client else "")
    nonce = args.nonce if args.nonce is not None else client.next_nonce(sender) \
        if client else 0
    tx = build_tx(chain_id, args.type, _parse_fields(args.field, args.fields_json),
                  sender=sender, nonce=nonce)
    if key is not None and args.sign:
        tx = tx.with_signature(key)
    save_tx_file(args.out, tx)
    render({"file": args.out, **tx_to_json(tx)}, args.json)
    return 0


def cmd_tx_sign(args: argparse.Namespace) -> int:
    if args.out:
        tx = sign_tx(load_tx_file(args.file), load_key(args.key))
        save_tx_file(args.out, tx)
    else:
        tx = add_signature_to_file(args.file, load_key(args.key))
    render({"file": args.out or args.file, "hash": tx.hash.hex(),
            "signers": ["0x" + k.hex() for k in tx.signer_keys]}, args.json)
    return 0


def cmd_tx_send_file(args: argparse.Namespace) -> int:
    return submit_and_show(_client(args), load_tx_file(args.file), wait=args.wait,
                           as_json=args.json, timeout_s=args.timeout)


def cmd_tx_status(args: argparse.Namespace) -> int:
    client = _client(args)
    info = client.get_tx(args.hash)
    if args.wait and info["status"] == "pending":
        progress = Progress(f"tx {args.hash[:16]}... waiting for finality")
        try:
            info = client.wait_final(args.hash, args.timeout, poll_s=0.2,
                                     on_wait=progress.update)
            progress.done(info["status"])
        except TimeoutError:
            progress.done("still pending")
            info = client.get_tx(args.hash)
    render(info, args.json)
    return 0 if info["status"] == "final" else 1


def cmd_subscribe(args: argparse.Namespace) -> int:
    """Print notifications, one line each (JSON lines with --json), until --count."""
    filter_ = dict(item.split("=", 1) for item in args.filter or [])

    async def run() -> int:
        async with AsyncClient(args.rpc) as client:
            subscription = client.subscribe(args.topic, from_height=args.from_height,
                                            tx_hash=args.hash, filter=filter_ or None,
                                            timeout_s=args.timeout)
            seen = 0
            async for result in subscription:
                if args.json:
                    print(json.dumps(result, sort_keys=True), flush=True)
                elif result["type"] == "block":
                    print(f"block {result['height']:>8}  {result['hash'][:16]}...  "
                          f"txs={len(result['txs'])}", flush=True)
                elif result["type"] == "events":
                    for event in result["events"]:
                        print(f"height {result['height']:>8}  {event['kind']:<16} "
                              f"{json.dumps(event['attributes'], sort_keys=True)}",
                              flush=True)
                else:
                    render(result, False)
                seen += 1
                if args.count and seen >= args.count:
                    await subscription.close()
                    break
        return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 130


def cmd_admin(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.admin_command == "peers":
        peers = client.call("admin_peers")
        rows = [{"node_id": p["node_id"][:16] + "...", "address": p["address"],
                 "direction": p["direction"], "validator": p["is_validator"],
                 "height": p["status_height"], "score": round(p["score"], 2)}
                for p in peers]
        render(peers if args.json else rows, args.json)
    elif args.admin_command == "peer-add":
        render(client.call("admin_peer_add", address=args.address), args.json)
    elif args.admin_command == "peer-remove":
        render(client.call("admin_peer_remove", node_id=args.node_id), args.json)
    else:
        render(client.call("admin_mempool_flush"), args.json)
    return 0


def cmd_rpc(args: argparse.Namespace) -> int:
    """Call any method: `govchain rpc METHOD '{"param": ...}'`."""
    params = json.loads(args.params) if args.params else {}
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    render(_client(args).call(args.method, **params), args.json)
    return 0


# ------------------------------------------------------------------ parser


def add_sdk_commands(sub: Any, tx_sub: Any) -> None:
    """Add the SDK commands to the `govchain` parser (called once by cli/main.py)."""
    p = tx_sub.add_parser("build", help="build a transaction of any type into a tx file")
    p.add_argument("--type", required=True, help="tx type, e.g. transfer")
    p.add_argument("--field", action="append", metavar="NAME=VALUE",
                   help="a field; digits become integers, 0x... becomes bytes")
    p.add_argument("--fields-json", help="all fields as a JSON object")
    p.add_argument("--key", help="the sender's key file (also signs unless --no-sign)")
    p.add_argument("--sender", help="sender address (a multisig account) instead of --key")
    p.add_argument("--no-sign", dest="sign", action="store_false",
                   help="write the tx unsigned, for offline signers (`tx sign`)")
    p.add_argument("--nonce", type=int, help="default: the account's next nonce (asks --rpc)")
    p.add_argument("--chain-id", help="default: the node's (asks --rpc)")
    p.add_argument("--out", required=True, help="the tx file to write")
    add_rpc_option(p)
    p.set_defaults(func=cmd_tx_build)

    p = tx_sub.add_parser("sign", help="add a signature to a tx file (offline, multisig)")
    p.add_argument("file", help="the tx file (from `tx build`)")
    p.add_argument("--key", required=True, help="the signer's key file")
    p.add_argument("--add-signature", action="store_true",
                   help="accepted for clarity: signing always adds to the ones there")
    p.add_argument("--out", help="write the co-signed tx here instead of updating the file")
    p.set_defaults(func=cmd_tx_sign)

    p = tx_sub.add_parser("send-file", aliases=["submit"], help="submit a signed tx file")
    p.add_argument("file", help="the signed tx file")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="return once admitted instead of waiting for finality")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for finality")
    add_rpc_option(p)
    p.set_defaults(func=cmd_tx_send_file)

    p = tx_sub.add_parser("status", help="a transaction's status (pending says why)")
    p.add_argument("hash", help="the transaction's hash (hex)")
    p.add_argument("--wait", action="store_true", help="wait until final or rejected")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait with --wait")
    add_rpc_option(p)
    p.set_defaults(func=cmd_tx_status)

    p = sub.add_parser("subscribe", help="follow blocks, events or one tx over /ws")
    p.add_argument("topic", choices=["blocks", "events", "tx"], help="what to follow")
    p.add_argument("--from-height", type=int, help="replay final blocks from this height, "
                   "then follow live (default: the next block)")
    p.add_argument("--hash", help="tx hash (topic tx)")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="events: kind, account, asset, namespace or tx_type")
    p.add_argument("--count", type=int, help="stop after this many notifications")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="longest wait for each notification, then exit with an error "
                   f"(default: {TX_NOTIFICATION_TIMEOUT_S:g} for tx; none for blocks and "
                   "events, which may be quiet for long)")
    add_rpc_option(p)
    p.set_defaults(func=cmd_subscribe)

    admin = sub.add_parser("admin", help="admin methods (localhost or the admin token)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    for name, help_text in [("peers", "connected peers"), ("peer-add", "dial a peer"),
                            ("peer-remove", "disconnect a peer"),
                            ("mempool-flush", "drop every pending tx")]:
        p = admin_sub.add_parser(name, help=help_text)
        if name == "peer-add":
            p.add_argument("address", help="host:port")
        if name == "peer-remove":
            p.add_argument("node_id", help="the peer's node id (hex, from `admin peers`)")
        p.add_argument("--admin-token-file", help=f"HOME/{ADMIN_TOKEN_FILE} of the node")
        add_rpc_option(p)
        p.set_defaults(func=cmd_admin)

    p = sub.add_parser("rpc", help="call any JSON-RPC method")
    p.add_argument("method", help="the method's name, e.g. node_status (rpc_discover "
                   "lists them)")
    p.add_argument("params", nargs="?", help="JSON object of params")
    p.add_argument("--admin-token-file", help=f"HOME/{ADMIN_TOKEN_FILE} of the node, "
                   "for admin methods called from elsewhere than localhost")
    add_rpc_option(p)
    p.set_defaults(func=cmd_rpc)


def add_json_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let `--json` follow any subcommand too, not only precede it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--json" in a.option_strings for a in child._actions):
                    child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                       help="machine-readable output")
                add_json_everywhere(child)
