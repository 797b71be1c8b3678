"""Who may act for an account: the check that a transaction's signers authorize its sender.

Signatures are verified before the ledger sees a transaction; this module only
decides whether the verified signers are the right ones. It never verifies a
signature itself and never reads state beyond the account record it is given.
"""

from __future__ import annotations

from chain.crypto import compute_address
from chain.tx import Transaction
from ledger.accounts import AccountRecord
from ledger.errors import UnauthorizedError


def validate_authorization(record: AccountRecord, tx: Transaction) -> None:
    """Raise UnauthorizedError unless `tx`'s signers may act for `tx.sender`.

    Every account is a single-key account today: exactly one signature, by the key
    whose address is the sender. Multisig accounts will keep their policy (threshold,
    members) in the account record and be checked here, the one place to change.
    """
    if len(tx.signatures) != 1:
        raise UnauthorizedError(
            f"account {tx.sender.hex()} is a single-key account: it needs exactly one "
            f"signature, the transaction has {len(tx.signatures)}")
    if compute_address(tx.signatures[0].public_key) != tx.sender:
        raise UnauthorizedError(
            f"the signing key's address is {compute_address(tx.signatures[0].public_key).hex()},"
            f" not the sender {tx.sender.hex()}: sign with the sender's key")
