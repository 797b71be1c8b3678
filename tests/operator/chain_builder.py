"""A small real chain on disk: one validator in-process, transfers over several blocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chain.crypto import KeyPair
from chain.tx import Transaction, make_transaction
from cli.service import NodeService
from sdk import AsyncClient
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID, make_genesis, make_home, wait_for

VALIDATOR = KeyPair.from_seed(b"\x01" * 32)
ALICE, BOB = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]


def transfer(nonce: int, amount: int = 10, key: KeyPair = ALICE,
             to: KeyPair = BOB) -> Transaction:
    return make_transaction(CHAIN_ID, key, nonce, "transfer",
                            {"to": to.address, "asset": "GOV", "amount": amount})


async def build_chain(home_path: Path, *, rounds: int = 4, per_round: int = 5,
                      min_height: int = 6) -> Path:
    """Make a home at `home_path` holding a chain with transactions in several blocks;
    the node is stopped on return (its database is free to open)."""
    genesis = make_genesis([VALIDATOR])
    home = make_home(home_path, genesis, VALIDATOR)
    service = NodeService(home)
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        nonce = 0
        for _ in range(rounds):
            txs = [transfer(nonce + i, 1 + i) for i in range(per_round)]
            nonce += per_round
            await client.submit_batch(txs)
            await client.submit(txs[-1], wait="final")

        async def tall_enough() -> bool:
            return service.node.store.head_height >= min_height

        await wait_for(tall_enough, 10, f"height {min_height}")
    finally:
        await client.close()
        await service.stop()
    await asyncio.sleep(0)
    return home_path
