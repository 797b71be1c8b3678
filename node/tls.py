"""TLS material of a node: the self-signed certificate of its p2p link and the SSL
contexts of the p2p link and of the RPC server.

The p2p certificate is not trusted through any authority: each end signs the SHA-256
of the server certificate it sees inside the handshake with its node key (see
p2p/handshake.py and docs/p2p.md), which is what binds a TLS link to two node keys.
So the client end does not verify the certificate chain, and the certificate's names
and expiry carry no meaning.

    HOME/p2p_tls_cert.pem   the p2p certificate (created by `govchain init`, or at
                            the first start of an older home)
    HOME/p2p_tls_key.pem    its private key, readable by the owner only
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from node.errors import ConfigError

P2P_CERT_FILE = "p2p_tls_cert.pem"
P2P_KEY_FILE = "p2p_tls_key.pem"
CERTIFICATE_VALIDITY_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class P2PTls:
    """The SSL contexts of a node's p2p link and its certificate's fingerprint."""

    server: ssl.SSLContext
    """Serves our certificate; asks no certificate of the client."""
    client: ssl.SSLContext
    """Accepts any server certificate: the handshake checks it (channel binding)."""
    fingerprint: bytes
    """SHA-256 of our certificate (DER): the channel binding when we serve."""


def create_self_signed_certificate(cert_path: Path, key_path: Path, common_name: str,
                                   ip_addresses: tuple[str, ...] = ()) -> None:
    """Write a new P-256 key (mode 0600) and a self-signed certificate for it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_VALIDITY_DAYS)))
    if ip_addresses:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def ensure_p2p_certificate(home: Path, node_id: str) -> tuple[Path, Path]:
    """The p2p certificate and key files of a home, created if both are absent."""
    cert_path, key_path = home / P2P_CERT_FILE, home / P2P_KEY_FILE
    if cert_path.exists() != key_path.exists():
        raise ConfigError(f"{home}: one of {P2P_CERT_FILE} and {P2P_KEY_FILE} is missing; "
                          "delete the other to have a new pair created")
    if not cert_path.exists():
        create_self_signed_certificate(cert_path, key_path, f"govchain node {node_id[:16]}")
    return cert_path, key_path


def compute_certificate_fingerprint(cert_path: Path) -> bytes:
    """SHA-256 of the certificate's DER bytes."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"TLS certificate {cert_path} cannot be read: {e}") from e
    return hashlib.sha256(der).digest()


def _load_chain(context: ssl.SSLContext, cert_path: Path, key_path: Path) -> None:
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"TLS certificate {cert_path} or key {key_path} cannot be "
                          f"loaded: {e}") from e


def build_p2p_tls(cert_path: Path, key_path: Path) -> P2PTls:
    """TLS 1.3 contexts for the p2p link."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    _load_chain(server, cert_path, key_path)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # checked by the handshake's channel binding
    return P2PTls(server=server, client=client,
                  fingerprint=compute_certificate_fingerprint(cert_path))


def build_rpc_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The RPC server's context (TLS 1.2 or later; clients verify it as usual)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(server, cert_path, key_path)
    return server
