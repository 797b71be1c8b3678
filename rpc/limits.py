"""Per-client limits of the RPC server: a token bucket per remote address, admin access.

`RequestGuard.admit` runs before a request body is read (HTTP) or a WebSocket is
accepted; it raises RpcError with a stable reason when a limit is hit and never
touches the node's state.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from rpc.dispatcher import RATE_LIMITED, CallContext, RpcError

LOCALHOST = frozenset({"127.0.0.1", "::1"})
"""Addresses counted as local for admin methods: exactly these, not all of 127/8."""
MAX_TRACKED_CLIENTS = 10_000


@dataclass(slots=True)
class TokenBucket:
    """`rate_per_s` tokens a second up to `burst`; each request takes one."""

    tokens: float
    updated_at: float

    def take(self, now: float, rate_per_s: float, burst: int) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        self.tokens = min(float(burst), self.tokens + (now - self.updated_at) * rate_per_s)
        self.updated_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate_per_s


class RateLimiter:
    """Token buckets by client address; the least recently seen are forgotten first."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, client: str, now: float | None = None) -> float:
        """0.0 when `client` may proceed, else the seconds to wait."""
        if self.rate_per_s <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = TokenBucket(float(self.burst), now)
            self._buckets[client] = bucket
            while len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        return bucket.take(now, self.rate_per_s, self.burst)


class RequestGuard:
    """Rate limit and admin check of each HTTP request or WebSocket message."""

    def __init__(self, limiter: RateLimiter, admin_token: str, *, allow_local: bool) -> None:
        self.limiter = limiter
        self.admin_token = admin_token
        self.allow_local = allow_local
        self.refused = 0

    def check_rate(self, remote: str) -> None:
        wait_s = self.limiter.take(remote)
        if wait_s > 0:
            self.refused += 1
            raise RpcError(RATE_LIMITED, "rate_limited",
                           f"more than {self.limiter.rate_per_s:g} requests/s from {remote} "
                           f"(burst {self.limiter.burst}); retry after {wait_s:.3f} s",
                           {"retry_after_s": round(wait_s, 3)})

    def is_admin(self, remote: str, authorization: str | None) -> bool:
        if self.allow_local and remote in LOCALHOST:
            return True
        if authorization is None or not authorization.startswith("Bearer "):
            return False
        offered = authorization.removeprefix("Bearer ").strip().encode()
        return hmac.compare_digest(offered, self.admin_token.encode())

    def admit(self, request: web.Request) -> CallContext:
        """The call context of an HTTP request; raises RpcError(rate_limited)."""
        remote = request.remote or ""
        self.check_rate(remote)
        return CallContext(remote, self.is_admin(remote, request.headers.get("Authorization")))
