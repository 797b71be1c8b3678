"""Where the signer's key lives: an encrypted key file read into the signer process,
or a PKCS#11 token (an HSM) that signs without ever giving the key out.

A back end answers two things: the Ed25519 public key and the signature of some bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chain.crypto import KeyPair, PublicKey, is_valid_signature
from node.keystore import PassphraseSource, load_key_file
from node.signer.protocol import KeyUnavailableError

ED25519_OID = "1.3.101.112"
"""The curve of an Ed25519 key in CKA_EC_PARAMS (RFC 8410's id-Ed25519)."""


class KeyBackend(Protocol):
    public_key: PublicKey

    def sign(self, message: bytes) -> bytes: ...

    def close(self) -> None: ...


class FileKeyBackend:
    """The encrypted key file (chain/keyfile.py), unlocked once at start."""

    def __init__(self, path: Path, passphrase: PassphraseSource) -> None:
        self._key: KeyPair = load_key_file(path, passphrase).key
        self.public_key = self._key.public_key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Pkcs11Settings:
    """Which token and key a PKCS#11 back end uses."""

    module: str
    """The vendor's PKCS#11 library (for SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)."""
    token_label: str
    """The token's label."""
    key_label: str
    """CKA_LABEL of the Ed25519 key pair in the token."""
    pin: str
    """The user PIN of the token."""


def _ec_point_to_public_key(point: bytes) -> PublicKey:
    """CKA_EC_POINT of an Ed25519 key: the 32 bytes, DER OCTET STRING-wrapped or not."""
    if len(point) == 34 and point[:2] == b"\x04\x20":
        point = point[2:]
    if len(point) != 32:
        raise KeyUnavailableError(f"the token's public key has {len(point)} bytes, not 32")
    return PublicKey(point)


def _open_session(settings: Pkcs11Settings, *, rw: bool = False) -> Any:
    import pkcs11

    try:
        token = pkcs11.lib(settings.module).get_token(token_label=settings.token_label)
        return token.open(user_pin=settings.pin, rw=rw)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as e:
        raise KeyUnavailableError(f"cannot open token {settings.token_label!r} through "
                                  f"{settings.module}: {type(e).__name__} {e}") from e


class Pkcs11KeyBackend:
    """An Ed25519 key in a PKCS#11 token, signed with CKM_EDDSA; one session, kept open."""

    def __init__(self, settings: Pkcs11Settings) -> None:
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        self._session = _open_session(settings)
        try:
            self._private = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY,
                                                  label=settings.key_label)
            public = self._session.get_key(object_class=ObjectClass.PUBLIC_KEY,
                                           label=settings.key_label)
            self.public_key = _ec_point_to_public_key(bytes(public[Attribute.EC_POINT]))
        except pkcs11.PKCS11Error as e:
            self._session.close()
            raise KeyUnavailableError(f"token {settings.token_label!r} holds no single key "
                                      f"pair labelled {settings.key_label!r}: "
                                      f"{type(e).__name__}") from e
        # A token that signs with another key, or not Ed25519, is refused here.
        probe = b"govchain/signer/probe"
        if not is_valid_signature(self.public_key, probe, self.sign(probe)):
            raise KeyUnavailableError("the token's signature does not verify with its "
                                      "public key")

    def sign(self, message: bytes) -> bytes:
        import pkcs11
        from pkcs11 import Mechanism

        try:
            return bytes(self._private.sign(message, mechanism=Mechanism.EDDSA))
        except pkcs11.PKCS11Error as e:
            raise KeyUnavailableError(f"the token failed to sign: {type(e).__name__}") from e

    def close(self) -> None:
        self._session.close()


def generate_pkcs11_key(settings: Pkcs11Settings) -> PublicKey:
    """Generate an Ed25519 key pair inside the token (CKM_EC_EDWARDS_KEY_PAIR_GEN); the
    private key is sensitive and not extractable. Refused if the label is taken."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    with _open_session(settings, rw=True) as session:
        if list(session.get_objects({Attribute.LABEL: settings.key_label,
                                     Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise KeyUnavailableError(f"token {settings.token_label!r} already holds a key "
                                      f"labelled {settings.key_label!r}")
        try:
            parameters = session.create_domain_parameters(
                KeyType.EC_EDWARDS,
                {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)},
                local=True)
            public, _ = parameters.generate_keypair(
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN, store=True,
                label=settings.key_label,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        except pkcs11.PKCS11Error as e:
            raise KeyUnavailableError(f"the token cannot make an Ed25519 key: "
                                      f"{type(e).__name__}") from e
        return _ec_point_to_public_key(bytes(public[Attribute.EC_POINT]))
