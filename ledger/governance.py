"""Governance: validators propose and vote; a proposal that gathers a quorum takes effect.

Actions: add_validator, remove_validator, replace_validator, grant_role, revoke_role,
create_asset, create_namespace, set_param, schedule_upgrade, cancel_upgrade
(ledger/upgrades.py), create_private_namespace (ledger/private.py), and the
stablecoin's set_tier, set_default_tier, set_reserve_policy, register_auditor_key,
set_travel_rule. A proposal passes in the transaction whose vote brings the approvals
of the validator set in force to floor(2n/3)+1 before its expiry height, and its action
runs right there, so every node applies it at the same place.
A validator-set change is written to valset/v1, which certifies the *next* height.
A candidate key must first prove possession (validator_accept) so that a mistyped or
absent key cannot be voted in. Theory of operation and codes: docs/ledger.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chain.block import MAX_BLOCK_BYTES
from chain.crypto import (
    DOMAIN_VALIDATOR_ACCEPT,
    PublicKey,
    compute_address,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import ChainError
from chain.genesis import ChainParams, Genesis
from chain.tx import MAX_TX_BYTES, Transaction
from chain.vote import MAX_VALIDATORS, Validator, ValidatorSet
from ledger import fields as f
from ledger.accounts import EMPTY_ACCOUNT, get_account_record, put_account_record
from ledger.assets import apply_create_asset, validate_create_asset_args
from ledger.errors import (
    AlreadyValidatorError,
    AlreadyVotedError,
    BadAcceptanceError,
    CandidateNotAcceptedError,
    CorruptStateError,
    InvalidExpiryError,
    InvalidGenesisStateError,
    InvalidParamError,
    LedgerError,
    MalformedFieldsError,
    NotValidatorError,
    ProposalClosedError,
    ProposalExpiredError,
    RemovesQuorumError,
    TooManyError,
    UnknownProposalError,
    ValidatorSetEmptyError,
)
from ledger.interface import BlockContext, Event, TxHandler
from ledger.keys import (
    CHAIN_PARAMS_KEY,
    PROPOSAL_COUNT_KEY,
    VALIDATOR_SET_BASE_KEY,
    VALIDATOR_SET_KEY,
    get_candidate_key,
    get_proposal_key,
)
from ledger.private import (
    CREATE_PRIVATE_NAMESPACE,
    apply_create_private_namespace,
    validate_create_private_namespace_args,
)
from ledger.registry import apply_create_namespace, validate_create_namespace_args
from ledger.reserve import GOVERNANCE_ACTIONS as RESERVE_ACTIONS
from ledger.roles import GRANTABLE_ROLES, apply_grant_role, apply_revoke_role
from ledger.state import Overlay, StateReader, get_value, put_value
from ledger.tiers import GOVERNANCE_ACTIONS as TIER_ACTIONS
from ledger.travel import GOVERNANCE_ACTIONS as TRAVEL_ACTIONS
from ledger.upgrades import (
    CANCEL_UPGRADE,
    SCHEDULE_UPGRADE,
    apply_cancel_upgrade,
    apply_schedule_upgrade,
    validate_cancel_upgrade_args,
    validate_schedule_upgrade_args,
)

PROPOSE = "propose"
VOTE = "vote"
VALIDATOR_ACCEPT = "validator_accept"

ADD_VALIDATOR = "add_validator"
REMOVE_VALIDATOR = "remove_validator"
REPLACE_VALIDATOR = "replace_validator"
GRANT_ROLE = "grant_role"
REVOKE_ROLE = "revoke_role"
CREATE_ASSET = "create_asset"
CREATE_NAMESPACE = "create_namespace"
SET_PARAM = "set_param"

OPEN, PASSED, FAILED, EXPIRED = "open", "passed", "failed", "expired"
MAX_VOTING_BLOCKS = 1_000_000
"""The furthest ahead a proposal's expiry height may be."""
MAX_VALIDATOR_NAME = 64
PARAM_BOUNDS = {"max_tx_bytes": (1024, MAX_TX_BYTES),
                "max_block_bytes": (64 * 1024, MAX_BLOCK_BYTES)}
"""Parameters with bounds beyond "a positive integer": what the codec and p2p carry."""


# ------------------------------------------------------------------ validator set


def get_validator_set(view: StateReader) -> ValidatorSet:
    value = get_value(view, VALIDATOR_SET_KEY, "validator set")
    if value is None:
        raise CorruptStateError("the validator set is missing: was genesis applied?")
    try:
        return ValidatorSet.from_value(value)
    except ChainError as e:
        raise CorruptStateError(f"the validator set does not decode: {e}") from e


def get_validator_key(view: StateReader, address: bytes) -> PublicKey:
    """The validator key whose account is `address`; NotValidatorError if none."""
    for validator in get_validator_set(view).validators:
        if compute_address(validator.public_key) == address:
            return validator.public_key
    raise NotValidatorError(f"account {address.hex()} is not a validator's account "
                            f"(the address of a key in the validator set in force)")


def get_acceptance_payload(public_key: bytes, name: str) -> list[Any]:
    """What a candidate signs in DOMAIN_VALIDATOR_ACCEPT to prove it holds its key."""
    return [public_key, name]


def sign_acceptance(chain_id: str, key: Any, name: str) -> bytes:
    """The acceptance signature of `key` (a chain.crypto.KeyPair) for a validator_accept."""
    signature: bytes = key.sign(signing_bytes(DOMAIN_VALIDATOR_ACCEPT, chain_id,
                                              get_acceptance_payload(key.public_key, name)))
    return signature


def apply_validator_set(view: Overlay, ctx: BlockContext, new_set: tuple[Validator, ...]
                        ) -> None:
    """Write the set certifying ctx.height + 1; refuse an empty set or removing a quorum.

    "At once" means at one height: removals are counted against the set certifying
    ctx.height, remembered in valsetbase/v1 before its first change at this height.
    """
    if not new_set:
        raise ValidatorSetEmptyError("the change would leave no validator")
    if len(new_set) > MAX_VALIDATORS:
        raise TooManyError(f"a validator set has at most {MAX_VALIDATORS} validators")
    base_value = get_value(view, VALIDATOR_SET_BASE_KEY, "validator set base")
    if base_value is None or base_value[0] != ctx.height:
        base = get_validator_set(view)
        put_value(view, VALIDATOR_SET_BASE_KEY, [ctx.height, base.to_value()])
    else:
        base = ValidatorSet.from_value(base_value[1])
    new_keys = {v.public_key for v in new_set}
    removed = [v.public_key for v in base.validators if v.public_key not in new_keys]
    if len(removed) >= base.quorum:
        raise RemovesQuorumError(
            f"the set certifying height {ctx.height} has {base.size} validators, quorum "
            f"{base.quorum}: removing {len(removed)} of them at one height is refused; "
            f"remove fewer per height")
    put_value(view, VALIDATOR_SET_KEY, ValidatorSet(new_set).to_value())


# ------------------------------------------------------------------ actions


def _validate_accepted(view: StateReader, key: PublicKey) -> None:
    """Refuse a key whose holder has not sent validator_accept signed with it."""
    if view.get(get_candidate_key(key)) is None:
        raise CandidateNotAcceptedError(
            f"key {key.hex()} has not proven possession: its holder must first send "
            f"validator_accept signed with it")


def _ensure_validator_account(view: Overlay, key: PublicKey) -> None:
    """Give a new validator key an account, so that it can propose and vote at once."""
    address = compute_address(key)
    if get_account_record(view, address) is None:
        put_account_record(view, address, EMPTY_ACCOUNT)


def _validate_add_validator(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"public_key", "name"}))
    f.expect_public_key(args, "public_key")
    f.expect_text(args, "name", MAX_VALIDATOR_NAME)


def _apply_add_validator(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                         ) -> list[Event]:
    key, name = PublicKey(args["public_key"]), args["name"]
    current = get_validator_set(view)
    if current.is_member(key):
        raise AlreadyValidatorError(f"key {key.hex()} is a validator already")
    _validate_accepted(view, key)
    apply_validator_set(view, ctx, (*current.validators, Validator(key, name)))
    _ensure_validator_account(view, key)
    return [Event("validator_added", {"public_key": key, "name": name,
                                      "from_height": ctx.height + 1})]


def _validate_remove_validator(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"public_key"}))
    f.expect_public_key(args, "public_key")


def _apply_remove_validator(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                            ) -> list[Event]:
    key = args["public_key"]
    current = get_validator_set(view)
    if not current.is_member(key):
        raise NotValidatorError(f"key {key.hex()} is not in the validator set")
    apply_validator_set(view, ctx, tuple(v for v in current.validators if v.public_key != key))
    return [Event("validator_removed", {"public_key": key, "from_height": ctx.height + 1})]


def _validate_replace_validator(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"public_key", "new_public_key"}))
    f.expect_public_key(args, "public_key")
    f.expect_public_key(args, "new_public_key")


def _apply_replace_validator(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                             ) -> list[Event]:
    """Swap one key for another in place: same size, quorum, turn and name.

    Adding the new key and then removing the old one would pass through a set of n+1,
    whose quorum may be one more than the validators actually signing.
    """
    old, new = PublicKey(args["public_key"]), PublicKey(args["new_public_key"])
    current = get_validator_set(view)
    if not current.is_member(old):
        raise NotValidatorError(f"key {old.hex()} is not in the validator set")
    if current.is_member(new):
        raise AlreadyValidatorError(f"key {new.hex()} is a validator already")
    _validate_accepted(view, new)
    name = next(v.name for v in current.validators if v.public_key == old)
    apply_validator_set(view, ctx, tuple(Validator(new, name) if v.public_key == old else v
                                         for v in current.validators))
    _ensure_validator_account(view, new)
    return [Event("validator_replaced", {"public_key": old, "new_public_key": new,
                                         "name": name, "from_height": ctx.height + 1})]


def _validate_role_args(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"role", "scope", "address"}))
    role = f.expect_text(args, "role", 32)
    if role not in GRANTABLE_ROLES:
        raise MalformedFieldsError("role", f"expected one of {sorted(GRANTABLE_ROLES)}")
    f.expect_name(args, "scope")
    f.expect_address(args, "address")


def _apply_grant_role(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                      ) -> list[Event]:
    apply_grant_role(view, args["role"], args["scope"], args["address"])
    return [Event("role_granted", {"role": args["role"], "scope": args["scope"],
                                   "address": args["address"]})]


def _apply_revoke_role(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                       ) -> list[Event]:
    apply_revoke_role(view, args["role"], args["scope"], args["address"])
    return [Event("role_revoked", {"role": args["role"], "scope": args["scope"],
                                   "address": args["address"]})]


def _validate_set_param(args: Mapping[str, Any]) -> None:
    f.validate_field_names(args, frozenset({"name", "value"}))
    f.expect_text(args, "name", 64)
    f.expect_int(args, "value", 1, 2**63 - 1)


def _apply_set_param(view: Overlay, ctx: BlockContext, args: Mapping[str, Any]
                     ) -> list[Event]:
    name, value = args["name"], args["value"]
    current = get_value(view, CHAIN_PARAMS_KEY, "chain parameters")
    if current is None:
        raise CorruptStateError("the chain parameters are missing")
    lo, hi = PARAM_BOUNDS.get(name, (1, 2**63 - 1))
    if not lo <= value <= hi:
        raise InvalidParamError(f"{name} must be in [{lo}, {hi}]")
    try:
        params = ChainParams.from_value({**current, name: value})
    except ChainError as e:
        raise InvalidParamError(e.message) from e
    put_value(view, CHAIN_PARAMS_KEY, params.to_value())
    return [Event("param_changed", {"name": name, "value": value,
                                    "from_height": ctx.height + 1})]


ActionApply = Callable[[Overlay, BlockContext, Mapping[str, Any]], list[Event]]
ACTIONS: dict[str, tuple[Callable[[Mapping[str, Any]], None], ActionApply]] = {
    ADD_VALIDATOR: (_validate_add_validator, _apply_add_validator),
    REMOVE_VALIDATOR: (_validate_remove_validator, _apply_remove_validator),
    REPLACE_VALIDATOR: (_validate_replace_validator, _apply_replace_validator),
    GRANT_ROLE: (_validate_role_args, _apply_grant_role),
    REVOKE_ROLE: (_validate_role_args, _apply_revoke_role),
    CREATE_ASSET: (validate_create_asset_args, apply_create_asset),
    CREATE_NAMESPACE: (validate_create_namespace_args, apply_create_namespace),
    SET_PARAM: (_validate_set_param, _apply_set_param),
    SCHEDULE_UPGRADE: (validate_schedule_upgrade_args, apply_schedule_upgrade),
    CANCEL_UPGRADE: (validate_cancel_upgrade_args, apply_cancel_upgrade),
    CREATE_PRIVATE_NAMESPACE: (validate_create_private_namespace_args,
                               apply_create_private_namespace),
    **TIER_ACTIONS, **RESERVE_ACTIONS, **TRAVEL_ACTIONS,
}
"""Each action: a stateless check of its args, and its state transition."""


# ------------------------------------------------------------------ proposals


def get_proposal(view: StateReader, proposal_id: int) -> dict[str, Any] | None:
    value = get_value(view, get_proposal_key(proposal_id), "proposal")
    return None if value is None else dict(value)


def get_proposal_count(view: StateReader) -> int:
    value = get_value(view, PROPOSAL_COUNT_KEY, "proposal count")
    return 0 if value is None else int(value)


def get_proposal_status(proposal: Mapping[str, Any], height: int) -> str:
    """open, passed, failed, or expired (open with no vote possible at `height` + 1)."""
    status = str(proposal["status"])
    if status == OPEN and height + 1 >= proposal["expiry_height"]:
        return EXPIRED
    return status


def validate_propose_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"action", "args", "expiry_height"}))
    action = f.expect_text(fields, "action", 32)
    if action not in ACTIONS:
        raise MalformedFieldsError("action", f"expected one of {sorted(ACTIONS)}")
    args = f.expect_map(fields, "args")
    try:
        ACTIONS[action][0](args)
    except MalformedFieldsError as e:
        raise MalformedFieldsError(f"args.{e.field}", e.message) from e
    f.expect_int(fields, "expiry_height", 1, 2**63 - 1)


def _count_approvals(view: StateReader, votes: tuple[bytes, ...] | list[bytes]) -> int:
    current = get_validator_set(view)
    return sum(1 for key in votes if current.is_member(key))


def _apply_passing(view: Overlay, ctx: BlockContext, proposal: dict[str, Any]
                   ) -> list[Event]:
    """Decide `proposal` if its approvals reach the quorum of the set in force."""
    current = get_validator_set(view)
    approvals = _count_approvals(view, proposal["votes"])
    if approvals < current.quorum:
        put_value(view, get_proposal_key(proposal["id"]), proposal)
        return []
    _validate, apply = ACTIONS[proposal["action"]]
    action_view = view.child()
    try:
        events = apply(action_view, ctx, proposal["args"])
    except CorruptStateError:
        raise
    except LedgerError as e:
        proposal.update(status=FAILED, decided_height=ctx.height, result=e.code)
        put_value(view, get_proposal_key(proposal["id"]), proposal)
        return [Event("proposal_failed", {"id": proposal["id"], "code": e.code})]
    action_view.commit()
    proposal.update(status=PASSED, decided_height=ctx.height, result="ok")
    put_value(view, get_proposal_key(proposal["id"]), proposal)
    return [Event("proposal_passed", {"id": proposal["id"], "action": proposal["action"],
                                      "approvals": approvals}), *events]


def apply_propose(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """A validator proposes; its own approval counts; every rule is checked now too."""
    voter = get_validator_key(view, tx.sender)
    action, args, expiry = tx.fields["action"], tx.fields["args"], tx.fields["expiry_height"]
    if not ctx.height < expiry <= ctx.height + MAX_VOTING_BLOCKS:
        raise InvalidExpiryError(f"expiry height must be in ({ctx.height}, "
                                 f"{ctx.height + MAX_VOTING_BLOCKS}], got {expiry}")
    ACTIONS[action][1](view.child(), ctx, args)  # a dry run: refuse now what would fail
    proposal_id = get_proposal_count(view) + 1
    put_value(view, PROPOSAL_COUNT_KEY, proposal_id)
    proposal = {"id": proposal_id, "action": action, "args": dict(args), "proposer": voter,
                "created_height": ctx.height, "expiry_height": expiry, "votes": [voter],
                "status": OPEN, "decided_height": 0, "result": ""}
    events = [Event("proposal_created", {"id": proposal_id, "action": action,
                                         "proposer": voter, "expiry_height": expiry}),
              Event("proposal_voted", {"id": proposal_id, "voter": voter, "approvals": 1})]
    return events + _apply_passing(view, ctx, proposal)


def validate_vote_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"proposal"}))
    f.expect_int(fields, "proposal", 1, 2**63 - 1)


def apply_vote(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """A validator approves an open proposal; the approval that reaches quorum enacts it."""
    proposal = get_proposal(view, tx.fields["proposal"])
    if proposal is None:
        raise UnknownProposalError(f"no proposal {tx.fields['proposal']}")
    voter = get_validator_key(view, tx.sender)
    if proposal["status"] != OPEN:
        raise ProposalClosedError(f"proposal {proposal['id']} is {proposal['status']}")
    if ctx.height >= proposal["expiry_height"]:
        raise ProposalExpiredError(
            f"proposal {proposal['id']} expired at height {proposal['expiry_height']}")
    if voter in proposal["votes"]:
        raise AlreadyVotedError(f"validator {voter.hex()} approved proposal "
                                f"{proposal['id']} already")
    proposal["votes"] = sorted([*proposal["votes"], voter])
    approvals = _count_approvals(view, proposal["votes"])
    return [Event("proposal_voted", {"id": proposal["id"], "voter": voter,
                                     "approvals": approvals}),
            *_apply_passing(view, ctx, proposal)]


def validate_accept_fields(fields: Mapping[str, Any]) -> None:
    f.validate_field_names(fields, frozenset({"public_key", "name", "signature"}))
    f.expect_public_key(fields, "public_key")
    f.expect_text(fields, "name", MAX_VALIDATOR_NAME)
    f.expect_bytes(fields, "signature", size=64)


def apply_validator_accept(view: Overlay, ctx: BlockContext, tx: Transaction) -> list[Event]:
    """Record that the holder of `public_key` signed its acceptance on this chain."""
    key, name = tx.fields["public_key"], tx.fields["name"]
    message = signing_bytes(DOMAIN_VALIDATOR_ACCEPT, ctx.chain_id,
                            get_acceptance_payload(key, name))
    if not is_valid_signature(key, message, tx.fields["signature"]):
        raise BadAcceptanceError(
            f"the acceptance signature does not verify for key {key.hex()} on chain "
            f"{ctx.chain_id!r}: sign with the candidate's validator key")
    put_value(view, get_candidate_key(key), {"height": ctx.height, "name": name,
                                             "sender": tx.sender})
    return [Event("validator_accepted", {"public_key": key, "name": name})]


def get_proposal_info(view: StateReader, proposal_id: int, height: int) -> dict[str, Any] | None:
    proposal = get_proposal(view, proposal_id)
    if proposal is None:
        return None
    current = get_validator_set(view)
    return {**proposal, "status": get_proposal_status(proposal, height),
            "approvals": _count_approvals(view, proposal["votes"]), "quorum": current.quorum}


class GovernanceModule:
    """Proposals and votes of the validators; validator acceptances."""

    name = "governance"
    tx_types: Mapping[str, TxHandler] = {
        PROPOSE: TxHandler(validate_propose_fields, apply_propose),
        VOTE: TxHandler(validate_vote_fields, apply_vote),
        VALIDATOR_ACCEPT: TxHandler(validate_accept_fields, apply_validator_accept),
    }

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        """Give each genesis validator an account, so it can propose and vote."""
        if genesis.app_state.get(self.name):
            raise InvalidGenesisStateError("app_state.governance takes no settings")
        for validator in genesis.validator_set.validators:
            address = compute_address(validator.public_key)
            if get_account_record(view, address) is None:
                put_account_record(view, address, EMPTY_ACCOUNT)
