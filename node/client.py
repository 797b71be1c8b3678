"""The Python SDK's clients, importable as before; the SDK itself is node/sdk/."""

from node.sdk.client import AsyncClient, Client, Subscription
from node.sdk.errors import RpcClientError

__all__ = ["AsyncClient", "Client", "RpcClientError", "Subscription"]
