"""Proof bundles: one file that proves a record, a payment or an account offline.

`verify_bundle(data, genesis)` trusts the genesis (or a checkpoint the caller states)
and nothing in the file: it follows the validator-set changes the bundle carries, each
certified by the set before, checks the final block's certificate by the set in force,
then the state or inclusion proof against that header. It never opens a socket.
sdk.bundle_builder fetches the material from a node. The format is in docs/explorer.md
("the proof bundle file") and docs/protocol.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chain import codec, merkle
from chain.block import BlockHeader
from chain.crypto import (
    DOMAIN_VOTE,
    Hash32,
    PublicKey,
    compute_address,
    compute_hash,
    is_valid_signature,
    signing_bytes,
)
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.state_proof import StateProof, verify_state_proof
from chain.tx import Transaction, validate_signatures
from chain.vote import CommitCertificate, Validator, ValidatorSet, Vote, VoteKind
from ledger.keys import get_account_key, get_asset_key, get_balance_key, get_record_key

BUNDLE_FORMAT = "govchain-proof-bundle"
BUNDLE_VERSION = 1
"""Version 1 adds `checkpoint` and the optional `result` of a tx proof to version 0 (the
explorer's); version 0 bundles are read by the same rules."""
READABLE_VERSIONS = (0, 1)
KINDS = ("record", "account", "tx", "block")
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
"""A bundle file larger than this is refused before it is parsed."""
PARALLEL_SIGNATURES = 64
"""From this many signatures on, they are checked on a thread per core (pynacl releases
the GIL while it verifies)."""
SIGNATURE_CHUNK = 48
"""Signatures handed to a thread at a time."""


# ------------------------------------------------------------------ errors


class BundleError(Exception):
    """Raised when a bundle does not prove what it claims; `code` names what failed."""

    code = "bundle_invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class MalformedBundleError(BundleError):
    """Raised when the file is not a bundle: not JSON, a field missing or of a wrong form."""

    code = "bundle_malformed"


class UnsupportedBundleError(BundleError):
    """Raised when the format or version is not one this verifier reads."""

    code = "bundle_unsupported"


class WrongGenesisError(BundleError):
    """Raised when the bundle was made for another genesis than the one given."""

    code = "wrong_genesis"


class WrongChainError(BundleError):
    """Raised when a header or transaction in the bundle belongs to another chain."""

    code = "wrong_chain"


class CheckpointError(BundleError):
    """Raised when the bundle starts from a checkpoint the caller did not state, or its
    checkpoint header is not the stated one."""

    code = "checkpoint_mismatch"


class SetChangeUnprovenError(BundleError):
    """Raised when a validator set in the bundle is not the one its certified header names."""

    code = "set_change_unproven"


class MissingSetChangeError(BundleError):
    """Raised when a header names another validator set than the one derived so far: a
    validator-set change between the two is missing from the bundle."""

    code = "missing_set_change"


class BadCertificateError(BundleError):
    """Raised when a commit certificate is not a valid quorum for its header."""

    code = "bad_certificate"


class BadSignatureError(BadCertificateError):
    """Raised when a signature in a commit certificate does not verify."""

    code = "bad_signature"


class ValueNotProvenError(BundleError):
    """Raised when a proven value (record, balance, account) does not match its proof."""

    code = "value_not_proven"


class TxNotProvenError(BundleError):
    """Raised when a transaction's bytes, signatures or inclusion path do not hold."""

    code = "tx_not_proven"


class ResultNotProvenError(BundleError):
    """Raised when a payment's result section does not lead to the header's results root."""

    code = "result_not_proven"


class WrongRecordError(BundleError):
    """Raised when a bundle proves something else than the record asked about."""

    code = "wrong_record"


class DocumentMismatchError(BundleError):
    """Raised when a document's SHA-256 is not the hash the record holds."""

    code = "document_mismatch"


# ------------------------------------------------------------------ what is proven


@dataclass(frozen=True)
class Signer:
    """A validator whose signature on the final block was checked."""

    public_key: PublicKey
    """The validator's key (what the signature proves)."""
    name: str
    """Its name: from the genesis file, or as the bundle states it (`name_proven` false)."""
    name_proven: bool
    """True when the name comes from the genesis file the caller gave."""


@dataclass(frozen=True)
class Checkpoint:
    """An operator's statement that the block of `height` has hash `block_hash`."""

    height: int
    """The height of the trusted block."""
    block_hash: Hash32
    """Its hash."""

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """HEIGHT:HASH, for example 1204:9f...; raises ValueError."""
        height, sep, hex_hash = text.partition(":")
        if not sep or not height.isdigit() or len(hex_hash) != 64:
            raise ValueError(f"a checkpoint is HEIGHT:HASH (64 hex digits), not {text!r}")
        return cls(int(height), Hash32(bytes.fromhex(hex_hash)))


@dataclass(frozen=True)
class VerifiedFact:
    """What a bundle proved, once every check passed."""

    kind: str
    """"record", "account", "tx" or "block"."""
    chain_id: str
    """The chain of the genesis it was checked against."""
    height: int
    """The height of the certified block that holds the proof."""
    block_hash: Hash32
    """That block's hash."""
    timestamp_ms: int
    """That block's time (its proposer's clock, agreed by the signers)."""
    signers: tuple[Signer, ...]
    """The validators whose signatures on that block were checked."""
    set_size: int
    """The number of validators in force at that height."""
    quorum: int
    """The signatures a certificate needs at that height."""
    set_changes: int
    """How many validator-set changes were followed from the trust root."""
    trusted_from: str
    """"genesis", or "checkpoint HEIGHT:HASH"."""
    subject: dict[str, Any] = field(default_factory=dict)
    """What was proven: the record, the account, or the transaction (see docs/sdk.md)."""


# ------------------------------------------------------------------ reading the file


def _get(doc: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(doc, dict) or name not in doc:
        raise MalformedBundleError(f"{what}: the field {name!r} is missing")
    value = doc[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedBundleError(f"{what}: {name!r} has the wrong type")
    return value


def _hex(doc: Any, name: str, what: str, size: int | None = None) -> bytes:
    text = _get(doc, name, str, what)
    try:
        value = bytes.fromhex(text)
    except ValueError as e:
        raise MalformedBundleError(f"{what}: {name!r} is not hex") from e
    if size is not None and len(value) != size:
        raise MalformedBundleError(f"{what}: {name!r} is not {size} bytes")
    return value


def _hex_list(doc: Any, name: str, what: str) -> list[bytes]:
    items = _get(doc, name, list, what)
    try:
        return [bytes.fromhex(item) for item in items]
    except (TypeError, ValueError) as e:
        raise MalformedBundleError(f"{what}: {name!r} holds an item that is not hex") from e


def _decoded(decode: Callable[[bytes], Any], data: bytes, what: str) -> Any:
    try:
        return decode(data)
    except ChainError as e:
        raise MalformedBundleError(f"{what} does not decode: {e.message}") from e


def _read_set(entry: Any, what: str,
              known: dict[tuple[Any, Any], Validator] | None = None) -> ValidatorSet:
    """The set `entry` states, its hash checked. `known` holds the validators read from
    the sets before (consecutive sets share most members: each is parsed once)."""
    validators = _get(entry, "validators", list, what)
    members = []
    for item in validators:
        ident = ((item["public_key"], item["name"]) if isinstance(item, dict)
                 and type(item.get("public_key")) is str and type(item.get("name")) is str
                 else None)
        member = None if known is None or ident is None else known.get(ident)
        if member is None:
            key = _hex(item, "public_key", what, 32)
            member = Validator(PublicKey(key), str(_get(item, "name", str, what)))
            if known is not None and ident is not None:
                known[ident] = member
        members.append(member)
    try:
        vset = ValidatorSet(tuple(members))
    except ValueError as e:
        raise MalformedBundleError(f"{what}: {e}") from e
    if _get(entry, "hash", str, what) != vset.hash.hex():
        raise SetChangeUnprovenError(f"{what}: the stated hash is not the hash of its keys")
    return vset


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    """The genesis document in the file at `path` (a genesis.json you trust)."""
    with open(path, encoding="utf-8") as f:
        return Genesis.from_json(f.read())


def load_bundle(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """The bundle document of `data` (file bytes, text or an already parsed dict)."""
    if isinstance(data, dict):
        return data
    if len(data) > MAX_BUNDLE_BYTES:
        raise MalformedBundleError(f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise MalformedBundleError(f"the file is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise MalformedBundleError("a bundle is a JSON object")
    return doc


# ------------------------------------------------------------------ the chain of trust


class _Signatures:
    """Precommit signatures gathered while the structure is checked.

    From PARALLEL_SIGNATURES on, pieces of SIGNATURE_CHUNK are handed to a thread per core
    as they are gathered, so the checks overlap the parsing of the rest of the bundle
    (pynacl releases the GIL while it verifies). Use it as a context manager: leaving it
    stops the threads, also when a structural check fails first.
    """

    def __init__(self, expected: int) -> None:
        self.pending: list[tuple[int, PublicKey, bytes, bytes]] = []
        threads = min(os.cpu_count() or 1, 4)
        self.pool = (ThreadPoolExecutor(threads) if threads > 1
                     and expected >= PARALLEL_SIGNATURES else None)
        self.futures: list[Future[tuple[int, PublicKey] | None]] = []

    def __enter__(self) -> _Signatures:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def add_certificate(self, cert: CommitCertificate, vset: ValidatorSet, chain_id: str,
                        header: BlockHeader, *, quorum_only: bool = False) -> int:
        """Check the certificate's form against `vset` and queue its signatures: all of
        them, or with `quorum_only` its first `vset.quorum` (what proves the block; the
        others need not be checked). Returns how many were queued."""
        h = header.height
        if cert.height != h or cert.block_hash != header.hash:
            raise BadCertificateError(
                f"the certificate of block {h} is for another block (height {cert.height})")
        signers = [key for key, _ in cert.signatures]
        if len(set(signers)) != len(signers):
            raise BadCertificateError(f"the certificate of block {h} names a validator twice")
        for key in signers:
            if not vset.is_member(key):
                raise BadCertificateError(f"the certificate of block {h} is signed by "
                                          f"{key.hex()[:16]}..., not a validator in force")
        if len(signers) < vset.quorum:
            raise BadCertificateError(f"the certificate of block {h} has {len(signers)} "
                                      f"signatures; {vset.quorum} of {vset.size} are needed")
        # int(): the canonical encoder packs builtin types as they are, an IntEnum only
        # after a conversion pass (the same bytes, a tenth of the time here).
        message = signing_bytes(DOMAIN_VOTE, chain_id, Vote.payload(
            int(VoteKind.PRECOMMIT), cert.height, cert.round, cert.block_hash))
        checked = cert.signatures[:vset.quorum] if quorum_only else cert.signatures
        self.pending.extend((h, key, message, sig) for key, sig in checked)
        if self.pool is not None and len(self.pending) >= SIGNATURE_CHUNK:
            self.futures.append(self.pool.submit(_first_bad, self.pending))
            self.pending = []
        return len(checked)

    def verify(self) -> None:
        """Raise BadSignatureError for the lowest block with a signature that fails."""
        failures = [_first_bad(self.pending)]
        failures += [future.result() for future in self.futures]
        bad = sorted(f for f in failures if f is not None)
        if bad:
            h, key = bad[0]
            raise BadSignatureError(
                f"the signature of {key.hex()[:16]}... on block {h} does not verify")


def _first_bad(items: Sequence[tuple[int, PublicKey, bytes, bytes]]
               ) -> tuple[int, PublicKey] | None:
    for h, key, message, sig in items:
        if not is_valid_signature(key, message, sig):
            return h, key
    return None


def _read_header(doc: Any, what: str) -> BlockHeader:
    data = _hex(doc, "header", what)
    header: BlockHeader = _decoded(BlockHeader.decode, data, f"{what}: header")
    # decode accepts only the canonical encoding, so these are the bytes the header
    # hashes to: keep them rather than encode the header again.
    header.__dict__["encoded"] = data
    return header


def _read_certificate(doc: Any, what: str) -> CommitCertificate:
    certificate: CommitCertificate = _decoded(
        CommitCertificate.decode, _hex(doc, "certificate", what), f"{what}: certificate")
    return certificate


def _check_chain(header: BlockHeader, chain_id: str, what: str) -> None:
    if header.chain_id != chain_id:
        raise WrongChainError(f"{what} is a header of chain {header.chain_id!r}, "
                              f"not of {chain_id!r}")


def _trust_root(doc: dict[str, Any], genesis: Genesis, checkpoint: Checkpoint | None,
                first_set: Any) -> tuple[int, ValidatorSet, str]:
    """(first height, validator set certifying it, description) of the trust root."""
    stated = doc.get("checkpoint")
    if stated is None:
        if _get(first_set, "from_height", int, "validator_sets[0]") != 1:
            raise SetChangeUnprovenError("the first validator set is not the genesis set")
        if _read_set(first_set, "validator_sets[0]").hash != genesis.validator_set.hash:
            raise SetChangeUnprovenError("the first validator set is not the genesis set")
        return 1, genesis.validator_set, "genesis"
    if checkpoint is None:
        raise CheckpointError(
            "the bundle starts from a checkpoint at height "
            f"{stated.get('height') if isinstance(stated, dict) else '?'}; state the "
            "checkpoint you trust (HEIGHT:HASH) to check it, or ask for a bundle from genesis")
    header = _read_header(stated, "checkpoint")
    _check_chain(header, genesis.chain_id, "the checkpoint")
    if header.height != checkpoint.height or header.hash != checkpoint.block_hash:
        raise CheckpointError(
            f"the bundle's checkpoint is block {header.height} {header.hash.hex()[:16]}..., "
            f"not the stated {checkpoint.height}:{checkpoint.block_hash.hex()[:16]}...")
    if _get(first_set, "from_height", int, "validator_sets[0]") != header.height + 1:
        raise SetChangeUnprovenError("the first validator set does not follow the checkpoint")
    vset = _read_set(first_set, "validator_sets[0]")
    if vset.hash != header.next_validator_set_hash:
        raise SetChangeUnprovenError(
            f"the first validator set is not the one checkpoint block {header.height} names")
    return header.height + 1, vset, f"checkpoint {header.height}:{header.hash.hex()}"


def _follow_sets(doc: dict[str, Any], genesis: Genesis, checkpoint: Checkpoint | None,
                 signatures: _Signatures) -> tuple[ValidatorSet, int, int, str]:
    """(set in force at the last change, its first height, changes, trust root)."""
    sets = _get(doc, "validator_sets", list, "bundle")
    if not sets:
        raise MalformedBundleError("bundle: validator_sets is empty")
    from_height, current, trusted_from = _trust_root(doc, genesis, checkpoint, sets[0])
    known: dict[tuple[Any, Any], Validator] = {}
    for i, entry in enumerate(sets[1:], start=1):
        what = f"validator_sets[{i}]"
        start = _get(entry, "from_height", int, what)
        if start <= from_height:
            raise MalformedBundleError(f"{what}: from_height must grow ({start})")
        by = _get(entry, "certified_by", dict, what)
        header = _read_header(by, f"{what}.certified_by")
        _check_chain(header, genesis.chain_id, f"the header of block {header.height}")
        if header.height != start - 1 or by.get("height") != header.height:
            raise SetChangeUnprovenError(
                f"the set taking effect at {start} is certified by block {header.height}, "
                f"not by block {start - 1}")
        if header.validator_set_hash != current.hash:
            raise MissingSetChangeError(
                f"block {header.height} names a validator set other than the one in force "
                f"since {from_height}: a validator-set change before it is missing")
        new = _read_set(entry, what, known)
        if new.hash != header.next_validator_set_hash or new.hash == current.hash:
            raise SetChangeUnprovenError(
                f"the validator set taking effect at {start} is not the one certified "
                f"block {header.height} names")
        # Of a set change's certificate, a quorum of signatures proves the change.
        signatures.add_certificate(_read_certificate(by, f"{what}.certified_by"), current,
                                   genesis.chain_id, header, quorum_only=True)
        current, from_height = new, start
    return current, from_height, len(sets) - 1, trusted_from


# ------------------------------------------------------------------ the proofs


def _state_value(item: Any, key: bytes, header: BlockHeader, what: str) -> bytes | None:
    """The value `item` proves for `key` under the header's state root."""
    proof = _get(item, "state_proof", dict, what)
    try:
        state_proof = StateProof.from_json(proof)
    except ChainError as e:
        raise MalformedBundleError(f"{what}: {e.message}") from e
    if state_proof.height != header.height or state_proof.root != header.state_root:
        raise ValueNotProvenError(f"{what}: the proof is not for the state of block "
                                  f"{header.height}")
    raw = item.get("value") if isinstance(item, dict) else None
    value = None if raw is None else _hex(item, "value", what)
    if not verify_state_proof(state_proof, key, value, header.state_root):
        raise ValueNotProvenError(
            f"{what}: the value is not the one the state root of block {header.height} holds")
    return value


def _decode_value(value: bytes, what: str) -> Any:
    return _decoded(codec.decode, value, what)


def _text_or_hex(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()
    return text if text.isprintable() else value.hex()


def _check_record(proof: Any, header: BlockHeader) -> dict[str, Any]:
    namespace = _get(proof, "namespace", str, "record proof")
    key = _get(proof, "key", str, "record proof")
    if "/" in namespace or "\x00" in key or not namespace or not key:
        raise MalformedBundleError("record proof: namespace or key is not a record name")
    value = _state_value(proof, get_record_key(namespace, key), header, "the record")
    if value is None:
        return {"namespace": namespace, "key": key, "exists": False}
    record = _decode_value(value, "the record")
    if not isinstance(record, dict) or (record.get("namespace"), record.get("key")) != (
            namespace, key):
        raise ValueNotProvenError("the proven value is not the record named")
    content = record.get("value", b"")
    return {"namespace": namespace, "key": key, "exists": True,
            "version": record.get("version"), "status": record.get("status"),
            "value": content, "value_text": _text_or_hex(content)
            if isinstance(content, bytes) else None,
            "doc_hash": record.get("doc_hash", b""), "value_hash": compute_hash(value),
            "signer": record.get("signer"), "written_at": record.get("height"),
            "metadata": record.get("metadata", {})}


def _check_account(proof: Any, header: BlockHeader) -> dict[str, Any]:
    address = _hex(proof, "address", "account proof", 20)
    entries = _get(proof, "entries", list, "account proof")
    proven: dict[bytes, bytes | None] = {}
    for i, item in enumerate(entries):
        key = _hex(item, "key", f"account entry {i}")
        proven[key] = _state_value(item, key, header, f"account entry {i}")

    def get(key: bytes, what: str) -> Any:
        if key not in proven:
            raise ValueNotProvenError(f"the account proof has no proof of {what}")
        value = proven[key]
        return None if value is None else _decode_value(value, what)
    account = get(get_account_key(address), "the account record")
    assets = () if account is None else account.get("assets", ())
    asked = proof.get("assets")
    symbols = list(assets) if asked is None else [str(s) for s in asked]
    balances: dict[str, Any] = {}
    for symbol in symbols:
        asset = get(get_asset_key(symbol), f"asset {symbol}")
        balance = get(get_balance_key(address, symbol), f"the balance of {symbol}") or 0
        # An integer, or [amount, tier, rolling day] for an asset with identity tiers.
        amount = balance[0] if isinstance(balance, tuple) else balance
        balances[symbol] = {"amount": amount,
                            "decimals": asset.get("decimals") if asset else None,
                            "name": asset.get("name") if asset else None}
    return {"address": address, "exists": account is not None,
            "nonce": account.get("nonce") if account else 0, "balances": balances}


def _check_tx(proof: Any, header: BlockHeader, chain_id: str) -> dict[str, Any]:
    data = _hex(proof, "tx", "tx proof")
    tx_hash = _hex(proof, "hash", "tx proof", 32)
    if compute_hash(data) != tx_hash:
        raise TxNotProvenError("the transaction's bytes do not hash to its id")
    tx = _decoded(Transaction.decode, data, "the transaction")
    if tx.chain_id != chain_id:
        raise WrongChainError(f"the transaction is for chain {tx.chain_id!r}")
    try:
        validate_signatures(tx)
    except ChainError as e:
        raise TxNotProvenError(f"the transaction's signature: {e.message}") from e
    if _get(proof, "height", int, "tx proof") != header.height:
        raise TxNotProvenError(f"the tx proof is for block {proof['height']}, not for block "
                               f"{header.height}")
    index = _get(proof, "index", int, "tx proof")
    size = _get(proof, "tx_count", int, "tx proof")
    path = _hex_list(proof, "path", "tx proof")
    if not merkle.is_valid_proof(tx_hash, index, size, path, header.tx_root):
        raise TxNotProvenError(
            f"the transaction is not at index {index} of block {header.height}'s tx root")
    subject = {"hash": tx_hash, "sender": tx.sender, "nonce": tx.nonce, "type": tx.tx_type,
               "fields": dict(tx.fields), "index": index,
               "sender_signed": any(compute_address(k) == tx.sender for k in tx.signer_keys)}
    subject["result"] = check_result_section(proof.get("result"), header, tx_hash, index, size)
    subject["results_committed"] = getattr(header, "results_root", None) is not None
    return subject


def check_result_section(section: Any, header: BlockHeader, tx_hash: bytes, index: int,
                         size: int) -> dict[str, Any] | None:
    """The proven result of a transaction, or None when it cannot be proven here.

    A section {"leaf", "path"} proves the leaf codec [tx_hash, code, events_hash] at the
    transaction's index under the header's `results_root`; headers without that root
    prove no result, and the section is then ignored (the result stays the node's word).
    """
    results_root = getattr(header, "results_root", None)
    if section is None or results_root is None:
        return None
    leaf = _hex(section, "leaf", "result")
    path = _hex_list(section, "path", "result")
    value = _decode_value(leaf, "the result leaf")
    if (not isinstance(value, tuple) or len(value) != 3 or value[0] != tx_hash
            or not isinstance(value[1], str) or not isinstance(value[2], bytes)):
        raise ResultNotProvenError("the result leaf is not the result of this transaction")
    if not merkle.is_valid_proof(leaf, index, size, path, results_root):
        raise ResultNotProvenError(
            f"the result is not at index {index} of block {header.height}'s results root")
    return {"code": value[1], "ok": value[1] == "ok", "events_hash": value[2]}


# ------------------------------------------------------------------ verify_bundle


def verify_bundle(data: bytes | str | dict[str, Any], genesis: Genesis, *,
                  checkpoint: Checkpoint | None = None) -> VerifiedFact:
    """Check a proof bundle against `genesis` (and an operator's `checkpoint`, when the
    bundle starts from one) with no network; raise a BundleError naming what failed."""
    doc = load_bundle(data)
    if doc.get("format") != BUNDLE_FORMAT:
        raise UnsupportedBundleError(f"the file is not a {BUNDLE_FORMAT} (format "
                                     f"{str(doc.get('format'))[:40]!r})")
    if doc.get("version") not in READABLE_VERSIONS:
        raise UnsupportedBundleError(f"bundle version {doc.get('version')!r} is not one of "
                                     f"{READABLE_VERSIONS}")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise MalformedBundleError(f"bundle kind {kind!r} is not one of {KINDS}")
    if doc.get("genesis_hash") != genesis.hash.hex() or doc.get("chain_id") != genesis.chain_id:
        raise WrongGenesisError(
            f"the bundle is for genesis {str(doc.get('genesis_hash'))[:16]}... of chain "
            f"{doc.get('chain_id')!r}, not {genesis.hash.hex()[:16]}... of "
            f"{genesis.chain_id!r}")
    sets = doc.get("validator_sets")
    expected = 4 * len(sets) if isinstance(sets, list) else 0
    with _Signatures(expected) as signatures:
        vset, first_height, changes, trusted_from = _follow_sets(doc, genesis, checkpoint,
                                                                 signatures)
        block = _get(doc, "block", dict, "bundle")
        header = _read_header(block, "block")
        _check_chain(header, genesis.chain_id, "the block")
        if header.height < first_height or header.height != block.get("height",
                                                                       header.height):
            raise MalformedBundleError(f"block {header.height} is outside the bundle's "
                                       f"validator-set chain (from {first_height})")
        if header.height == 1 and header.prev_hash != genesis.hash:
            raise WrongGenesisError("block 1 does not follow this genesis")
        if header.validator_set_hash != vset.hash:
            raise MissingSetChangeError(
                f"block {header.height} names a validator set other than the one in force "
                f"since {first_height}: a validator-set change before it is missing")
        certificate = _read_certificate(block, "block")
        signatures.add_certificate(certificate, vset, genesis.chain_id, header)
        signatures.verify()
    subject: dict[str, Any] = {}
    proof = doc.get("proof")
    if kind == "record":
        subject = _check_record(proof, header)
    elif kind == "account":
        subject = _check_account(proof, header)
    elif kind == "tx":
        subject = _check_tx(proof, header, genesis.chain_id)
        reported = doc.get("reported")
        subject["reported"] = reported if isinstance(reported, dict) else None
    genesis_names = {v.public_key: v.name for v in genesis.validator_set.validators}
    names = {v.public_key: v.name for v in vset.validators}
    signers = tuple(Signer(key, genesis_names.get(key, names[key]), key in genesis_names)
                    for key, _ in certificate.signatures)
    return VerifiedFact(kind=kind, chain_id=genesis.chain_id, height=header.height,
                        block_hash=header.hash, timestamp_ms=header.timestamp_ms,
                        signers=signers, set_size=vset.size, quorum=vset.quorum,
                        set_changes=changes, trusted_from=trusted_from, subject=subject)


def check_document(fact: VerifiedFact, document_hash: bytes) -> None:
    """Raise unless `fact` proves a record whose doc_hash is `document_hash` (SHA-256)."""
    if fact.kind != "record":
        raise WrongRecordError(f"the bundle proves a {fact.kind}, not a record")
    if not fact.subject.get("exists"):
        raise DocumentMismatchError(
            f"the record {fact.subject['namespace']}/{fact.subject['key']} does not exist at "
            f"block {fact.height} (proven absent)")
    held = fact.subject.get("doc_hash") or b""
    if not held:
        raise DocumentMismatchError(
            f"the record {fact.subject['namespace']}/{fact.subject['key']} holds no document "
            "hash")
    if held != document_hash:
        raise DocumentMismatchError(
            f"the document's SHA-256 {document_hash.hex()} is not the hash the record "
            f"holds ({bytes(held).hex()}) at height {fact.height}")
