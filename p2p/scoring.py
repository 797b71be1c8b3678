"""Scores and bans: a penalty lowers a node id's score, and at `ban_score` the id and
its listen address are banned and the session is asked to close.

It never reads frames and never closes a socket itself; time comes from `clock`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from p2p.errors import FrameError, OversizedFrameError, UnknownMessageTypeError
from p2p.peers import (
    PENALTY_MALFORMED_FRAME,
    PENALTY_OVERSIZED_FRAME,
    PENALTY_UNKNOWN_TYPE,
    BanList,
    P2PConfig,
    ScoreBook,
)

log = logging.getLogger(__name__)


class Penalized(Protocol):
    """What scoring needs of a session: who it is, and a way to end it."""

    peer_id: str
    address: str
    listen_address: str

    def close(self, reason: str) -> None: ...


def get_frame_error_penalty(error: FrameError) -> float:
    """The points a peer loses for sending a frame that failed to decode."""
    if isinstance(error, OversizedFrameError):
        return PENALTY_OVERSIZED_FRAME
    if isinstance(error, UnknownMessageTypeError):
        return PENALTY_UNKNOWN_TYPE
    return PENALTY_MALFORMED_FRAME


class Scoring:
    """Scores of node ids (kept across reconnections) and bans of ids and addresses."""

    def __init__(self, config: P2PConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._scores = ScoreBook(config.score_recovery_per_s)
        self._bans = BanList()

    def get_score(self, peer_id: str) -> float:
        return self._scores.get(peer_id, self._clock())

    def is_banned(self, key: str) -> bool:
        """Whether a node id (hex) or a listen address is banned now."""
        return self._bans.is_banned(key, self._clock())

    def penalize(self, peer: Penalized, points: float, reason: str) -> None:
        """Lower the peer's score; at `ban_score` or below, ban it and end its session."""
        now = self._clock()
        score = self._scores.penalize(peer.peer_id, points, now)
        log.warning("peer %s (%s) penalized %g points, score %g: %s",
                    peer.peer_id[:16], peer.address, points, score, reason)
        if score > self._config.ban_score:
            return
        self._bans.ban([peer.peer_id, peer.listen_address], now + self._config.ban_duration_s)
        log.warning("banning peer %s (%s) for %g s: %s", peer.peer_id[:16],
                    peer.listen_address or peer.address, self._config.ban_duration_s, reason)
        peer.close(f"banned: {reason}")
