"""Every ledger state key, built in this one module.

Each table has its own versioned prefix ("<table>/v<n>/"): a change to a record's
encoding gets a new version, so old and new records never share a key. Addresses are
fixed-size and asset symbols exclude "/", so no two keys collide. Never build a state
key by hand anywhere else.
"""

from __future__ import annotations

from chain.crypto import ADDRESS_SIZE

ACCOUNT_PREFIX = b"acct/v1/"
"""acct/v1/<address 20> -> account record {"nonce", "assets"}."""
BALANCE_PREFIX = b"bal/v1/"
"""bal/v1/<address 20>/<asset> -> balance, a positive integer (absent means 0)."""
VALIDATOR_SET_KEY = b"valset/v1"
"""valset/v1 -> the validator set that certifies the next block."""
CHAIN_PARAMS_KEY = b"params/v1"
"""params/v1 -> the chain parameters in force."""


def get_account_key(address: bytes) -> bytes:
    """The key of `address`'s account record."""
    assert len(address) == ADDRESS_SIZE
    return ACCOUNT_PREFIX + address


def get_balance_key(address: bytes, asset: str) -> bytes:
    """The key of `address`'s balance of `asset`."""
    assert len(address) == ADDRESS_SIZE
    return BALANCE_PREFIX + address + b"/" + asset.encode()


def get_balance_prefix(address: bytes) -> bytes:
    """The prefix of every balance key of `address`."""
    assert len(address) == ADDRESS_SIZE
    return BALANCE_PREFIX + address + b"/"
