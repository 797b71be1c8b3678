"""Stateful property test of the government ledger against a plain model.

Random sequences of mints, burns, transfers, attestations, freezes and multisig
payments, some by accounts without the role. After every step: balances sum to the
supply, no mint took the supply above the attested reserve, frozen accounts did not
move, every refused action left state unchanged but for the sender's nonce.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chain import codec
from chain.crypto import KeyPair
from ledger.accounts import AccountRecord, get_account_record
from ledger.assets import get_asset_info
from ledger.keys import get_account_key
from ledger.state import Overlay
from tests.ledger.app_fixtures import (
    AUDITOR,
    COMPLIANCE,
    HOLDER,
    ISSUER,
    MEMBERS,
    OTHER,
    REPORT,
    RESERVE,
    STRANGER,
    T0,
    TREASURY,
    ctx_at,
    make_app,
)

PEOPLE = [HOLDER, OTHER, STRANGER, ISSUER]
ACTORS = [ISSUER, AUDITOR, COMPLIANCE, HOLDER, OTHER, STRANGER]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = make_app()
        self.supply = 100_000
        self.reserve = RESERVE
        self.frozen: set[bytes] = set()

    def _run(self, key: KeyPair, tx_type: str, fields: dict[str, Any], *,
             sender: bytes | None = None, signers: list[KeyPair] | None = None) -> str:
        app = self.app
        tx = app.tx(key, tx_type, fields, sender=sender, signers=signers)
        before = {k.address: app.ledger.get_balance(app.state, k.address, "KGS")
                  for k in PEOPLE}
        view = Overlay(app.state)
        try:
            result = app.ledger.apply_tx(view, ctx_at(app.height + 1), tx)
        except Exception as e:  # not applicable: nothing may change
            assert view.changes() == {}
            return str(getattr(e, "code", e))
        if not result.is_ok:
            record = get_account_record(app.state, tx.sender)
            assert record is not None
            bumped = AccountRecord(record.nonce + 1, record.assets)
            assert view.changes() == {get_account_key(tx.sender):
                                      codec.encode(bumped.to_value())}
        app.commit(view)
        app.height += 1
        for address in self.frozen:
            assert app.ledger.get_balance(app.state, address, "KGS") == before[address]
        return result.code

    @rule(actor=st.sampled_from(ACTORS), to=st.sampled_from(PEOPLE),
          amount=st.integers(1, 400_000))
    def mint(self, actor: KeyPair, to: KeyPair, amount: int) -> None:
        code = self._run(actor, "mint", {"asset": "KGS", "to": to.address, "amount": amount})
        if actor is not ISSUER:
            assert code == "missing_role"
        elif self.supply + amount > self.reserve:
            assert code == "reserve_exceeded"
        elif to.address in self.frozen:
            assert code == "account_frozen"
        else:
            assert code == "ok"
            self.supply += amount

    @rule(actor=st.sampled_from(PEOPLE), amount=st.integers(1, 200_000))
    def burn(self, actor: KeyPair, amount: int) -> None:
        balance = self.app.ledger.get_balance(self.app.state, actor.address, "KGS")
        code = self._run(actor, "burn", {"asset": "KGS", "amount": amount})
        if actor.address in self.frozen:
            assert code == "account_frozen"
        elif amount > balance:
            assert code == "insufficient_balance"
        else:
            assert code == "ok"
            self.supply -= amount

    @rule(actor=st.sampled_from(PEOPLE), to=st.sampled_from(PEOPLE),
          amount=st.integers(1, 200_000))
    def transfer(self, actor: KeyPair, to: KeyPair, amount: int) -> None:
        balance = self.app.ledger.get_balance(self.app.state, actor.address, "KGS")
        code = self._run(actor, "transfer", {"to": to.address, "asset": "KGS",
                                             "amount": amount})
        if actor.address in self.frozen:
            assert code == "account_frozen"
        elif amount > balance:
            assert code == "insufficient_balance"
        elif to.address in self.frozen:
            assert code == "account_frozen"
        else:
            assert code == "ok"

    @rule(actor=st.sampled_from(ACTORS), reserve=st.integers(0, 3_000_000))
    def attest(self, actor: KeyPair, reserve: int) -> None:
        code = self._run(actor, "attest", {"asset": "KGS", "reserve": reserve,
                                           "report_hash": REPORT,
                                           "timestamp_ms": T0 + (self.app.height + 1) * 1000})
        if actor is not AUDITOR:
            assert code == "missing_role"
        else:
            assert code == "ok"
            self.reserve = reserve

    @rule(actor=st.sampled_from(ACTORS), account=st.sampled_from(PEOPLE), freeze=st.booleans())
    def freeze(self, actor: KeyPair, account: KeyPair, freeze: bool) -> None:
        code = self._run(actor, "freeze" if freeze else "unfreeze",
                         {"asset": "KGS", "account": account.address})
        if actor is not COMPLIANCE:
            assert code == "missing_role"
        elif freeze == (account.address in self.frozen):
            assert code == ("already_frozen" if freeze else "not_frozen")
        else:
            assert code == "ok"
            (self.frozen.add if freeze else self.frozen.discard)(account.address)

    @rule(count=st.integers(0, 3), amount=st.integers(1, 10))
    def treasury_pays(self, count: int, amount: int) -> None:
        code = self._run(MEMBERS[0], "transfer", {"to": OTHER.address, "asset": "GOV",
                                                  "amount": amount},
                         sender=TREASURY, signers=MEMBERS[:count] if count else [STRANGER])
        assert (code == "ok") == (count >= 2)

    @invariant()
    def supply_matches_balances_and_reserve(self) -> None:
        info = get_asset_info(self.app.state, "KGS")
        assert info["supply"] == self.supply
        total = sum(self.app.ledger.get_balance(self.app.state, k.address, "KGS")
                    for k in PEOPLE)
        assert total == self.supply
        assert info["reserve"] == self.reserve


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25,
                                           deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
