"""`govchain genesis statement | assemble | hash`: the genesis ceremony (chain/ceremony.py).

A ministry signs a statement with its own key; a coordinator assembles genesis.json
from statements alone; every ministry prints the hash to compare it before `init
--expect-genesis-hash`. No command here reads another ministry's key, and none writes
a file before everything it depends on has been checked.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from chain.ceremony import (
    GenesisStatement,
    InvalidStatementError,
    assemble_genesis,
    make_statement,
)
from chain.errors import InvalidGenesisError
from chain.genesis import ChainParams, GenesisAccount
from cli.sdk import render
from node.config import read_genesis, read_key_file
from node.keystore import ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, PassphraseSource


def read_statement(path: Path) -> GenesisStatement:
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidStatementError(f"cannot read statement {path}: {e}") from e
    return GenesisStatement.from_json(text, str(path))


def read_accounts(path: Path) -> tuple[GenesisAccount, ...]:
    """The accounts file: a JSON list in the form of genesis.json's "accounts"."""
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InvalidGenesisError(f"cannot read accounts {path}: {e}") from e
    if not isinstance(items, list):
        raise InvalidGenesisError(f"accounts {path} must be a JSON list of "
                                  '{"address": hex, "balances": {...}}')
    return tuple(GenesisAccount.from_json_value(item) for item in items)


def read_params(text: str | None) -> ChainParams:
    if not text:
        return ChainParams()
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidGenesisError(f"--params is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise InvalidGenesisError("--params must be a JSON object")
    return ChainParams.from_value(value)


def write_text_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def cmd_genesis_statement(args: argparse.Namespace) -> int:
    key = read_key_file(Path(args.key), PassphraseSource(file=args.passphrase_file))
    statement = make_statement(key, args.chain_id, args.name, args.p2p)
    write_text_atomically(Path(args.out), statement.to_json())
    render({"statement": args.out, "chain_id": statement.chain_id, "name": statement.name,
            "public_key": statement.public_key.hex(), "p2p": statement.p2p_address},
           args.json)
    return 0


def cmd_genesis_assemble(args: argparse.Namespace) -> int:
    statements = [read_statement(Path(path)) for path in args.statement]
    accounts = read_accounts(Path(args.accounts)) if args.accounts else ()
    genesis_time_ms = args.genesis_time_ms or int(time.time() * 1000)
    genesis = assemble_genesis(statements, args.chain_id, genesis_time_ms, accounts,
                               read_params(args.params))
    write_text_atomically(Path(args.out), genesis.to_json())
    doc: dict[str, Any] = {
        "genesis": args.out, "genesis_hash": genesis.hash.hex(), "chain_id": genesis.chain_id,
        "validators": [{"name": s.name, "public_key": s.public_key.hex(), "p2p": s.p2p_address}
                       for s in statements],
        "peers": [s.p2p_address for s in statements]}
    render(doc, args.json)
    return 0


def cmd_genesis_hash(args: argparse.Namespace) -> int:
    genesis = read_genesis(Path(args.file))
    if args.json:
        render({"genesis": args.file, "genesis_hash": genesis.hash.hex(),
                "chain_id": genesis.chain_id,
                "validators": genesis.validator_set.size}, as_json=True)
    else:
        print(genesis.hash.hex())  # bare, so that a script can compare it
    return 0


def add_ceremony_parsers(genesis_sub: Any) -> None:
    """Add statement, assemble and hash to `govchain genesis`."""
    p = genesis_sub.add_parser("statement", help="sign this ministry's validator key, name "
                               "and p2p address for a chain (the ceremony's first step)")
    p.add_argument("--key", required=True, help="this ministry's validator key file")
    p.add_argument("--passphrase-file", help="passphrase of a sealed key (else "
                   f"{ENV_PASSPHRASE}, {ENV_PASSPHRASE_FILE} or a prompt)")
    p.add_argument("--name", required=True, help="the validator's name, e.g. ministry")
    p.add_argument("--p2p", required=True, metavar="HOST:PORT",
                   help="where this ministry's node accepts peers")
    p.add_argument("--chain-id", required=True, help="the chain id the statement is signed for")
    p.add_argument("--out", required=True, help="the statement file to hand over")
    p.set_defaults(func=cmd_genesis_statement)

    p = genesis_sub.add_parser("assemble", help="genesis.json from the ministries' signed "
                               "statements (each is checked)")
    p.add_argument("--statement", action="append", required=True, metavar="FILE",
                   help="a statement file; repeat, in the validators' rotation order")
    p.add_argument("--chain-id", required=True, help="every statement must name it")
    p.add_argument("--accounts", metavar="FILE", help='JSON list of {"address": hex, '
                   '"balances": {"ASSET": amount}} to fund at genesis')
    p.add_argument("--params", help="JSON object of chain parameters to override")
    p.add_argument("--genesis-time-ms", type=int, help="default: now")
    p.add_argument("--out", required=True, help="the genesis.json to write")
    p.set_defaults(func=cmd_genesis_assemble)

    p = genesis_sub.add_parser("hash", help="print a genesis file's hash, to compare "
                               "with the other ministries before `init`")
    p.add_argument("file", help="genesis.json")
    p.set_defaults(func=cmd_genesis_hash)
