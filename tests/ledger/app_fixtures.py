"""A chain with the government ledger seeded: stablecoin KGS, a registry, a treasury."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from chain import codec
from chain.crypto import KeyPair, PublicKey, compute_multisig_address
from chain.genesis import Genesis, GenesisAccount
from chain.tx import Transaction
from chain.vote import Validator, ValidatorSet
from ledger.accounts import AccountRecord, get_account_record
from ledger.errors import TxNotApplicable
from ledger.execution import BlockContext, Ledger, TxResult, default_modules
from ledger.keys import get_account_key
from ledger.state import Overlay

CHAIN_ID = "gov-test"
T0 = 1_700_000_000_000


def _key(seed: int) -> KeyPair:
    return KeyPair.from_seed(bytes([seed]) * 32)


VALIDATORS = [_key(60 + i) for i in range(4)]
ISSUER, AUDITOR, COMPLIANCE, WRITER = _key(70), _key(71), _key(72), _key(73)
HOLDER, OTHER, STRANGER = _key(74), _key(75), _key(76)
MEMBERS = [_key(80 + i) for i in range(3)]
TREASURY = compute_multisig_address(2, tuple(m.public_key for m in MEMBERS))
RESERVE = 1_000_000
REPORT = bytes(range(32))


def make_app_genesis(validators: list[KeyPair] = VALIDATORS) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=T0 - 10_000,
        validator_set=ValidatorSet(tuple(Validator(k.public_key, f"ministry-{i}")
                                         for i, k in enumerate(validators))),
        accounts=(GenesisAccount(HOLDER.address, {"KGS": 100_000, "GOV": 1000}),
                  GenesisAccount(ISSUER.address, {"GOV": 10}),
                  GenesisAccount(AUDITOR.address, {}),
                  GenesisAccount(COMPLIANCE.address, {}),
                  GenesisAccount(WRITER.address, {}),
                  GenesisAccount(OTHER.address, {"GOV": 5}),
                  GenesisAccount(STRANGER.address, {"GOV": 5}),
                  GenesisAccount(TREASURY, {"GOV": 5000})),
        app_state={
            "assets": {"assets": [{
                "symbol": "KGS", "name": "Som stablecoin", "decimals": 2,
                "reserve_backed": True,
                "attestation": {"reserve": RESERVE, "report_hash": REPORT.hex(),
                                "timestamp_ms": T0 - 20_000}}]},
            "registry": {"namespaces": [{"name": "licenses", "description": "VASP licences",
                                         "max_value_bytes": 64}]},
            "roles": {"grants": [
                {"role": "issuer", "scope": "KGS", "address": ISSUER.address.hex()},
                {"role": "auditor", "scope": "KGS", "address": AUDITOR.address.hex()},
                {"role": "compliance", "scope": "KGS", "address": COMPLIANCE.address.hex()},
                {"role": "writer", "scope": "licenses", "address": WRITER.address.hex()}]},
            "multisig": {"accounts": [{"threshold": 2,
                                       "members": [m.public_key.hex() for m in MEMBERS]}]},
        })


def ctx_at(height: int, validators: list[KeyPair] = VALIDATORS) -> BlockContext:
    return BlockContext(CHAIN_ID, height, T0 + height * 1000,
                        PublicKey(validators[0].public_key))


@dataclass
class App:
    """A ledger over a committed dict state, with a nonce book for convenience."""

    ledger: Ledger
    state: dict[bytes, bytes]
    height: int = 0
    nonces: dict[bytes, int] = field(default_factory=dict)

    def tx(self, key: KeyPair, tx_type: str, fields: dict[str, Any], *,
           sender: bytes | None = None, signers: list[KeyPair] | None = None) -> Transaction:
        address = sender or key.address
        nonce = self.ledger.get_nonce(self.state, address)
        unsigned = Transaction(CHAIN_ID, address, nonce, tx_type, fields)  # type: ignore[arg-type]
        for signer in signers or [key]:
            unsigned = unsigned.with_signature(signer)
        return unsigned

    def run(self, tx: Transaction, height: int | None = None) -> TxResult:
        """Execute `tx` in its own block at the next height and commit the state."""
        self.height = height if height is not None else self.height + 1
        view = Overlay(self.state)
        result = self.ledger.apply_tx(view, ctx_at(self.height), tx)
        self.commit(view)
        return result

    def do(self, key: KeyPair, tx_type: str, fields: dict[str, Any], **kw: Any) -> TxResult:
        return self.run(self.tx(key, tx_type, fields, **kw))

    def ok(self, key: KeyPair, tx_type: str, fields: dict[str, Any], **kw: Any) -> TxResult:
        result = self.do(key, tx_type, fields, **kw)
        assert result.is_ok, (result.code, result.message)
        return result

    def commit(self, view: Overlay) -> None:
        for key, value in view.changes().items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value

    def assert_fails(self, key: KeyPair, tx_type: str, fields: dict[str, Any], code: str,
                     **kw: Any) -> TxResult:
        """The tx fails with `code`; only the sender's nonce changed."""
        tx = self.tx(key, tx_type, fields, **kw)
        view = Overlay(self.state)
        result = self.ledger.apply_tx(view, ctx_at(self.height + 1), tx)
        assert (result.code, result.events) == (code, ()), result
        record = get_account_record(self.state, tx.sender)
        assert record is not None
        bumped = AccountRecord(record.nonce + 1, record.assets)
        assert view.changes() == {get_account_key(tx.sender): codec.encode(bumped.to_value())}
        self.commit(view)
        self.height += 1
        return result

    def assert_not_applicable(self, tx: Transaction, code: str) -> None:
        view = Overlay(self.state)
        with pytest.raises(TxNotApplicable) as info:
            self.ledger.apply_tx(view, ctx_at(self.height + 1), tx)
        assert info.value.code == code
        assert view.changes() == {}


def make_app(genesis: Genesis | None = None) -> App:
    ledger = Ledger(default_modules())
    view = Overlay({})
    ledger.apply_genesis(view, genesis or make_app_genesis())
    return App(ledger, {k: v for k, v in view.changes().items() if v is not None})


@pytest.fixture
def app() -> App:
    return make_app()
