"""The error tree of the chain layer.

Every error carries a stable machine-readable `code` and a message a person can act
on. Errors caused by remote input (bytes from a peer or a client) live here; our own
bugs are assertions, never ChainError.
"""

from __future__ import annotations


class ChainError(Exception):
    """Root of all errors raised by the chain layer."""

    code: str = "chain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedError(ChainError):
    """Raised when bytes do not decode to a well-formed, canonical object."""

    code = "malformed"


class TooLargeError(MalformedError):
    """Raised when an encoded object exceeds its size limit."""

    code = "too_large"


class WrongChainError(ChainError):
    """Raised when an object names a chain id other than ours."""

    code = "wrong_chain"


class BadSignatureError(ChainError):
    """Raised when a signature does not verify over the expected signing bytes."""

    code = "bad_signature"


class InvalidCertificateError(ChainError):
    """Raised when a commit certificate does not prove a quorum for its block."""

    code = "invalid_certificate"


class InvalidGenesisError(ChainError):
    """Raised when a genesis document is missing fields or has bad values."""

    code = "invalid_genesis"


class SnapshotError(ChainError):
    """Raised when a state-sync object from a peer does not prove what it claims.

    The subclasses say which proof failed; a node that meets one penalizes the peer
    that sent the object and fetches it elsewhere."""

    code = "invalid_snapshot"


class UnprovenHeaderError(SnapshotError):
    """Raised when a light block does not follow from the trusted validator sets: a
    certificate that does not verify, a skipped validator set change, a header that is
    not the operator's trusted checkpoint."""

    code = "unproven_header"


class ManifestMismatchError(SnapshotError):
    """Raised when a snapshot manifest's bucket hashes do not give the certified state
    root, or it names another height than the certified header."""

    code = "manifest_mismatch"


class InvalidChunkError(SnapshotError):
    """Raised when a snapshot chunk's entries do not give exactly the bucket hashes of
    its range in the manifest (or it is of another snapshot, range or order)."""

    code = "invalid_chunk"
