"""The `govchain` command line: genesis, init, run, tx, query, devnet, and the operator's
keys, config, audit, export, import and snapshot (cli.operator).

Each subcommand is a short function over the SDK or the node home. Errors print one
line naming what is wrong and exit non-zero; a traceback means a bug in govchain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair, PublicKey
from chain.errors import ChainError
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.vote import Validator, ValidatorSet
from cli.ceremony import add_ceremony_parsers
from cli.ledger import add_dev_ledger, add_ledger_commands
from cli.operator import (
    add_init_flags,
    add_operator_parsers,
    add_run_flags,
    get_init_keys,
    get_passphrase_source,
    get_run_overrides,
)
from cli.options import (
    add_rpc_option,
    bound_integer_options,
    resolve_endpoint,
    use_help_formatter,
)
from cli.private import add_private_commands
from cli.proof import ProofCliError, add_proof_commands
from cli.sdk import add_json_everywhere, add_sdk_commands, render, submit_and_show
from cli.signer import add_signer_parser
from cli.stablecoin import add_stablecoin_commands
from node.config import (
    NodeConfig,
    init_home,
    read_key_file,
    validate_config,
    write_key_file,
)
from node.errors import NodeError
from sdk import Client, RpcClientError, UnreachableError
from storage.errors import StorageError

DEV_ASSET = "GOV"


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def _print(doc: Any, as_json: bool) -> None:
    render(doc, as_json)


def _parse_address(text: str) -> bytes:
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as e:
        raise CliError(f"{text!r} is not a hex address") from e
    if len(value) != 20:
        raise CliError(f"an address is 20 bytes (40 hex digits); {text!r} is {len(value)}")
    return value


def _parse_fund_amount(text: str, default: int) -> int:
    """The AMOUNT of a `--fund ADDRESS=AMOUNT` (omitted: the default balance)."""
    amount = text.partition("=")[2].replace("_", "")
    if not amount:
        return default
    if not amount.isdigit():
        raise CliError(f"--fund {text!r}: the amount must be a whole number of the "
                       f"smallest unit (digits only), got {amount!r}")
    return int(amount)


# ------------------------------------------------------------------ keys, genesis, init


def build_genesis(chain_id: str, validator_keys: list[PublicKey], names: list[str],
                  funded: dict[bytes, int], params: ChainParams) -> Genesis:
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000),
        validator_set=ValidatorSet(tuple(Validator(k, n)
                                         for k, n in zip(validator_keys, names, strict=True))),
        accounts=tuple(GenesisAccount(addr, {DEV_ASSET: amount})  # type: ignore[arg-type]
                       for addr, amount in funded.items()),
        params=params,
    )


def _parse_public_key(text: str) -> PublicKey:
    try:
        raw = bytes.fromhex(text.strip().lower().removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CliError(f"--validator-public-key {text!r} is not a public key (64 hex digits)")
    return PublicKey(raw)


def cmd_genesis_new(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [_parse_public_key(text) for text in args.validator_public_key or []]
    for i in range(0 if keys else args.validators):
        path = out_dir / f"validator{i}_key.json"
        if path.exists():
            keys.append(read_key_file(path).public_key)
        else:
            key = KeyPair.generate()
            write_key_file(path, key)
            keys.append(key.public_key)
    funded: dict[bytes, int] = {}
    accounts = []
    account_keys = []
    for i in range(args.accounts):
        path = out_dir / f"account{i}_key.json"
        key = read_key_file(path) if path.exists() else KeyPair.generate()
        if not path.exists():
            write_key_file(path, key)
        funded[key.address] = args.balance
        account_keys.append(key)
        accounts.append({"address": key.address.hex(), "key_file": str(path)})
    for text in args.fund or []:
        funded[_parse_address(text.partition("=")[0])] = _parse_fund_amount(text, args.balance)
    params = ChainParams(**json.loads(args.params)) if args.params else ChainParams()
    genesis = build_genesis(args.chain_id, keys, [f"validator-{i}" for i in range(len(keys))],
                            funded, params)
    if account_keys and not args.plain:
        genesis = add_dev_ledger(genesis, account_keys, args.balance)
    genesis_path = out_dir / "genesis.json"
    genesis_path.write_text(genesis.to_json())
    _print({"genesis": str(genesis_path), "genesis_hash": genesis.hash.hex(),
            "validators": [k.hex() for k in keys], "accounts": accounts}, args.json)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    config = NodeConfig(moniker=args.moniker or Path(args.home).name,
                        rpc_listen=args.rpc_listen, p2p_listen=args.p2p_listen,
                        peers=list(args.peer or []),
                        peer_exchange=not args.no_peer_exchange,
                        signer_address=args.signer_address or "",
                        signer_public_key=(args.signer_public_key or "").lower(),
                        signer_tls_cert=args.signer_tls_cert or "",
                        signer_tls_key=args.signer_tls_key or "",
                        signer_tls_ca=args.signer_tls_ca or "")
    _validate_init_signer(args, config)
    try:
        genesis_text = Path(args.genesis).read_text()
    except OSError as e:
        raise CliError(f"cannot read genesis {args.genesis}: {e}") from e
    key, passphrase = get_init_keys(args)
    init_home(Path(args.home), genesis_text, config, key, passphrase=passphrase,
              kdf_cost=args.kdf_cost, expected_genesis_hash=args.expect_genesis_hash)
    if passphrase is None and not args.json:
        print("note: keys written UNENCRYPTED (dev keys); for a real network use "
              "--passphrase-file or --encrypt (docs/operator.md)", file=sys.stderr)
    validator = key.public_key.hex() if key else config.signer_public_key or None
    _print({"home": args.home, "validator": validator, "signer": config.signer_address or None,
            "keys_encrypted": passphrase is not None}, args.json)
    return 0


def _validate_init_signer(args: argparse.Namespace, config: NodeConfig) -> None:
    """The --signer-* flags of `init` make sense together, or not at all."""
    tls = (args.signer_tls_cert, args.signer_tls_key, args.signer_tls_ca)
    if not args.signer_address:
        if args.signer_public_key or any(tls):
            raise CliError("--signer-public-key and --signer-tls-* need --signer-address")
        return
    if args.validator_key:
        raise CliError("give --validator-key or --signer-address, not both: a validator "
                       "signs in one place only (the key stays on the signer's host)")
    if not args.signer_public_key:
        raise CliError("--signer-address needs --signer-public-key (the key the signer "
                       "holds, printed by `govchain signer` or `signer init-pkcs11`)")
    if args.signer_address.startswith("unix:") and any(tls):
        raise CliError("--signer-tls-* are for a tcp:// signer, not a Unix socket")
    validate_config(config, dict.fromkeys(
        ("signer_address", "signer_public_key", "signer_tls_cert", "signer_tls_key",
         "signer_tls_ca"), "flag"))


def cmd_run(args: argparse.Namespace) -> int:
    from cli.service import run_node  # imported late: it pulls in every layer

    return run_node(Path(args.home), get_run_overrides(args), get_passphrase_source(args))


# ------------------------------------------------------------------ tx and query


def cmd_tx_transfer(args: argparse.Namespace) -> int:
    client = Client(args.rpc)
    key = read_key_file(Path(args.key))
    to = _parse_address(args.to)
    tx = client.build(key, "transfer", {"to": to, "asset": args.asset, "amount": args.amount},
                      nonce=args.nonce)
    return submit_and_show(client, tx, wait=args.wait, as_json=args.json)


def cmd_query(args: argparse.Namespace) -> int:
    client = Client(args.rpc)
    what = args.what
    if what == "status":
        result = client.status()
    elif what == "block":
        ref = args.ref or "latest"
        result = client.call("chain_block", height=int(ref)) if ref.isdigit() else \
            client.call("chain_block", hash=ref) if len(ref) == 64 else client.call("chain_block")
    elif what == "tx":
        if not args.ref:
            raise CliError("query tx needs a transaction hash")
        result = client.get_tx(args.ref)
    elif what == "account":
        if not args.ref:
            raise CliError("query account needs an address")
        result = client.call("state_account", address=args.ref)
    elif what == "validators":
        result = client.call("chain_validators")
    else:  # argparse restricts choices
        raise CliError(f"unknown query {what!r}")
    _print(result, args.json)
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="govchain", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)

    add_operator_parsers(sub)

    genesis = sub.add_parser("genesis", help="create a genesis document (dev: new; a real "
                             "network: statement, assemble, hash)")
    genesis_sub = genesis.add_subparsers(dest="genesis_command", required=True)
    p = genesis_sub.add_parser("new", help="keys and genesis for N validators and accounts")
    p.add_argument("--chain-id", default="govchain-dev", help="the new chain's id")
    p.add_argument("--validators", type=int, default=1, help="validator keys to create")
    p.add_argument("--validator-public-key", action="append", metavar="HEX",
                   help="a validator whose key is kept elsewhere (a signer's token), by its "
                        "public key; repeatable; replaces --validators (no key is written)")
    p.add_argument("--accounts", type=int, default=4, help="funded dev accounts to create")
    p.add_argument("--balance", type=int, default=10**15,
                   help=f"{DEV_ASSET} given to each dev account")
    p.add_argument("--fund", action="append", metavar="ADDRESS=AMOUNT",
                   help="also fund this address (AMOUNT omitted: --balance); repeatable")
    p.add_argument("--params", help="JSON object of chain parameters to override")
    p.add_argument("--out-dir", required=True, help="folder for genesis.json and key files")
    p.add_argument("--plain", action="store_true",
                   help="no dev ledger (stablecoin KGS, registry, treasury; docs/ledger.md)")
    p.set_defaults(func=cmd_genesis_new)
    add_ceremony_parsers(genesis_sub)  # statement, assemble, hash (cli/ceremony.py)

    p = sub.add_parser("init", help="create a node home from a genesis and keys")
    p.add_argument("--home", required=True, help="the folder to create for the node")
    p.add_argument("--genesis", required=True, help="genesis.json")
    p.add_argument("--validator-key", help="key file of this validator (omit: full node)")
    p.add_argument("--moniker", help="the node's name in status and logs (default: the "
                   "home folder's name)")
    p.add_argument("--rpc-listen", default="127.0.0.1:8545",
                   help="HOST:PORT of the JSON-RPC server")
    p.add_argument("--p2p-listen", default="127.0.0.1:26656",
                   help="HOST:PORT where the node listens for peers")
    p.add_argument("--peer", action="append", metavar="HOST:PORT",
                   help="a peer to dial; repeatable")
    p.add_argument("--no-peer-exchange", action="store_true",
                   help="dial only the configured peers (devnet partitions need this)")
    p.add_argument("--expect-genesis-hash", metavar="HASH",
                   help="refuse a genesis whose hash is not this (from `genesis hash`)")
    p.add_argument("--signer-address", metavar="ADDR",
                   help="a validator that signs through `govchain signer` at unix:/path or "
                        "tcp://host:port (docs/signer.md); no key is written to the home")
    p.add_argument("--signer-public-key", metavar="HEX",
                   help="the validator public key the signer holds")
    p.add_argument("--signer-tls-cert", metavar="PEM",
                   help="tcp:// signer: this node's client certificate")
    p.add_argument("--signer-tls-key", metavar="PEM", help="tcp:// signer: its private key")
    p.add_argument("--signer-tls-ca", metavar="PEM",
                   help="tcp:// signer: the signer's certificate, the only one trusted")
    add_init_flags(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run a node")
    p.add_argument("--home", required=True, help="the node home (made by `govchain init`)")
    add_run_flags(p)
    p.set_defaults(func=cmd_run)

    tx = sub.add_parser("tx", help="sign and submit transactions")
    tx_sub = tx.add_subparsers(dest="tx_command", required=True)
    p = tx_sub.add_parser("transfer", help="transfer an asset")
    p.add_argument("--key", required=True, help="sender's key file")
    p.add_argument("--to", required=True, help="recipient address (hex)")
    p.add_argument("--amount", required=True, type=int, help="in the asset's smallest unit")
    p.add_argument("--asset", default=DEV_ASSET, help="the asset's symbol")
    p.add_argument("--nonce", type=int, help="default: the account's next nonce")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="return once admitted instead of waiting for finality")
    add_rpc_option(p)
    p.set_defaults(func=cmd_tx_transfer)
    add_sdk_commands(sub, tx_sub)  # tx build/sign/send-file/status, subscribe, admin, rpc

    p = sub.add_parser("query", help="read chain state over RPC")
    p.add_argument("what", choices=["status", "block", "tx", "account", "validators"],
                   help="what to read")
    p.add_argument("ref", nargs="?", help="height/hash, tx hash or address")
    add_rpc_option(p)
    p.set_defaults(func=cmd_query)

    add_proof_commands(sub)  # proof, verify, verify-document (cli/proof.py)
    add_signer_parser(sub)  # signer, signer init-pkcs11, signer tls-cert (cli/signer.py)
    add_ledger_commands(sub)  # ledger tx types, queries, verify-record (node/cli_ledger.py)
    add_private_commands(sub)  # private registry records (cli/private.py)
    add_stablecoin_commands(sub)  # tiers, gold attestations, redemption, report supply
    try:
        from devnet.cli import add_devnet_parser
    except ImportError:  # pragma: no cover - devnet is part of the distribution
        pass
    else:
        add_devnet_parser(sub)
    add_json_everywhere(parser)
    # Once for every subcommand, wherever it was declared:
    bound_integer_options(parser)
    use_help_formatter(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolve_endpoint(args, os.environ, Path.cwd())
        result: int = args.func(args)
        return result
    except (CliError, ProofCliError, NodeError, ChainError, StorageError) as e:
        print(f"govchain: error: {getattr(e, 'message', e)}", file=sys.stderr)
    except UnreachableError as e:
        print(f"govchain: error: {e.reason}: {e.message}{_describe_endpoint(args, e)}",
              file=sys.stderr)
    except RpcClientError as e:
        print(f"govchain: error: {e.reason}: {e.message}", file=sys.stderr)
    except (OSError, ValueError) as e:
        print(f"govchain: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


def _describe_endpoint(args: argparse.Namespace, error: UnreachableError) -> str:
    """Which endpoint was tried, where it came from, and what to try next."""
    endpoint = getattr(args, "endpoint", None)
    if endpoint is None or error.reason != "unreachable":
        return ""
    return (f" (endpoint {endpoint.url}, from {endpoint.source}); "
            f"{endpoint.get_unreachable_hint()}")
