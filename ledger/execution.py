"""The ledger the node calls: genesis, mempool admission, block execution and reads.

`Ledger` dispatches each transaction to the module that owns its type. It is a pure
function of (state view, block context, transactions): no clock, no I/O, no
randomness, so every validator computes the same changes from the same block.
Theory of operation and every rejection code: docs/ledger.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chain import codec
from chain.errors import ChainError
from chain.genesis import ChainParams, Genesis
from chain.tx import Transaction
from chain.vote import ValidatorSet
from ledger.accounts import (
    AccountRecord,
    AccountsModule,
    get_account_record,
    put_account_record,
)
from ledger.accounts import get_balance as get_account_balance
from ledger.assets import AssetsModule
from ledger.auth import validate_authorization
from ledger.errors import (
    CorruptStateError,
    InvalidGenesisStateError,
    LedgerError,
    NonceTooHighError,
    NonceTooLowError,
    TxNotApplicable,
    UnknownAccountError,
    UnknownTxTypeError,
    WrongChainError,
)
from ledger.governance import GovernanceModule
from ledger.interface import OK, BlockContext, Event, LedgerModule, TxHandler, TxResult
from ledger.keys import CHAIN_PARAMS_KEY, VALIDATOR_SET_KEY
from ledger.multisig import MultisigModule
from ledger.private import PrivateModule
from ledger.recovery import RecoveryModule
from ledger.redemption import RedemptionModule
from ledger.registry import RegistryModule
from ledger.roles import RolesModule
from ledger.state import Overlay, StateReader
from ledger.tiers import TiersModule
from ledger.upgrades import Upgrade, apply_upgrade_due, get_pending_upgrade

__all__ = ["OK", "BlockContext", "Event", "Ledger", "TxResult", "default_modules"]


def default_modules() -> list[LedgerModule]:
    """The modules of a govchain node, in genesis order."""
    return [RecoveryModule(), AccountsModule(), MultisigModule(), AssetsModule(), TiersModule(),
            RedemptionModule(), RegistryModule(), PrivateModule(), RolesModule(),
            GovernanceModule()]


class Ledger:
    """The state machine: a fixed list of modules and the rules that run them."""

    def __init__(self, modules: Sequence[LedgerModule],
                 upgrades: Mapping[str, Upgrade] | None = None) -> None:
        self.modules: tuple[LedgerModule, ...] = tuple(modules)
        self.upgrades: dict[str, Upgrade] = dict(upgrades or {})
        """The upgrades this version implements, by name (ledger/upgrades.py)."""
        self._handlers: dict[str, TxHandler] = {}
        names = [module.name for module in self.modules]
        if len(set(names)) != len(names):
            raise ValueError(f"module names must be unique, got {names}")
        for module in self.modules:
            for tx_type, handler in module.tx_types.items():
                if tx_type in self._handlers:
                    raise ValueError(f"tx type {tx_type!r} is owned by two modules")
                self._handlers[tx_type] = handler

    @property
    def tx_types(self) -> tuple[str, ...]:
        """Every transaction type this ledger executes, sorted."""
        return tuple(sorted(self._handlers))

    # Genesis.

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        """Write the genesis state: validator set, parameters, then each module's state."""
        names = {module.name for module in self.modules}
        for name in sorted(genesis.app_state):
            if name not in names:
                raise InvalidGenesisStateError(f"app_state names unknown module {name!r}")
        view.put(VALIDATOR_SET_KEY, codec.encode(genesis.validator_set.to_value()))
        view.put(CHAIN_PARAMS_KEY, codec.encode(genesis.params.to_value()))
        for module in self.modules:
            module.apply_genesis(view, genesis)

    # Admission and execution.

    def check_admission(self, view: StateReader, tx: Transaction, *,
                        expected_nonce: int) -> None:
        """Raise a LedgerError unless `tx` may wait in the mempool.

        Signatures are already verified. `expected_nonce` is the sender's account
        nonce plus its transactions already pending; how far ahead a nonce may be is
        the mempool's window to enforce.
        """
        handler = self._get_handler(tx.tx_type)
        handler.validate_fields(tx.fields)
        record = self._get_sender_record(view, tx)
        validate_authorization(view, record, tx)
        if tx.nonce < expected_nonce:
            raise NonceTooLowError(
                f"nonce {tx.nonce} of {tx.sender.hex()} is used or pending; "
                f"the next free nonce is {expected_nonce}")
        if handler.check_state is not None:
            handler.check_state(view, tx)

    def validate_fields(self, tx: Transaction) -> None:
        """Raise unless a module owns `tx.tx_type` and its fields are well-formed."""
        self._get_handler(tx.tx_type).validate_fields(tx.fields)

    def begin_block(self, view: Overlay, ctx: BlockContext) -> list[Event]:
        """What runs before a block's transactions: the upgrade due at its height.

        Raises UpgradeNotImplementedError when that upgrade is not one this version
        implements (the block must then be neither built nor accepted).
        """
        return apply_upgrade_due(view, ctx, self.upgrades)

    def get_pending_upgrade(self, view: StateReader) -> dict[str, Any] | None:
        """The scheduled upgrade plan not yet reached, or None."""
        return get_pending_upgrade(view)

    def apply_tx(self, view: Overlay, ctx: BlockContext, tx: Transaction) -> TxResult:
        """Execute `tx` (signatures already verified) and return its result.

        Raises TxNotApplicable when `tx` must never be in a block. Otherwise the
        sender's nonce is consumed whatever happens; the transaction's own changes
        are kept only if it succeeds. CorruptStateError propagates: the node must stop.
        """
        try:
            record = self._validate_applicable(view, ctx, tx)
        except CorruptStateError:
            raise  # our disk, not the transaction: never blame the block for it
        except LedgerError as e:
            raise TxNotApplicable(e) from e
        put_account_record(view, tx.sender, AccountRecord(record.nonce + 1, record.assets))
        tx_view = view.child()
        try:
            handler = self._get_handler(tx.tx_type)
            handler.validate_fields(tx.fields)
            events = handler.apply(tx_view, ctx, tx)
        except CorruptStateError:
            raise
        except LedgerError as e:
            return TxResult.failed(e)
        tx_view.commit()
        return TxResult.ok(events)

    def apply_block(self, view: Overlay, ctx: BlockContext,
                    txs: Iterable[Transaction]) -> list[TxResult]:
        """Execute `txs` in order; all of their changes land in `view`, or none do.

        Raises TxNotApplicable naming the index of the first transaction that must
        not be in a block; `view` is then left untouched.
        """
        block_view = view.child()
        self.begin_block(block_view, ctx)
        results = []
        for index, tx in enumerate(txs):
            try:
                results.append(self.apply_tx(block_view, ctx, tx))
            except TxNotApplicable as e:
                raise TxNotApplicable(e.cause, index) from e
        block_view.commit()
        return results

    def _validate_applicable(self, view: StateReader, ctx: BlockContext,
                             tx: Transaction) -> AccountRecord:
        if tx.chain_id != ctx.chain_id:
            raise WrongChainError(f"transaction is for chain {tx.chain_id!r}, "
                                  f"the block is on {ctx.chain_id!r}")
        record = self._get_sender_record(view, tx)
        validate_authorization(view, record, tx)
        if tx.nonce < record.nonce:
            raise NonceTooLowError(
                f"nonce {tx.nonce} of {tx.sender.hex()} is used; the next is {record.nonce}")
        if tx.nonce > record.nonce:
            raise NonceTooHighError(
                f"nonce {tx.nonce} of {tx.sender.hex()} skips ahead; the next is {record.nonce}")
        return record

    def _get_sender_record(self, view: StateReader, tx: Transaction) -> AccountRecord:
        record = get_account_record(view, tx.sender)
        if record is None:
            raise UnknownAccountError(
                f"sender {tx.sender.hex()} has no account: fund it (genesis or a transfer) "
                f"before it sends")
        return record

    def _get_handler(self, tx_type: str) -> TxHandler:
        handler = self._handlers.get(tx_type)
        if handler is None:
            raise UnknownTxTypeError(
                f"no module handles tx type {tx_type!r}; known types: {list(self.tx_types)}")
        return handler

    # Reads.

    def get_nonce(self, view: StateReader, address: bytes) -> int:
        """The next nonce `address` must use (0 for an unknown account)."""
        record = get_account_record(view, address)
        return 0 if record is None else record.nonce

    def get_balance(self, view: StateReader, address: bytes, asset: str) -> int:
        """`address`'s balance of `asset`, 0 when it holds none."""
        return get_account_balance(view, address, asset)

    def get_account(self, view: StateReader, address: bytes) -> dict[str, Any]:
        """{"address", "nonce", "balances": {asset: amount}}; raises UnknownAccountError."""
        record = get_account_record(view, address)
        if record is None:
            raise UnknownAccountError(f"no account at address {address.hex()}")
        balances = {asset: get_account_balance(view, address, asset) for asset in record.assets}
        return {"address": address, "nonce": record.nonce, "balances": balances}

    def get_validator_set(self, view: StateReader) -> ValidatorSet:
        """The validator set that certifies the next block."""
        return ValidatorSet.from_value(_get_record(view, VALIDATOR_SET_KEY, "validator set"))

    def get_chain_params(self, view: StateReader) -> ChainParams:
        """The chain parameters in force."""
        value = codec.expect_map(_get_record(view, CHAIN_PARAMS_KEY, "chain parameters"),
                                 "chain parameters")
        return ChainParams.from_value(value)


def _get_record(view: StateReader, key: bytes, what: str) -> Any:
    data = view.get(key)
    if data is None:
        raise CorruptStateError(f"the {what} is missing: was genesis applied?")
    try:
        return codec.decode(data)
    except ChainError as e:
        raise CorruptStateError(f"the {what} does not decode: {e}") from e
