"""The error tree of the ledger: why a transaction is refused or fails.

Every error has a stable machine-readable `code` (listed in docs/ledger.md) and a
message a person can act on; the RPC reports both. Our own bugs are assertions or
plain exceptions, never LedgerError.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of all errors raised by ledger rules."""

    code: str
    """The stable machine-readable reason, for example "insufficient_balance"."""
    message: str
    """What went wrong and what to do about it, for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _CodedError(LedgerError):
    """A LedgerError whose code is fixed by its class."""

    CODE = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class NonceTooLowError(_CodedError):
    """Raised when a transaction's nonce was already used by its sender."""

    CODE = "nonce_too_low"


class NonceTooHighError(_CodedError):
    """Raised when a transaction's nonce skips ahead of the sender's next nonce."""

    CODE = "nonce_too_high"


class InsufficientBalanceError(_CodedError):
    """Raised when an account holds less of an asset than it tries to move."""

    CODE = "insufficient_balance"


class BalanceOverflowError(_CodedError):
    """Raised when a credit would take a balance above the largest encodable amount."""

    CODE = "balance_overflow"


class UnknownAccountError(_CodedError):
    """Raised when an address has no account record (never funded or created)."""

    CODE = "unknown_account"


class UnknownTxTypeError(_CodedError):
    """Raised when no ledger module handles a transaction's type."""

    CODE = "unknown_tx_type"


class MalformedFieldsError(_CodedError):
    """Raised when a transaction's fields are missing, unknown or of the wrong type."""

    CODE = "malformed_fields"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


class InvalidAmountError(_CodedError):
    """Raised when an amount is a whole number but out of range (zero, negative, too big)."""

    CODE = "invalid_amount"


class UnauthorizedError(_CodedError):
    """Raised when a transaction's signers may not act for its sender."""

    CODE = "unauthorized"


class WrongChainError(_CodedError):
    """Raised when a transaction names another chain than the block being executed."""

    CODE = "wrong_chain"


class InvalidGenesisStateError(_CodedError):
    """Raised when a genesis document cannot be applied (bad asset, duplicate account...)."""

    CODE = "invalid_genesis"


class CorruptStateError(_CodedError):
    """Raised when a state record is missing or does not decode: the data directory is bad."""

    CODE = "corrupt_state"


# Government ledger modules (assets, roles, multisig, registry, governance).


class MissingRoleError(_CodedError):
    """Raised when the sender lacks the role a permissioned action needs."""

    CODE = "missing_role"


class UnknownAssetError(_CodedError):
    """Raised when an asset symbol names no created asset."""

    CODE = "unknown_asset"


class AssetExistsError(_CodedError):
    """Raised when an asset is created with a symbol already in use."""

    CODE = "asset_exists"


class NotReserveBackedError(_CodedError):
    """Raised when a reserve attestation names an asset that is not reserve-backed."""

    CODE = "not_reserve_backed"


class ReserveExceededError(_CodedError):
    """Raised when a mint would take a reserve-backed asset's supply above its reserve."""

    CODE = "reserve_exceeded"


class SupplyOverflowError(_CodedError):
    """Raised when a mint would take an asset's supply above the largest amount."""

    CODE = "supply_overflow"


class StaleAttestationError(_CodedError):
    """Raised when an attestation is not later than the previous one, or is in the future."""

    CODE = "stale_attestation"


class AccountFrozenError(_CodedError):
    """Raised when a frozen account would send or receive the asset it is frozen for."""

    CODE = "account_frozen"


class AlreadyFrozenError(_CodedError):
    """Raised when freezing an account that is already frozen for the asset."""

    CODE = "already_frozen"


class NotFrozenError(_CodedError):
    """Raised when unfreezing an account that is not frozen for the asset."""

    CODE = "not_frozen"


class AccountExistsError(_CodedError):
    """Raised when creating a multisig account whose address already has an account."""

    CODE = "account_exists"


class NotMultisigError(_CodedError):
    """Raised when a multisig-only transaction is sent by a single-key account."""

    CODE = "not_multisig"


class UnknownNamespaceError(_CodedError):
    """Raised when a registry namespace does not exist."""

    CODE = "unknown_namespace"


class NamespaceExistsError(_CodedError):
    """Raised when a namespace is created with a name already in use."""

    CODE = "namespace_exists"


class RecordExistsError(_CodedError):
    """Raised when record_put names a key that already has a record (use record_update)."""

    CODE = "record_exists"


class UnknownRecordError(_CodedError):
    """Raised when a record does not exist."""

    CODE = "unknown_record"


class ValueTooLargeError(_CodedError):
    """Raised when a record value exceeds its namespace's size limit."""

    CODE = "value_too_large"


class RecordRevokedError(_CodedError):
    """Raised when a revoked record would be changed: revocation is final."""

    CODE = "record_revoked"


class StatusUnchangedError(_CodedError):
    """Raised when a record's status is set to the status it already has."""

    CODE = "status_unchanged"


class PrivateNamespaceError(_CodedError):
    """Raised when a public record transaction names a private namespace, or a private
    one a public namespace: a private payload never goes on the chain."""

    CODE = "private_namespace"


class RecordErasedError(_CodedError):
    """Raised when a private record was erased by a lawful order: nothing reads or
    grants it any more; its commitment stays."""

    CODE = "record_erased"


class UnknownGrantError(_CodedError):
    """Raised when revoking a grant that does not exist or is already revoked."""

    CODE = "unknown_grant"


class AnchorOutOfOrderError(_CodedError):
    """Raised when a read-log anchor does not follow its holder's previous anchor."""

    CODE = "anchor_out_of_order"


class NotValidatorError(_CodedError):
    """Raised when a governance action needs a validator and the account or key is not one."""

    CODE = "not_validator"


class UnknownProposalError(_CodedError):
    """Raised when a proposal id names no proposal."""

    CODE = "unknown_proposal"


class ProposalClosedError(_CodedError):
    """Raised when voting on a proposal that already passed or failed."""

    CODE = "proposal_closed"


class ProposalExpiredError(_CodedError):
    """Raised when voting on a proposal after its expiry height."""

    CODE = "proposal_expired"


class AlreadyVotedError(_CodedError):
    """Raised when a validator votes twice on one proposal."""

    CODE = "already_voted"


class InvalidExpiryError(_CodedError):
    """Raised when a proposal's expiry height is not ahead or too far ahead."""

    CODE = "invalid_expiry"


class AlreadyValidatorError(_CodedError):
    """Raised when adding a validator whose key is already in the set."""

    CODE = "already_validator"


class CandidateNotAcceptedError(_CodedError):
    """Raised when adding a validator whose key has not proven possession (validator_accept)."""

    CODE = "candidate_not_accepted"


class BadAcceptanceError(_CodedError):
    """Raised when a validator acceptance signature does not verify for its key."""

    CODE = "bad_acceptance"


class ValidatorSetEmptyError(_CodedError):
    """Raised when a change would leave no validator."""

    CODE = "validator_set_empty"


class RemovesQuorumError(_CodedError):
    """Raised when validator removals at one height would reach a quorum of its set."""

    CODE = "removes_quorum"


class InvalidParamError(_CodedError):
    """Raised when a chain parameter change names an unknown parameter or a bad value."""

    CODE = "invalid_param"


class RoleExistsError(_CodedError):
    """Raised when granting a role the account already holds."""

    CODE = "role_exists"


class RoleNotHeldError(_CodedError):
    """Raised when revoking a role the account does not hold."""

    CODE = "role_not_held"


class TooManyError(_CodedError):
    """Raised when a bounded list (role holders, multisig members) would overflow."""

    CODE = "limit_reached"


class UpgradeHeightPassedError(_CodedError):
    """Raised when an upgrade is scheduled at or below the height that schedules it."""

    CODE = "upgrade_height_passed"


class UpgradeExistsError(_CodedError):
    """Raised when an upgrade name was scheduled before (a name is used once, ever)."""

    CODE = "upgrade_exists"


class UpgradePendingError(_CodedError):
    """Raised when an upgrade is scheduled while another one is still pending."""

    CODE = "upgrade_pending"


class UnknownUpgradeError(_CodedError):
    """Raised when cancelling an upgrade that is not scheduled (never, or done already)."""

    CODE = "unknown_upgrade"


class UpgradeNotImplementedError(_CodedError):
    """Raised when a block at an upgrade's height is executed by a version of govchain
    that does not implement that upgrade: it must not run past it."""

    CODE = "upgrade_not_implemented"


class TxNotApplicable(LedgerError):
    """Raised when a transaction must never be in a block (wrong nonce, unauthorized...).

    Carries the underlying error's code. A proposer drops such a transaction; a
    validator rejects a block that contains one. `index` names its place in the block.
    """

    def __init__(self, cause: LedgerError, index: int | None = None) -> None:
        where = "" if index is None else f"transaction {index} of the block: "
        super().__init__(cause.code, where + cause.message)
        self.cause = cause
        self.index = index


# Stablecoin rules: identity tiers, gold attestations, redemptions, the travel rule.


class TierBalanceLimitError(_CodedError):
    """Raised when a credit would leave an account above its tier's balance limit."""

    CODE = "tier_balance_limit"


class TierPaymentLimitError(_CodedError):
    """Raised when a payment exceeds the sender's tier's per-payment limit."""

    CODE = "tier_payment_limit"


class TierDailyLimitError(_CodedError):
    """Raised when a payment would take the sender's rolling-day total above its tier's limit."""

    CODE = "tier_daily_limit"


class NotAllowedToHoldError(_CodedError):
    """Raised when an account whose tier has a zero balance limit would receive the asset."""

    CODE = "not_allowed_to_hold"


class UnknownTierError(_CodedError):
    """Raised when a tier number is not defined for the asset."""

    CODE = "unknown_tier"


class AttestationExpiredError(_CodedError):
    """Raised when a mint finds the latest attestation older than the asset's maximum age."""

    CODE = "attestation_expired"


class UnregisteredAuditorKeyError(_CodedError):
    """Raised when a report is signed by a key not registered for that auditor and asset."""

    CODE = "unregistered_auditor_key"


class BadReportSignatureError(_CodedError):
    """Raised when an attestation's report signature does not verify."""

    CODE = "bad_report_signature"


class AttestationIncompleteError(_CodedError):
    """Raised when an asset with a reserve policy gets an attestation without the gold fields."""

    CODE = "attestation_incomplete"


class ReserveWeightMismatchError(_CodedError):
    """Raised when the attested reserve is not the fine weight times the policy's rate."""

    CODE = "reserve_weight_mismatch"


class UnknownRedemptionError(_CodedError):
    """Raised when a redemption request id names no request."""

    CODE = "unknown_redemption"


class RedemptionClosedError(_CodedError):
    """Raised when settling a redemption request that was already paid or refused."""

    CODE = "redemption_closed"


class TravelRuleRequiredError(_CodedError):
    """Raised when a provider-to-provider transfer at or above the threshold lacks a commitment."""

    CODE = "travel_rule_required"
