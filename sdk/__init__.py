"""The govchain Python SDK: what an integrator imports to talk to a node and check its answers.

Keys, transactions (any type, multisig, offline signing), sync and async clients,
subscriptions that resume, typed errors, proof checks. It stands on chain/ alone (and
ledger's state-key layout), never on the node, so it can ship as its own distribution.

    from sdk import Client, load_key
    client = Client("http://127.0.0.1:8545")
    result = client.transfer(load_key("alice.json"), bob_address, 10, "GOV")

docs/sdk.md is the tutorial.
"""

from chain.keyfile import KeyFileError, WrongPassphraseError
from sdk.bundle import (
    BundleError,
    Checkpoint,
    VerifiedFact,
    check_document,
    load_genesis,
    verify_bundle,
)
from sdk.bundle_builder import (
    build_account_bundle,
    build_payment_bundle,
    build_record_bundle,
    encode_bundle,
)
from sdk.client import AsyncClient, Client, Subscription
from sdk.errors import (
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
from sdk.keys import generate_key, load_key, save_key
from sdk.proof import (
    ProofError,
    ProvenTx,
    verify_block,
    verify_state,
    verify_tx,
    verify_tx_succeeded,
)
from sdk.tx import (
    add_signature_to_file,
    build_tx,
    load_tx_file,
    save_tx_file,
    sign_tx,
    tx_from_json,
    tx_to_json,
)

__all__ = [
    "AsyncClient",
    "BundleError",
    "BusyError",
    "Checkpoint",
    "Client",
    "InvalidParamsError",
    "KeyFileError",
    "MethodNotFoundError",
    "NotFoundError",
    "ProofError",
    "ProvenTx",
    "RateLimitedError",
    "RpcClientError",
    "RpcTimeoutError",
    "Subscription",
    "TooLargeError",
    "TxRejectedError",
    "UnauthorizedError",
    "UnreachableError",
    "VerifiedFact",
    "WrongPassphraseError",
    "add_signature_to_file",
    "build_account_bundle",
    "build_payment_bundle",
    "build_record_bundle",
    "build_tx",
    "check_document",
    "encode_bundle",
    "generate_key",
    "load_genesis",
    "load_key",
    "load_tx_file",
    "save_key",
    "save_tx_file",
    "sign_tx",
    "tx_from_json",
    "tx_to_json",
    "verify_block",
    "verify_bundle",
    "verify_state",
    "verify_tx",
    "verify_tx_succeeded",
]
