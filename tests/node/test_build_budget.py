"""A proposer's block build stops at its time budget; the rest waits for the next block."""

from __future__ import annotations

from pathlib import Path

from chain.crypto import KeyPair
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.tx import Transaction, make_transaction
from chain.vote import Validator, ValidatorSet
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.execution import BUILD_CHECK_EVERY, BlockExecutor
from storage.chain_store import ChainStore

CHAIN_ID = "govchain-test"
VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
SENDERS = [KeyPair.from_seed(bytes([50 + i]) * 32) for i in range(4)]


def make_executor(tmp_path: Path) -> tuple[ChainStore, BlockExecutor]:
    params = ChainParams()
    genesis = Genesis(
        chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000,
        validator_set=ValidatorSet((Validator(VALIDATOR.public_key, "ministry-0"),)),
        accounts=tuple(GenesisAccount(k.address, {"GOV": 10**9}) for k in SENDERS),
        params=params)
    store = ChainStore.open(str(tmp_path / "data"), genesis)
    ledger = Ledger(default_modules())
    view = Overlay({})
    ledger.apply_genesis(view, genesis)
    store.commit_genesis(view.changes(), genesis.validator_set)
    return store, BlockExecutor(store, ledger, CHAIN_ID, params)


def transfers(count: int) -> list[Transaction]:
    return [make_transaction(CHAIN_ID, SENDERS[i % 4], i // 4, "transfer",
                             {"to": SENDERS[(i + 1) % 4].address, "asset": "GOV", "amount": 1})
            for i in range(count)]


def test_build_stops_at_its_budget_and_drops_nothing(tmp_path: Path) -> None:
    store, executor = make_executor(tmp_path)
    try:
        txs = transfers(3 * BUILD_CHECK_EVERY)
        # A budget already spent: the clock is first read after BUILD_CHECK_EVERY txs.
        executed, dropped = executor.build(height=1, round_=0, txs=txs,
                                           proposer=VALIDATOR.public_key,
                                           timestamp_ms=1_700_000_001_000, max_seconds=0.0)
        assert executed.block.txs == tuple(txs[:BUILD_CHECK_EVERY])
        assert dropped == []
        assert len(executed.results) == BUILD_CHECK_EVERY
        # The cut block is a block like any other: it re-executes to the same state.
        again = BlockExecutor(store, executor.ledger, CHAIN_ID, executor.params)
        assert again.execute(executed.block).prepared.root == executed.prepared.root
        # Without a budget (or with room) every transaction goes in.
        whole, _ = executor.build(height=1, round_=0, txs=txs, proposer=VALIDATOR.public_key,
                                  timestamp_ms=1_700_000_001_000, max_seconds=60.0)
        assert whole.block.txs == tuple(txs)
    finally:
        store.close()
