"""The error tree of the p2p layer.

Errors caused by a remote peer (bad frames, bad handshakes, timeouts) are P2PError
subclasses with a stable `code`; the network turns them into a score penalty and a
disconnect, never a crash. Our own bugs are assertions, never P2PError.
"""

from __future__ import annotations


class P2PError(Exception):
    """Root of all errors raised by the p2p layer."""

    code: str = "p2p_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------ frames


class FrameError(P2PError):
    """Raised when a frame received from a peer cannot be accepted."""

    code = "bad_frame"


class MalformedFrameError(FrameError):
    """Raised when a frame is not a canonical [type, request_id, payload] array or its
    payload does not have the shape its type requires."""

    code = "malformed_frame"


class OversizedFrameError(FrameError):
    """Raised when a frame is larger than the limit for its message type."""

    code = "oversized_frame"


class UnknownMessageTypeError(FrameError):
    """Raised when a frame carries a type tag this protocol version does not define."""

    code = "unknown_message_type"


# ---------------------------------------------------------------- handshake


class HandshakeError(P2PError):
    """Raised when a connection fails the handshake; the connection is closed."""

    code = "handshake_failed"


class WrongChainError(HandshakeError):
    """Raised when the peer runs another chain id: check the peer address."""

    code = "wrong_chain"


class WrongGenesisError(HandshakeError):
    """Raised when the peer has another genesis hash: one side has a wrong genesis file."""

    code = "wrong_genesis"


class ProtocolVersionError(HandshakeError):
    """Raised when the peer speaks a protocol version we do not: upgrade one side."""

    code = "protocol_version"


class BadHandshakeSignatureError(HandshakeError):
    """Raised when the peer's AUTH signature does not prove its node key."""

    code = "bad_handshake_signature"


class SelfConnectionError(HandshakeError):
    """Raised when the peer presents our own node key: the address points at this node."""

    code = "self_connection"


class DuplicatePeerError(HandshakeError):
    """Raised when a peer with this node key is already connected (or connecting)."""

    code = "duplicate_peer"


class PeerNotAllowedError(HandshakeError):
    """Raised when the peer's node key is not in the configured allow-list."""

    code = "not_allowed"


class PeerBannedError(HandshakeError):
    """Raised when the peer's node key or address is banned for misbehaviour."""

    code = "banned"


class TooManyPeersError(HandshakeError):
    """Raised when this node already has its maximum number of peers."""

    code = "too_many_peers"


class HandshakeTimeoutError(HandshakeError):
    """Raised when the peer does not complete the handshake in time."""

    code = "handshake_timeout"


class HandshakeRefusedError(HandshakeError):
    """Raised when the peer refused us with an ERROR frame; `remote_code` says why."""

    code = "refused_by_peer"

    def __init__(self, remote_code: str, remote_message: str) -> None:
        super().__init__(f"peer refused the connection ({remote_code}): {remote_message}")
        self.remote_code = remote_code
        self.remote_message = remote_message


# ------------------------------------------------------------------ requests


class PeerNotConnectedError(P2PError):
    """Raised when sending to or requesting from a peer that is not connected."""

    code = "peer_not_connected"


class RequestTimeoutError(P2PError):
    """Raised when a peer does not answer a request in time."""

    code = "request_timeout"


class RequestRefusedError(P2PError):
    """Raised when a peer answers a request with ERROR (it cannot or will not answer)."""

    code = "request_refused"

    def __init__(self, remote_code: str, remote_message: str) -> None:
        super().__init__(f"peer refused the request ({remote_code}): {remote_message}")
        self.remote_code = remote_code
        self.remote_message = remote_message


class ConnectError(P2PError):
    """Raised when a peer address cannot be reached (refused, unreachable, timed out)."""

    code = "connect_failed"


class InvalidAddressError(P2PError):
    """Raised when a peer address is not of the form host:port."""

    code = "invalid_address"


class ConnectionClosedError(P2PError):
    """Raised when the peer closed the connection while we waited for a frame."""

    code = "connection_closed"
