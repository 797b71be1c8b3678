"""Why a transaction is refused, as one vocabulary for admission, mempool, gossip and RPC.

`RejectionCode` names every code a transaction can be refused or fail with; its values
are the wire strings clients switch on (docs/rpc.md#transaction-rejections) and never
change. What a code implies (the refusal is permanent, only a faulty relay causes it,
the node is merely busy) is decided here and nowhere else. Nothing here refuses anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RejectionCode(StrEnum):
    """A stable reason a transaction is refused (admission, mempool) or fails (execution).

    The chain and ledger layers raise these codes as plain strings (they sit below the
    node); tests/node/test_rejection_codes.py proves each of theirs is a member here.
    """

    # The bytes: decoding, chain id and signatures (chain/errors.py).
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    WRONG_CHAIN = "wrong_chain"
    BAD_SIGNATURE = "bad_signature"
    # The mempool (node/mempool.py).
    NONCE_TOO_LOW = "nonce_too_low"
    NONCE_TOO_HIGH = "nonce_too_high"
    NONCE_IN_USE = "nonce_in_use"
    MEMPOOL_FULL = "mempool_full"
    NONCE_USED = "nonce_used"
    EXPIRED = "expired"
    FLUSHED = "flushed"
    # The ledger's admission checks and its rules at execution (ledger/errors.py).
    UNKNOWN_ACCOUNT = "unknown_account"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_TX_TYPE = "unknown_tx_type"
    MALFORMED_FIELDS = "malformed_fields"
    INVALID_AMOUNT = "invalid_amount"
    UNKNOWN_ASSET = "unknown_asset"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    BALANCE_OVERFLOW = "balance_overflow"
    MISSING_ROLE = "missing_role"
    ASSET_EXISTS = "asset_exists"
    NOT_RESERVE_BACKED = "not_reserve_backed"
    RESERVE_EXCEEDED = "reserve_exceeded"
    SUPPLY_OVERFLOW = "supply_overflow"
    STALE_ATTESTATION = "stale_attestation"
    ACCOUNT_FROZEN = "account_frozen"
    ALREADY_FROZEN = "already_frozen"
    NOT_FROZEN = "not_frozen"
    ACCOUNT_EXISTS = "account_exists"
    NOT_MULTISIG = "not_multisig"
    UNKNOWN_NAMESPACE = "unknown_namespace"
    NAMESPACE_EXISTS = "namespace_exists"
    RECORD_EXISTS = "record_exists"
    UNKNOWN_RECORD = "unknown_record"
    VALUE_TOO_LARGE = "value_too_large"
    RECORD_REVOKED = "record_revoked"
    STATUS_UNCHANGED = "status_unchanged"
    PRIVATE_NAMESPACE = "private_namespace"
    RECORD_ERASED = "record_erased"
    UNKNOWN_GRANT = "unknown_grant"
    ANCHOR_OUT_OF_ORDER = "anchor_out_of_order"
    NOT_VALIDATOR = "not_validator"
    UNKNOWN_PROPOSAL = "unknown_proposal"
    PROPOSAL_CLOSED = "proposal_closed"
    PROPOSAL_EXPIRED = "proposal_expired"
    ALREADY_VOTED = "already_voted"
    INVALID_EXPIRY = "invalid_expiry"
    ALREADY_VALIDATOR = "already_validator"
    CANDIDATE_NOT_ACCEPTED = "candidate_not_accepted"
    BAD_ACCEPTANCE = "bad_acceptance"
    VALIDATOR_SET_EMPTY = "validator_set_empty"
    REMOVES_QUORUM = "removes_quorum"
    INVALID_PARAM = "invalid_param"
    ROLE_EXISTS = "role_exists"
    ROLE_NOT_HELD = "role_not_held"
    LIMIT_REACHED = "limit_reached"
    UPGRADE_HEIGHT_PASSED = "upgrade_height_passed"
    UPGRADE_EXISTS = "upgrade_exists"
    UPGRADE_PENDING = "upgrade_pending"
    UNKNOWN_UPGRADE = "unknown_upgrade"
    UPGRADE_NOT_IMPLEMENTED = "upgrade_not_implemented"
    # The node (node/upgrades.py).
    HALTED_FOR_UPGRADE = "halted_for_upgrade"
    # The stablecoin: tiers, gold attestations, redemptions, travel rule.
    TIER_BALANCE_LIMIT = "tier_balance_limit"
    TIER_PAYMENT_LIMIT = "tier_payment_limit"
    TIER_DAILY_LIMIT = "tier_daily_limit"
    NOT_ALLOWED_TO_HOLD = "not_allowed_to_hold"
    UNKNOWN_TIER = "unknown_tier"
    ATTESTATION_EXPIRED = "attestation_expired"
    UNREGISTERED_AUDITOR_KEY = "unregistered_auditor_key"
    BAD_REPORT_SIGNATURE = "bad_report_signature"
    ATTESTATION_INCOMPLETE = "attestation_incomplete"
    RESERVE_WEIGHT_MISMATCH = "reserve_weight_mismatch"
    UNKNOWN_REDEMPTION = "unknown_redemption"
    REDEMPTION_CLOSED = "redemption_closed"
    TRAVEL_RULE_REQUIRED = "travel_rule_required"

    @property
    def is_permanent(self) -> bool:
        """No later state can undo it: the same bytes are refused again, so a node need
        not even decode them again (Node.is_recently_seen)."""
        return self in _PERMANENT

    @property
    def is_peer_fault(self) -> bool:
        """Only a faulty or hostile relay sends it: an honest peer relays only what it
        admitted, and these do not depend on state (the peer's TXS frame is rejected)."""
        return self in _PEER_FAULTS

    @property
    def is_busy(self) -> bool:
        """Not a verdict on the transaction: the node is at a cap, the client retries;
        nothing is remembered about it."""
        return self in (RejectionCode.MEMPOOL_FULL, RejectionCode.HALTED_FOR_UPGRADE)


_PEER_FAULTS = frozenset({RejectionCode.BAD_SIGNATURE, RejectionCode.MALFORMED,
                          RejectionCode.WRONG_CHAIN, RejectionCode.TOO_LARGE})
_PERMANENT = _PEER_FAULTS | {RejectionCode.NONCE_TOO_LOW, RejectionCode.NONCE_USED}


class Where(StrEnum):
    """Where a node found that a transaction will never be final."""

    ADMISSION = "admission"
    EVICTION = "eviction"
    EXPIRY = "expiry"
    EXECUTION = "execution"


MAX_REJECTION_MESSAGE = 200
"""Characters of a message the rejection memory keeps: the node's own messages fit, and
a longer one (a ledger message quoting values) cannot make an entry cost more."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a transaction this node saw will never be final: all the rejection memory keeps
    of it (a shared code, a short message, a shared place): about 390 bytes with its key."""

    code: RejectionCode
    """Stable machine-readable reason, e.g. nonce_too_low."""
    message: str
    """What happened, in words (cut to MAX_REJECTION_MESSAGE characters)."""
    where: Where
    """admission, eviction, expiry or execution."""

    def __post_init__(self) -> None:
        if len(self.message) > MAX_REJECTION_MESSAGE:
            object.__setattr__(self, "message", self.message[:MAX_REJECTION_MESSAGE])

    @classmethod
    def of(cls, code: str, message: str, where: Where) -> Rejection:
        """A rejection from a lower layer's code (a member's value) and message."""
        return cls(RejectionCode(code), message, where)
