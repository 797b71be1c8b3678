"""The operator's subcommands: config show, keys, audit, export, import and
snapshot.

Registered on the `govchain` parser by cli.main. Each command prints one result
(a table, or JSON with --json) and exits non-zero with one line on error. No command
prints or logs a secret key except `keys export`, which exists to do exactly that.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair
from node.config import (
    get_env_name,
    get_setting_docs,
    load_config_with_sources,
    render_settings_table,
)
from node.errors import NodeError
from node.keystore import (
    DEFAULT_KDF_COST,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    KDF_COSTS,
    KeystoreError,
    PassphraseSource,
    decrypt_key,
    export_plaintext,
    is_encrypted,
    load_key_file,
    read_key_doc,
    read_public_key,
    write_encrypted_key_file,
    write_private_file,
)

RUN_FLAGS = {  # flag -> config key, for the settings operators change most often
    "rpc_listen": "--rpc-listen", "p2p_listen": "--p2p-listen", "moniker": "--moniker",
    "log_level": "--log-level", "log_format": "--log-format",
}


def _print(doc: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    width = max((len(str(k)) for k in doc), default=0)
    for key, value in doc.items():
        if isinstance(value, dict | list):
            value = json.dumps(value)
        print(f"{str(key).ljust(width)}  {value}")


def _progress(height: int, target: int, txs: int, seconds: float) -> None:
    of = f"/{target}" if target else ""
    print(f"  height {height}{of}, {txs} txs, {txs / seconds if seconds else 0:.0f} tx/s",
          file=sys.stderr)


# ------------------------------------------------------------------ run flags


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of `govchain run` that override config.toml and the environment."""
    for key, flag in RUN_FLAGS.items():
        parser.add_argument(flag, dest=f"cfg_{key}", metavar=key.upper(),
                            help=f"override config key {key}")
    parser.add_argument("--peer", dest="cfg_peers", action="append", metavar="HOST:PORT",
                        help="override config key peers (repeat for each peer)")
    parser.add_argument("--set", dest="cfg_set", action="append", default=[],
                        metavar="KEY=VALUE", help="override any config key")
    parser.add_argument("--passphrase-file",
                        help="file holding the passphrase of encrypted key files")


def get_run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for text in getattr(args, "cfg_set", []) or []:
        key, sep, value = text.partition("=")
        if not sep:
            raise NodeError(f"--set {text!r}: expected KEY=VALUE")
        overrides[key.strip()] = value
    for key in RUN_FLAGS:
        value = getattr(args, f"cfg_{key}", None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "cfg_peers", None):
        overrides["peers"] = list(args.cfg_peers)
    return overrides


def get_passphrase_source(args: argparse.Namespace) -> PassphraseSource | None:
    """A source from --passphrase-file, or None to use the config/env/prompt chain."""
    path = getattr(args, "passphrase_file", None)
    return PassphraseSource(file=path) if path else None


def get_init_keys(args: argparse.Namespace) -> tuple[KeyPair | None, bytes | None]:
    """The validator key given to `govchain init` (unlocked), and the passphrase that seals
    the home's keys, or None for plaintext dev keys.

    One source serves both (--passphrase-file, the environment, or one prompt), and a
    sealed key stays sealed in the home whatever the flags say: unlocking it must never
    be the way to write it in the clear.
    """
    source = PassphraseSource(file=args.passphrase_file)
    key, sealed = None, False
    if args.validator_key:
        loaded = load_key_file(Path(args.validator_key), source)
        key, sealed = loaded.key, loaded.encrypted
    if sealed or source.is_given():
        return key, source.get("the new keys")
    if getattr(args, "encrypt", False):
        return key, source.get("the new keys", confirm=True)
    return key, None


def add_init_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--passphrase-file", help="encrypt the keys with this passphrase "
                        f"(also {ENV_PASSPHRASE} / {ENV_PASSPHRASE_FILE})")
    parser.add_argument("--encrypt", action="store_true",
                        help="encrypt the keys, asking for a passphrase on the terminal")
    parser.add_argument("--kdf-cost", choices=sorted(KDF_COSTS), default=DEFAULT_KDF_COST,
                        help="argon2id cost ('test' is for test suites only)")


# ------------------------------------------------------------------ config


def cmd_config_show(args: argparse.Namespace) -> int:
    config, sources = load_config_with_sources(Path(args.home),
                                               overrides=get_run_overrides(args))
    docs = get_setting_docs()
    if args.json:
        print(json.dumps({key: {"value": getattr(config, key), "source": source,
                                "env": get_env_name(key), "doc": docs.get(key, "")}
                          for key, source in sources.items()}, indent=2))
        return 0
    width = max(len(k) for k in sources)
    for key, source in sources.items():
        print(f"{key.ljust(width)}  {json.dumps(getattr(config, key)):<28} ({source})")
    return 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    print(render_settings_table(), end="")
    return 0


# ------------------------------------------------------------------ keys


def _new_passphrase(args: argparse.Namespace) -> bytes:
    path = getattr(args, "new_passphrase_file", None) or getattr(args, "passphrase_file", None)
    return PassphraseSource(file=path).get("the key file", confirm=True)


def _refuse_existing(path: Path, allow: bool = False) -> None:
    if path.exists() and not allow:
        raise KeystoreError(f"{path} exists; refusing to overwrite a key file")


def cmd_keys_new(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _refuse_existing(out)
    key = KeyPair.generate()
    if args.insecure_plaintext:
        write_private_file(out, export_plaintext(key))
    else:
        write_encrypted_key_file(out, key, _new_passphrase(args), args.kdf_cost)
    _print({"file": str(out), "public_key": key.public_key.hex(),
            "address": key.address.hex(), "encrypted": not args.insecure_plaintext}, args.json)
    return 0


def cmd_keys_import(args: argparse.Namespace) -> int:
    """Encrypt a plaintext key file (or a hex seed on stdin) into a keystore."""
    source, out = Path(args.input) if args.input else None, Path(args.out)
    _refuse_existing(out, allow=source is not None and out.resolve() == source.resolve())
    if source is None:
        key = KeyPair.from_seed(bytes.fromhex(sys.stdin.readline().strip()))
    else:
        doc = read_key_doc(source)
        if is_encrypted(doc):
            raise KeystoreError(f"{source} is already encrypted; use change-passphrase")
        key = load_key_file(source, None).key
    write_encrypted_key_file(out, key, _new_passphrase(args), args.kdf_cost)
    _print({"file": str(out), "public_key": key.public_key.hex(),
            "address": key.address.hex(), "encrypted": True}, args.json)
    return 0


def cmd_keys_export(args: argparse.Namespace) -> int:
    """Decrypt a key file and write it in plaintext: to stdout, or to --out (mode 600)."""
    key = load_key_file(Path(args.file), PassphraseSource(file=args.passphrase_file)).key
    text = export_plaintext(key)
    if args.out:
        _refuse_existing(Path(args.out))
        write_private_file(Path(args.out), text)
        print(f"wrote the PLAINTEXT key to {args.out}; delete it when done", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_keys_show_public(args: argparse.Namespace) -> int:
    """Print a key file's public key, refusing a file that contradicts itself."""
    path = Path(args.file)
    info = read_public_key(path, PassphraseSource(file=args.passphrase_file, prompt=False))
    _print({"file": str(path), "public_key": info.public_key.hex(),
            "address": info.address.hex(), "encrypted": info.encrypted,
            "checked": "seed" if info.seed_checked else "address"}, args.json)
    if not info.seed_checked:
        print(f"note: {path} is sealed: its address matches its public_key, but the sealed "
              "seed is checked only when unlocked (give --passphrase-file)", file=sys.stderr)
    return 0


def cmd_keys_change_passphrase(args: argparse.Namespace) -> int:
    path = Path(args.file)
    doc = read_key_doc(path)
    if not is_encrypted(doc):
        raise KeystoreError(f"{path} is not encrypted; encrypt it with `keys import`")
    key = decrypt_key(doc, PassphraseSource(file=args.passphrase_file).get(str(path)),
                      str(path))
    new = PassphraseSource(file=args.new_passphrase_file).get("the new passphrase",
                                                               confirm=True)
    write_encrypted_key_file(path, key, new, args.kdf_cost)
    _print({"file": str(path), "public_key": key.public_key.hex(), "changed": True}, args.json)
    return 0


# ------------------------------------------------------------------ chain data


def cmd_audit(args: argparse.Namespace) -> int:
    from cli.service import tune_garbage_collector
    from node.ops.errors import AuditDamage, AuditMismatch
    from node.ops.replay import audit
    from node.ops.statesync_audit import StateSyncedAuditMismatch

    tune_garbage_collector()

    print(f"auditing {args.data or Path(args.home) / 'data'} from genesis ...", file=sys.stderr)
    try:
        report = audit(Path(args.home), Path(args.data) if args.data else None,
                       progress=None if args.json else _progress)
    except (AuditMismatch, StateSyncedAuditMismatch) as e:
        _print({"result": "MISMATCH", "height": e.height, "what": e.what}, args.json)
        return 2
    except AuditDamage as e:
        _print({"result": "DAMAGED", "what": e.message}, args.json)
        return 2
    _print({"result": "OK", **report.to_json()}, args.json)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from node.ops.replay import export_chain

    _print(export_chain(Path(args.home), Path(args.out),
                        Path(args.data) if args.data else None), args.json)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from cli.service import tune_garbage_collector
    from node.ops.errors import AuditMismatch
    from node.ops.replay import import_chain

    tune_garbage_collector()

    try:
        report = import_chain(Path(args.home), Path(args.input),
                              progress=None if args.json else _progress)
    except AuditMismatch as e:
        _print({"result": "MISMATCH", "height": e.height, "what": e.what}, args.json)
        return 2
    _print({"result": "OK", **report.to_json()}, args.json)
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Snapshot the data directory: through the running node's loopback admin endpoint,
    or directly when the node is stopped."""
    from node.ops.replay import snapshot_offline
    from rpc.operator import SNAPSHOT_NAME, SNAPSHOTS_DIR
    from storage.errors import DataDirLockedError

    home = Path(args.home)
    if args.name and not SNAPSHOT_NAME.match(args.name):
        raise NodeError(f"snapshot name {args.name!r}: use letters, digits, '.', '_', '-'")
    try:
        name = args.name or time.strftime("offline-%Y%m%dT%H%M%SZ", time.gmtime())
        result = snapshot_offline(home, home / SNAPSHOTS_DIR / name)
        result["mode"] = "offline"
    except DataDirLockedError:
        config, _ = load_config_with_sources(home)
        host, port = config.rpc_host_port
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url = args.rpc or f"http://{host}:{port}"
        body = json.dumps({"name": args.name} if args.name else {}).encode()
        request = urllib.request.Request(f"{url}/admin/snapshot", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                result = json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise NodeError(f"the node refused the snapshot: {e.read().decode()}") from e
        result["mode"] = "online"
    _print(result, args.json)
    return 0


# ------------------------------------------------------------------ parser


def add_operator_parsers(sub: Any) -> None:
    """Add keys, config, audit, export, import and snapshot to the `govchain` parser."""
    keys = sub.add_parser("keys", help="create, encrypt, export and inspect key files")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def passphrase_flags(p: argparse.ArgumentParser, new: bool = False) -> None:
        p.add_argument("--passphrase-file", help="file holding the passphrase (else "
                       f"{ENV_PASSPHRASE}, {ENV_PASSPHRASE_FILE} or a prompt)")
        if new:
            p.add_argument("--kdf-cost", choices=sorted(KDF_COSTS), default=DEFAULT_KDF_COST,
                           help="argon2id cost ('test' is for test suites only)")

    p = keys_sub.add_parser("new", help="create an encrypted key file")
    p.add_argument("--out", required=True, help="path of the new key file")
    p.add_argument("--insecure-plaintext", action="store_true",
                   help="write the seed unencrypted (devnets only)")
    passphrase_flags(p, new=True)
    p.set_defaults(func=cmd_keys_new)
    p = keys_sub.add_parser("import", help="encrypt a plaintext key file (or a hex seed on "
                            "stdin) into an encrypted key file")
    p.add_argument("--in", dest="input", help="plaintext key file (omit: seed on stdin)")
    p.add_argument("--out", required=True, help="encrypted key file to write (may be --in)")
    passphrase_flags(p, new=True)
    p.set_defaults(func=cmd_keys_import)
    p = keys_sub.add_parser("export", help="print the PLAINTEXT key (to move it elsewhere)")
    p.add_argument("file", help="the key file")
    p.add_argument("--out", help="write to this file (mode 600) instead of stdout")
    passphrase_flags(p)
    p.set_defaults(func=cmd_keys_export)
    for name in ("show-public", "show"):
        p = keys_sub.add_parser(name, help="print a key file's public key and address "
                                "(a sealed file is unlocked only if a passphrase is given)")
        p.add_argument("file", help="the key file")
        p.add_argument("--passphrase-file", help="unlock a sealed file to check its seed "
                       f"(also {ENV_PASSPHRASE} / {ENV_PASSPHRASE_FILE}); never prompts")
        p.set_defaults(func=cmd_keys_show_public)
    p = keys_sub.add_parser("change-passphrase", help="re-encrypt under a new passphrase")
    p.add_argument("file", help="the encrypted key file")
    p.add_argument("--new-passphrase-file", help="file holding the new passphrase")
    passphrase_flags(p, new=True)
    p.set_defaults(func=cmd_keys_change_passphrase)

    config = sub.add_parser("config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    p = config_sub.add_parser("show", help="each setting's value and source "
                              "(default, file, env, flag)")
    p.add_argument("--home", required=True, help="the node home")
    add_run_flags(p)
    p.set_defaults(func=cmd_config_show)
    p = config_sub.add_parser("docs", help="the settings table of docs/operator.md")
    p.set_defaults(func=cmd_config_docs)

    p = sub.add_parser("audit", help="replay the whole chain from genesis and verify it")
    p.add_argument("--home", required=True, help="the node home")
    p.add_argument("--data", help="audit this data directory (e.g. a snapshot) instead")
    p.set_defaults(func=cmd_audit)
    p = sub.add_parser("export", help="write blocks and certificates to a portable file")
    p.add_argument("--home", required=True, help="the node home")
    p.add_argument("--out", required=True, help="the export file to write")
    p.add_argument("--data", help="export from this data directory (e.g. a snapshot)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help="rebuild a node's database from an export file, "
                       "verifying everything")
    p.add_argument("--home", required=True, help="a home made by `govchain init`")
    p.add_argument("--in", dest="input", required=True, help="the export file to read")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("snapshot", help="consistent copy of the data directory into "
                       "HOME/snapshots/NAME (online or offline)")
    p.add_argument("--home", required=True, help="the node home")
    p.add_argument("--name", help="snapshot folder name (default: height and time)")
    p.add_argument("--rpc", help="the node's RPC URL (default: from config)")
    p.set_defaults(func=cmd_snapshot)

