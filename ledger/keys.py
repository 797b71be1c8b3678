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
"""bal/v1/<address 20>/<asset> -> balance, a positive integer (absent means 0); for an
asset with identity tiers, [balance, assigned tier or nil, [[hour, amount sent], ...]]
once the account has a tier assigned or sent within the rolling day (ledger/balances.py)."""
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


# Government ledger tables. Symbols and namespace names exclude "/", record keys
# exclude "\x00", public keys and addresses have fixed sizes: no two keys collide.

ASSET_PREFIX = b"asset/v1/"
"""asset/v1/<symbol> -> asset record (name, decimals, reserve_backed, supply, reserve...)."""
ATTESTATION_PREFIX = b"attest/v1/"
"""attest/v1/<symbol>/<index 8 BE> -> reserve attestation, index from 0."""
FREEZE_PREFIX = b"frozen/v1/"
"""frozen/v1/<address 20>/<symbol> -> height frozen at (absent: not frozen)."""
ROLE_PREFIX = b"role/v1/"
"""role/v1/<role>/<scope> -> sorted list of holder addresses."""
ACCOUNT_ROLES_PREFIX = b"acctroles/v1/"
"""acctroles/v1/<address 20> -> sorted list of [role, scope] the account holds."""
MULTISIG_PREFIX = b"msig/v1/"
"""msig/v1/<address 20> -> multisig policy {"threshold", "members"}."""
NAMESPACE_PREFIX = b"ns/v1/"
"""ns/v1/<name> -> namespace record."""
RECORD_PREFIX = b"rec/v1/"
"""rec/v1/<namespace>/<key> -> the current version of a registry record."""
RECORD_VERSION_PREFIX = b"recver/v1/"
"""recver/v1/<namespace>/<key>\\x00<version 4 BE> -> every version, from 1."""
PRIVATE_GRANT_PREFIX = b"prgrant/v1/"
"""prgrant/v1/<namespace>/<key>\\x00<grantee 20> -> a read grant on a private record."""
PRIVATE_ERASURE_PREFIX = b"prerase/v1/"
"""prerase/v1/<namespace>/<key> -> the lawful erasure of a private record's payload."""
READ_ANCHOR_PREFIX = b"pranchor/v1/"
"""pranchor/v1/<holder 20>/<batch 8 BE> -> a holder's read-log batch commitment."""
READ_ANCHOR_HEAD_PREFIX = b"pranchors/v1/"
"""pranchors/v1/<holder 20> -> [next batch, next entry sequence] of that holder."""
PROPOSAL_PREFIX = b"proposal/v1/"
"""proposal/v1/<id 8 BE> -> governance proposal, ids from 1."""
PROPOSAL_COUNT_KEY = b"proposals/v1"
"""proposals/v1 -> the number of proposals made (the last id)."""
CANDIDATE_PREFIX = b"candidate/v1/"
"""candidate/v1/<public key 32> -> {"height", "name"}: the key proved possession."""
UPGRADE_PREFIX = b"upgrade/v1/"
"""upgrade/v1/<name> -> an upgrade plan {"name", "height", "info", "status", ...}."""
PENDING_UPGRADE_KEY = b"upgradepending/v1"
"""upgradepending/v1 -> the name of the one scheduled upgrade not yet reached (absent: none)."""
LAST_UPGRADE_KEY = b"upgradelast/v1"
"""upgradelast/v1 -> [name, height, info] of the last upgrade applied (absent: none)."""
VALIDATOR_SET_BASE_KEY = b"valsetbase/v1"
"""valsetbase/v1 -> [height, validator set certifying that height]: the set before the
changes made at that height, to bound how much one height may change."""


def get_asset_key(symbol: str) -> bytes:
    return ASSET_PREFIX + symbol.encode()


def get_attestation_key(symbol: str, index: int) -> bytes:
    return ATTESTATION_PREFIX + symbol.encode() + b"/" + index.to_bytes(8, "big")


def get_freeze_key(address: bytes, symbol: str) -> bytes:
    assert len(address) == ADDRESS_SIZE
    return FREEZE_PREFIX + address + b"/" + symbol.encode()


def get_role_key(role: str, scope: str) -> bytes:
    assert "/" not in role and "/" not in scope
    return ROLE_PREFIX + role.encode() + b"/" + scope.encode()


def get_account_roles_key(address: bytes) -> bytes:
    assert len(address) == ADDRESS_SIZE
    return ACCOUNT_ROLES_PREFIX + address


def get_multisig_key(address: bytes) -> bytes:
    assert len(address) == ADDRESS_SIZE
    return MULTISIG_PREFIX + address


def get_namespace_key(name: str) -> bytes:
    return NAMESPACE_PREFIX + name.encode()


def get_record_key(namespace: str, key: str) -> bytes:
    """The state key of a record's current version (what a record proof proves)."""
    assert "/" not in namespace and "\x00" not in key
    return RECORD_PREFIX + namespace.encode() + b"/" + key.encode()


def get_record_version_key(namespace: str, key: str, version: int) -> bytes:
    assert "/" not in namespace and "\x00" not in key
    return (RECORD_VERSION_PREFIX + namespace.encode() + b"/" + key.encode() + b"\x00"
            + version.to_bytes(4, "big"))


def get_grant_key(namespace: str, key: str, grantee: bytes) -> bytes:
    assert "/" not in namespace and "\x00" not in key and len(grantee) == ADDRESS_SIZE
    return PRIVATE_GRANT_PREFIX + namespace.encode() + b"/" + key.encode() + b"\x00" + grantee


def get_erasure_key(namespace: str, key: str) -> bytes:
    assert "/" not in namespace and "\x00" not in key
    return PRIVATE_ERASURE_PREFIX + namespace.encode() + b"/" + key.encode()


def get_read_anchor_key(holder: bytes, batch: int) -> bytes:
    assert len(holder) == ADDRESS_SIZE
    return READ_ANCHOR_PREFIX + holder + b"/" + batch.to_bytes(8, "big")


def get_read_anchor_head_key(holder: bytes) -> bytes:
    assert len(holder) == ADDRESS_SIZE
    return READ_ANCHOR_HEAD_PREFIX + holder


def get_proposal_key(proposal_id: int) -> bytes:
    return PROPOSAL_PREFIX + proposal_id.to_bytes(8, "big")


def get_candidate_key(public_key: bytes) -> bytes:
    assert len(public_key) == 32
    return CANDIDATE_PREFIX + public_key


def get_upgrade_key(name: str) -> bytes:
    assert "/" not in name
    return UPGRADE_PREFIX + name.encode()
# Stablecoin tables: identity tiers, reserve policy, auditor report keys, redemptions,
# travel-rule thresholds. Symbols exclude "/", addresses and ids have fixed sizes.

ASSET_RULES_PREFIX = b"assetrules/v1/"
"""assetrules/v1/<symbol> -> {"default", "tiered", "tiers": [[tier, balance, payment, daily]],
"travel"}: the asset's identity tiers and travel-rule threshold (one read per transfer)."""
SWEEP_PREFIX = b"sweep/v1/"
"""sweep/v1/<symbol>/<address 20> -> the linked account that takes what exceeds the limit."""
TIER_COUNT_PREFIX = b"tiercount/v1/"
"""tiercount/v1/<symbol>/<tier 2 BE> -> accounts of that tier with a non-zero balance."""
RESERVE_POLICY_PREFIX = b"reservepolicy/v1/"
"""reservepolicy/v1/<symbol> -> {"max_age_ms", "units_per_fine_mg"}."""
AUDITOR_KEY_PREFIX = b"auditorkey/v1/"
"""auditorkey/v1/<symbol>/<address 20> -> sorted report-signing public keys of an auditor."""
REDEMPTION_PREFIX = b"redeem/v1/"
"""redeem/v1/<symbol>/<id 8 BE> -> a redemption request and its outcome, ids from 1."""
REDEMPTION_COUNT_PREFIX = b"redeemcount/v1/"
"""redeemcount/v1/<symbol> -> the last redemption request id."""


def get_asset_rules_key(symbol: str) -> bytes:
    return ASSET_RULES_PREFIX + symbol.encode()


def get_sweep_key(symbol: str, address: bytes) -> bytes:
    assert len(address) == ADDRESS_SIZE
    return SWEEP_PREFIX + symbol.encode() + b"/" + address


def get_tier_count_key(symbol: str, tier: int) -> bytes:
    return TIER_COUNT_PREFIX + symbol.encode() + b"/" + tier.to_bytes(2, "big")


def get_reserve_policy_key(symbol: str) -> bytes:
    return RESERVE_POLICY_PREFIX + symbol.encode()


def get_auditor_key_key(symbol: str, address: bytes) -> bytes:
    assert len(address) == ADDRESS_SIZE
    return AUDITOR_KEY_PREFIX + symbol.encode() + b"/" + address


def get_redemption_key(symbol: str, request_id: int) -> bytes:
    return REDEMPTION_PREFIX + symbol.encode() + b"/" + request_id.to_bytes(8, "big")


def get_redemption_count_key(symbol: str) -> bytes:
    return REDEMPTION_COUNT_PREFIX + symbol.encode()
