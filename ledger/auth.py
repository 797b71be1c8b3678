"""Who may act for an account: the check that a transaction's signers authorize its sender.

Signatures are verified before the ledger sees a transaction; this module only
decides whether the verified signers are the right ones. It never verifies a
signature itself and reads no state beyond the sender's multisig policy.
"""

from __future__ import annotations

from chain.crypto import compute_address
from chain.tx import Transaction
from ledger.accounts import AccountRecord
from ledger.errors import UnauthorizedError
from ledger.multisig import get_policy
from ledger.state import StateReader


def validate_authorization(view: StateReader, record: AccountRecord, tx: Transaction) -> None:
    """Raise UnauthorizedError unless `tx`'s signers may act for `tx.sender`.

    A multisig account (it has a policy) needs at least `threshold` signatures, every
    one by a member. Any other account is a single-key account: exactly one
    signature, by the key whose address is the sender.
    """
    policy = get_policy(view, tx.sender)
    if policy is not None:
        outsiders = [key for key in tx.signer_keys if key not in policy.members]
        if outsiders:
            raise UnauthorizedError(
                f"key {outsiders[0].hex()} is not a member of multisig {tx.sender.hex()}")
        if len(tx.signatures) < policy.threshold:
            raise UnauthorizedError(
                f"multisig {tx.sender.hex()} needs {policy.threshold} member signatures, "
                f"the transaction has {len(tx.signatures)}: collect more with "
                f"`govchain tx sign --add-signature`")
        return
    if len(tx.signatures) != 1:
        raise UnauthorizedError(
            f"account {tx.sender.hex()} is a single-key account: it needs exactly one "
            f"signature, the transaction has {len(tx.signatures)}")
    if compute_address(tx.signatures[0].public_key) != tx.sender:
        raise UnauthorizedError(
            f"the signing key's address is {compute_address(tx.signatures[0].public_key).hex()},"
            f" not the sender {tx.sender.hex()}: sign with the sender's key")
