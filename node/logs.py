"""Log setup for the node process: human text or JSON lines, with consensus context.

Every record carries the node's current consensus height and round (read when the
record is made) and the peer it concerns when the caller passes `extra={"peer": id}`.
Nothing here decides what is logged; secrets never reach a log call (node.keystore).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable

ContextProvider = Callable[[], tuple[int, int]]
"""Returns (height, round) of the consensus in progress."""

_context: list[ContextProvider] = []

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s h=%(height)s r=%(round)s%(peer_text)s: " \
               "%(message)s"


def set_log_context(provider: ContextProvider | None) -> None:
    """Install (or with None remove) the source of height and round for every record."""
    _context.clear()
    if provider is not None:
        _context.append(provider)


class ContextFilter(logging.Filter):
    """Adds height, round and peer to each record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "height"):
            height, round_ = None, None
            # A log line must never fail for want of context.
            with contextlib.suppress(Exception):
                if _context:
                    height, round_ = _context[0]()
            record.height, record.round = height, round_
        peer = getattr(record, "peer", None)
        record.peer = peer
        record.peer_text = f" peer={str(peer)[:12]}" if peer else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, height, round, peer."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
            "height": getattr(record, "height", None), "round": getattr(record, "round", None),
        }
        peer = getattr(record, "peer", None)
        if peer:
            doc["peer"] = peer
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"), default=str)


def setup_logging(level: str, log_format: str = "human") -> None:
    """Route the root logger to stderr in `log_format` ("human" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(HUMAN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
