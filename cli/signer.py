"""`govchain signer`: run the validator's signer process, and make its key or certificates.

    govchain signer --chain-id ID --state-file PATH --listen unix:/path|tcp://host:port
                    (--key-file FILE | --pkcs11-module LIB --token-label L --key-label K)
    govchain signer init-pkcs11 --pkcs11-module LIB --token-label L --key-label K
    govchain signer tls-cert --cert FILE --key FILE --name NAME

The signer prints one line `signer ready <listen-url> <public-key-hex>` once it listens.
See docs/signer.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from node.errors import NodeError
from node.keystore import PassphraseSource
from node.logs import setup_logging
from node.signer.backends import (
    FileKeyBackend,
    KeyBackend,
    Pkcs11KeyBackend,
    Pkcs11Settings,
    generate_pkcs11_key,
)
from node.signer.protocol import SignerError
from node.signer.server import ListenAddress, SignerServer, build_server_tls
from node.signer.state import SignGuard, SignStateFileError
from node.tls import create_self_signed_certificate

ENV_PKCS11_PIN = "GOVCHAIN_PKCS11_PIN"
ENV_PKCS11_PIN_FILE = "GOVCHAIN_PKCS11_PIN_FILE"


def _read_pin(args: argparse.Namespace) -> str:
    path = args.pin_file or os.environ.get(ENV_PKCS11_PIN_FILE)
    if path:
        text = Path(path).read_text()
        return text.splitlines()[0] if text.strip() else ""
    if os.environ.get(ENV_PKCS11_PIN):
        return os.environ[ENV_PKCS11_PIN]
    raise NodeError(f"the token's user PIN is needed: --pin-file, {ENV_PKCS11_PIN_FILE} or "
                    f"{ENV_PKCS11_PIN}")


def _pkcs11_settings(args: argparse.Namespace) -> Pkcs11Settings:
    if not (args.token_label and args.key_label):
        raise NodeError("--pkcs11-module needs --token-label and --key-label")
    return Pkcs11Settings(args.pkcs11_module, args.token_label, args.key_label,
                          _read_pin(args))


def _open_backend(args: argparse.Namespace) -> KeyBackend:
    if bool(args.key_file) == bool(args.pkcs11_module):
        raise NodeError("give one key back end: --key-file or --pkcs11-module")
    try:
        if args.key_file:
            return FileKeyBackend(Path(args.key_file),
                                  PassphraseSource(file=args.passphrase_file))
        return Pkcs11KeyBackend(_pkcs11_settings(args))
    except SignerError as e:
        raise NodeError(e.message) from e


def cmd_signer(args: argparse.Namespace) -> int:
    if not (args.chain_id and args.state_file and args.listen):
        raise NodeError("govchain signer needs --chain-id, --state-file and --listen")
    setup_logging(args.log_level)
    address = ListenAddress.parse(args.listen)
    tls = None
    if address.host:
        if not (args.tls_cert and args.tls_key and args.tls_trusted):
            raise NodeError("a tcp:// signer needs --tls-cert, --tls-key and --tls-trusted "
                            "(the nodes' certificates): mutual TLS")
        tls = build_server_tls(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_trusted))
    backend = _open_backend(args)  # the key first: a bad flag creates no state file
    try:
        try:
            guard = SignGuard(Path(args.state_file), args.chain_id)
        except SignStateFileError as e:
            raise NodeError(str(e)) from e
        asyncio.run(_serve(SignerServer(backend, guard, address, tls)))
    finally:
        backend.close()
    return 0


async def _serve(server: SignerServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    print(f"signer ready {server.listen_url} {server.backend.public_key.hex()}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def cmd_init_pkcs11(args: argparse.Namespace) -> int:
    try:
        public_key = generate_pkcs11_key(_pkcs11_settings(args))
    except SignerError as e:
        raise NodeError(e.message) from e
    if getattr(args, "json", False):
        print(json.dumps({"public_key": public_key.hex(), "token_label": args.token_label,
                          "key_label": args.key_label}))
    else:
        print(public_key.hex())
    return 0


def cmd_tls_cert(args: argparse.Namespace) -> int:
    create_self_signed_certificate(Path(args.cert), Path(args.key), args.name,
                                   tuple(args.ip or ["127.0.0.1"]))
    print(args.cert)
    return 0


def add_signer_parser(sub: Any) -> None:
    """Add `signer` (run), `signer init-pkcs11` and `signer tls-cert`."""
    p = sub.add_parser("signer", help="run the validator's signer (key file or PKCS#11 "
                       "token), or prepare its key and certificates")

    def pkcs11_flags(q: argparse.ArgumentParser) -> None:
        q.add_argument("--pkcs11-module", help="the token's PKCS#11 library (.so)")
        q.add_argument("--token-label", help="the token's label")
        q.add_argument("--key-label", help="the label of the Ed25519 key pair in the token")
        q.add_argument("--pin-file", help=f"file holding the user PIN (else "
                       f"{ENV_PKCS11_PIN_FILE} or {ENV_PKCS11_PIN})")

    p.add_argument("--chain-id", help="the only chain this signer signs for")
    p.add_argument("--state-file", help="its sign state (created on first use; never "
                   "delete it)")
    p.add_argument("--listen", help="unix:/path/to/socket or tcp://host:port")
    p.add_argument("--key-file", help="an encrypted govchain key file")
    p.add_argument("--passphrase-file", help="file holding the key file's passphrase")
    pkcs11_flags(p)
    p.add_argument("--tls-cert", help="tcp://: the signer's certificate (PEM)")
    p.add_argument("--tls-key", help="tcp://: its private key (PEM)")
    p.add_argument("--tls-trusted", help="tcp://: the certificates of the nodes allowed in")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"],
                   help="one line per refusal at WARNING; per signature at DEBUG")
    p.set_defaults(func=cmd_signer)
    signer_sub = p.add_subparsers(dest="signer_command")
    q = signer_sub.add_parser("init-pkcs11", help="generate the Ed25519 key inside the "
                              "token; prints its public key")
    pkcs11_flags(q)
    q.set_defaults(func=cmd_init_pkcs11)
    q = signer_sub.add_parser("tls-cert", help="write a self-signed certificate and key "
                              "for the signer link (one for the signer, one per node)")
    q.add_argument("--cert", required=True, help="the certificate file to write")
    q.add_argument("--key", required=True, help="the private key file to write (0600)")
    q.add_argument("--name", required=True, help="the certificate's common name")
    q.add_argument("--ip", action="append", help="an IP address it is for (repeatable)")
    q.set_defaults(func=cmd_tls_cert)

