"""The govchain Python SDK: keys, transactions (any type, multisig, offline signing),
sync and async clients, subscriptions that resume, typed errors, proof checks.

    from node.sdk import Client, load_key
    client = Client("http://127.0.0.1:8545")
    result = client.transfer(load_key("alice.json"), bob_address, 10, "GOV")

docs/sdk.md is the tutorial.
"""

from node.sdk.client import AsyncClient, Client, Subscription
from node.sdk.errors import (
    BusyError,
    InvalidParamsError,
    MethodNotFoundError,
    NotFoundError,
    RateLimitedError,
    RpcClientError,
    RpcTimeoutError,
    TooLargeError,
    TxRejectedError,
    UnauthorizedError,
    UnreachableError,
)
from node.sdk.keys import generate_key, load_key, save_key
from node.sdk.proof import ProofError, verify_block, verify_state
from node.sdk.tx import (
    add_signature_to_file,
    build_tx,
    load_tx_file,
    save_tx_file,
    sign_tx,
    tx_from_json,
    tx_to_json,
)

__all__ = [
    "AsyncClient", "BusyError", "Client", "InvalidParamsError", "MethodNotFoundError",
    "NotFoundError", "ProofError", "RateLimitedError", "RpcClientError", "RpcTimeoutError",
    "Subscription", "TooLargeError", "TxRejectedError", "UnauthorizedError",
    "UnreachableError", "add_signature_to_file", "build_tx", "generate_key", "load_key",
    "load_tx_file", "save_key", "save_tx_file", "sign_tx", "tx_from_json", "tx_to_json",
    "verify_block", "verify_state",
]
