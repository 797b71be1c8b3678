"""The little of a node's JSON-RPC that devnet needs: node_status, with a short timeout.

Standard library only, synchronous: devnet commands are short-lived scripts. A node
that does not answer is reported as None, never as an exception to the caller.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any


def call(rpc_url: str, method: str, timeout_s: float = 2.0, **params: Any) -> Any:
    """Call `method` on the node at `rpc_url` (its base URL); raises OSError or ValueError."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(rpc_url.rstrip("/") + "/rpc", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        doc = json.loads(response.read())
    if not isinstance(doc, dict) or "result" not in doc:
        raise ValueError(f"{method} failed: {doc.get('error') if isinstance(doc, dict) else doc}")
    return doc["result"]


def get_node_status(rpc_url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The node's node_status, or None when it does not answer (yet)."""
    try:
        result = call(rpc_url, "node_status", timeout_s=timeout_s)
    except (OSError, ValueError, urllib.error.URLError, http.client.HTTPException):
        return None
    return result if isinstance(result, dict) else None
