"""Link shapes: delay, jitter, loss and a bandwidth cap for one direction of a devnet link.

The link proxy (devnet/links.py) asks `DeliverySchedule.plan` when each chunk of bytes
it read should reach the other side; this module holds that model, the parsing of
`40ms`, `1%`, `1mbit`, and the shape file DIR/shape.json. It is pure: no sockets, no
clock (the caller passes `now`), randomness only from the generator it is given.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

SHAPE_FILE = "shape.json"
SHAPE_APPLIED_FILE = "shape.applied.json"

SEGMENT_BYTES = 1448
"""What one TCP segment carries on a 1500-byte Ethernet path (MSS with timestamps)."""
RTO_MIN_S = 0.200
"""Linux's minimum retransmission timeout (TCP_RTO_MIN)."""
PTO_MIN_S = 0.010
"""Linux's floor for the tail loss probe timeout (RACK-TLP, RFC 8985)."""
DUPACK_THRESHOLD = 3
"""Segments that must follow a lost one for its loss to be found by duplicate acks."""
MAX_RETRANSMISSIONS = 15
"""Linux's tcp_retries2: a segment is retransmitted at most this often in the model."""
MAX_LOSS = 0.5
"""Highest loss accepted; a link that loses everything is a cut (`devnet partition`)."""
MAX_DELAY_MS = 60_000.0
"""Longest one-way delay accepted (a minute)."""
MERGE_S = 0.001
"""Consecutive segments due within this of each other are delivered in one write."""

ShapeKey = tuple[str, str]
"""(src, dst): the shape applies to the bytes that node `src` sends to node `dst`."""


class ShapeError(ValueError):
    """Raised when a delay, loss, rate or shape file cannot be read."""


@dataclass(frozen=True, slots=True)
class LinkShape:
    """How one direction of a link treats the bytes sent over it."""

    delay_ms: float = 0.0
    """One-way delay added to every byte."""
    jitter_ms: float = 0.0
    """Each chunk's delay is drawn uniformly from delay ± jitter (never below zero)."""
    loss: float = 0.0
    """Probability that a TCP segment (SEGMENT_BYTES) is lost and must be retransmitted."""
    rate_bps: int = 0
    """Bandwidth cap in bits per second; 0: unlimited."""

    def __post_init__(self) -> None:
        validate_shape(self)

    @property
    def is_clear(self) -> bool:
        return self == LinkShape()

    def to_doc(self) -> dict[str, Any]:
        return {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms, "loss": self.loss,
                "rate_bps": self.rate_bps}

    def describe(self) -> str:
        """`delay 40ms jitter 10ms loss 1% rate 1mbit`, or `clear`."""
        parts = []
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay {_number(self.delay_ms)}ms")
        if self.jitter_ms:
            parts.append(f"jitter {_number(self.jitter_ms)}ms")
        if self.loss:
            parts.append(f"loss {_number(self.loss * 100)}%")
        if self.rate_bps:
            parts.append(f"rate {format_rate(self.rate_bps)}")
        return " ".join(parts) or "clear"


def validate_shape(shape: LinkShape) -> None:
    for name in ("delay_ms", "jitter_ms"):
        value = getattr(shape, name)
        if not isinstance(value, int | float) or not 0 <= value <= MAX_DELAY_MS:
            raise ShapeError(f"{name} must be between 0 and {MAX_DELAY_MS:.0f}, not {value!r}")
    if not isinstance(shape.loss, int | float) or not 0 <= shape.loss <= MAX_LOSS:
        raise ShapeError(f"loss must be between 0 and {MAX_LOSS:.0%}, not {shape.loss!r} "
                         "(to cut a link, use `govchain devnet partition`)")
    if not isinstance(shape.rate_bps, int) or isinstance(shape.rate_bps, bool) \
            or shape.rate_bps < 0 or 0 < shape.rate_bps < 8 * SEGMENT_BYTES:
        raise ShapeError(f"rate must be 0 (unlimited) or at least {8 * SEGMENT_BYTES} bit/s "
                         f"(one segment a second), not {shape.rate_bps!r}")


def _number(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------ parsing


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?\s*$")
_DURATION_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?\s*$",
                   re.IGNORECASE)
_RATE_BPS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9,
             "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}


def parse_duration_ms(text: str) -> float:
    """`40ms`, `0.3s`, `500us` or a bare number of milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise ShapeError(f"{text!r} is not a duration (write 40ms, 0.3s or 500us)")
    return float(match.group(1)) * _DURATION_MS[match.group(2)]


def parse_loss(text: str) -> float:
    """`1%` or a fraction (`0.01`)."""
    body = text.strip()
    try:
        value = float(body[:-1]) / 100 if body.endswith("%") else float(body)
    except ValueError:
        raise ShapeError(f"{text!r} is not a loss (write 1% or 0.01)") from None
    if not math.isfinite(value):
        raise ShapeError(f"{text!r} is not a loss (write 1% or 0.01)")
    return value


def parse_rate_bps(text: str) -> int:
    """tc's units: `1mbit` is 10^6 bit/s, `1mbps` 10^6 bytes/s; a bare number is bit/s."""
    match = _RATE.match(text)
    if not match:
        raise ShapeError(f"{text!r} is not a rate (write 1mbit, 512kbit or 2mbps)")
    unit = (match.group(2) or "bit").lower()
    return round(float(match.group(1)) * _RATE_BPS[unit])


def format_rate(rate_bps: int) -> str:
    for unit, size in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if rate_bps >= size:
            return f"{rate_bps / size:g}{unit}"
    return f"{rate_bps}bit"


# ------------------------------------------------------------------ the model


class Random(Protocol):
    """What the schedule draws from (random.Random, or a script in tests)."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...


def get_rng(seed: int, key: ShapeKey, connection: int) -> random.Random:
    """The generator of one direction of one connection: the same seed, link and
    connection number give the same draws."""
    return random.Random(f"{seed}:{key[0]}->{key[1]}:{connection}")


class DeliverySchedule:
    """When the bytes sent over one direction of one connection reach the receiver.

    Each chunk read at `now` is cut into TCP segments. A segment leaves once the
    bandwidth cap lets it (serialisation at `rate_bps`), travels the one-way delay
    (drawn once per chunk from delay ± jitter), and with probability `loss` is lost:
    it then arrives one retransmission later (see `get_retransmission_s`). TCP hands
    bytes to the application in order, so no segment is delivered before the one
    ahead of it: a lost segment holds back everything behind it (head-of-line
    blocking), as on a real connection.
    """

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.link_free_at = -math.inf
        """When the bandwidth cap has sent everything planned so far."""
        self.last_delivery_at = -math.inf
        """When the last planned byte reaches the receiver."""
        self.lost_segments = 0
        """Segments lost so far (each retransmission lost counts again)."""

    def plan(self, now: float, size_bytes: int, shape: LinkShape, rtt_s: float
             ) -> list[tuple[float, int]]:
        """(deliver_at, size_bytes) pieces, in order, that add up to `size_bytes`."""
        one_way_s = max(0.0, shape.delay_ms + self._draw_jitter(shape)) / 1000
        segments = max(1, math.ceil(size_bytes / SEGMENT_BYTES))
        pieces: list[tuple[float, int]] = []
        for index in range(segments):
            size = min(SEGMENT_BYTES, size_bytes - index * SEGMENT_BYTES)
            sent_at = now
            if shape.rate_bps:
                sent_at = max(now, self.link_free_at) + size * 8 / shape.rate_bps
                self.link_free_at = sent_at
            arrive_at = sent_at + one_way_s + self._draw_loss_s(shape, rtt_s,
                                                               segments - index - 1)
            deliver_at = max(arrive_at, self.last_delivery_at)
            self.last_delivery_at = deliver_at
            if pieces and deliver_at - pieces[-1][0] < MERGE_S:
                pieces[-1] = (deliver_at, pieces[-1][1] + size)
            else:
                pieces.append((deliver_at, size))
        return pieces

    def _draw_jitter(self, shape: LinkShape) -> float:
        if not shape.jitter_ms:
            return 0.0
        return self.rng.uniform(-shape.jitter_ms, shape.jitter_ms)

    def _draw_loss_s(self, shape: LinkShape, rtt_s: float, following: int) -> float:
        """Extra time a segment takes because it (and maybe its retransmissions) was lost."""
        if not shape.loss:
            return 0.0
        extra = 0.0
        for attempt in range(MAX_RETRANSMISSIONS):
            if self.rng.random() >= shape.loss:
                break
            self.lost_segments += 1
            extra += get_retransmission_s(attempt, rtt_s, following)
        return extra


def get_retransmission_s(attempt: int, rtt_s: float, following: int) -> float:
    """How much later a segment arrives when its `attempt`-th transmission is lost.

    The first loss is found by duplicate acks when at least DUPACK_THRESHOLD segments
    follow it (fast retransmit: one round trip), otherwise by the tail loss probe
    (two round trips, at least PTO_MIN_S). A lost retransmission waits for the
    retransmission timeout (the round trip plus RTO_MIN_S), doubled at each attempt.
    """
    if attempt == 0:
        return rtt_s if following >= DUPACK_THRESHOLD else max(2 * rtt_s, PTO_MIN_S)
    return float((rtt_s + RTO_MIN_S) * 2 ** (attempt - 1))


# ------------------------------------------------------------------ the shape file


@dataclass(frozen=True, slots=True)
class ShapeSet:
    """The contents of DIR/shape.json: a version, a seed and the shaped directions."""

    version: int = 0
    """Raised by one on every change; the proxy echoes it in DIR/shape.applied.json."""
    seed: int = 0
    """Seeds every connection's draws of jitter and loss (see get_rng)."""
    shapes: Mapping[ShapeKey, LinkShape] | None = None
    """Shaped directions; a direction not listed is clear."""

    def get(self, src: str, dst: str) -> LinkShape:
        return (self.shapes or {}).get((src, dst), CLEAR)

    def items(self) -> list[tuple[ShapeKey, LinkShape]]:
        return sorted((self.shapes or {}).items())


CLEAR = LinkShape()


def parse_shape_file(text: str) -> ShapeSet:
    """{"version": n, "seed": s, "links": [{"src", "dst", "delay_ms", ...}, ...]}."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ShapeError(f"not JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("links", []), list):
        raise ShapeError('expected {"version": n, "seed": s, "links": [{"src": "node0", '
                         '"dst": "node1", "delay_ms": 40, ...}, ...]}')
    version, seed = doc.get("version", 0), doc.get("seed", 0)
    if not isinstance(version, int) or not isinstance(seed, int):
        raise ShapeError("version and seed must be integers")
    shapes: dict[ShapeKey, LinkShape] = {}
    for entry in doc.get("links", []):
        key = _read_key(entry)
        shapes[key] = _read_shape(entry)
    return ShapeSet(version, seed, shapes)


def _read_key(entry: Any) -> ShapeKey:
    if not isinstance(entry, dict):
        raise ShapeError(f"a link is an object, not {entry!r}")
    src, dst = entry.get("src"), entry.get("dst")
    if not (isinstance(src, str) and isinstance(dst, str) and src and dst and src != dst):
        raise ShapeError(f"a link names two different nodes in src and dst, not {entry!r}")
    return src, dst


def _read_shape(entry: dict[str, Any]) -> LinkShape:
    unknown = set(entry) - {"src", "dst", "delay_ms", "jitter_ms", "loss", "rate_bps"}
    if unknown:
        raise ShapeError(f"unknown fields {sorted(unknown)} in {entry!r}")
    try:
        return LinkShape(delay_ms=entry.get("delay_ms", 0.0),
                         jitter_ms=entry.get("jitter_ms", 0.0), loss=entry.get("loss", 0.0),
                         rate_bps=entry.get("rate_bps", 0))
    except ShapeError as e:
        raise ShapeError(f"{entry['src']}->{entry['dst']}: {e}") from None


def render_shape_file(shape_set: ShapeSet) -> str:
    links = [{"src": src, "dst": dst, **shape.to_doc()}
             for (src, dst), shape in shape_set.items() if not shape.is_clear]
    return json.dumps({"version": shape_set.version, "seed": shape_set.seed, "links": links},
                      indent=2) + "\n"


def replace_shapes(shape_set: ShapeSet, changes: Iterable[tuple[ShapeKey, LinkShape]],
                   *, seed: int | None = None) -> ShapeSet:
    """A new version with `changes` applied (a clear shape removes the direction)."""
    shapes = dict(shape_set.shapes or {})
    for key, shape in changes:
        if shape.is_clear:
            shapes.pop(key, None)
        else:
            shapes[key] = shape
    return ShapeSet(shape_set.version + 1, shape_set.seed if seed is None else seed, shapes)


def make_wan_profile(names: list[str], *, seed: int = 0, min_delay_ms: float = 20.0,
                     max_delay_ms: float = 80.0, jitter_ms: float = 10.0, loss: float = 0.01,
                     rate_bps: int = 0, slow_pair: tuple[str, str] | None = None,
                     slow_delay_ms: float = 300.0, sites: Mapping[str, str] | None = None,
                     near_delay_ms: float = 1.0) -> list[tuple[ShapeKey, LinkShape]]:
    """A wide-area network between `names`: each direction gets its own delay, drawn
    from `seed`, such that delay ± jitter stays within [min_delay_ms, max_delay_ms];
    every direction loses `loss`; both directions of `slow_pair` take `slow_delay_ms`.

    `sites` places nodes at another node's site (a public full node at its ministry's
    validator): two nodes at one site are `near_delay_ms` apart with no jitter and no
    loss (one data centre), and a node away from its site is as far from the others as
    its site is. Delays are drawn per pair of sites, in the order of `names`, so the
    validators' delays are the same with or without full nodes at their sites."""
    if not 0 <= min_delay_ms <= max_delay_ms:
        raise ShapeError(f"the delays must satisfy 0 <= min ({min_delay_ms:g} ms) <= max "
                         f"({max_delay_ms:g} ms)")
    jitter_ms = min(jitter_ms, (max_delay_ms - min_delay_ms) / 2)
    site_of = {name: (sites or {}).get(name, name) for name in names}
    site_names = list(dict.fromkeys(site_of[name] for name in names))
    rng = random.Random(f"wan:{seed}")
    pairs = [(src, dst) for src in site_names for dst in site_names if src != dst]
    slow = set(slow_pair or ())
    # The slow pair's draws come last, so that it leaves the other delays as they were.
    pairs.sort(key=lambda pair: set(pair) == slow)
    site_delay_ms = {pair: round(rng.uniform(min_delay_ms + jitter_ms,
                                             max_delay_ms - jitter_ms), 1) for pair in pairs}
    near = LinkShape(near_delay_ms, 0.0, 0.0, rate_bps)
    profile = []
    for src in names:
        for dst in names:
            if src == dst:
                continue
            if {src, dst} == slow:
                shape = LinkShape(slow_delay_ms, jitter_ms, loss, rate_bps)
            elif site_of[src] == site_of[dst]:
                shape = near
            else:
                shape = LinkShape(site_delay_ms[site_of[src], site_of[dst]], jitter_ms, loss,
                                  rate_bps)
            profile.append(((src, dst), shape))
    return profile
