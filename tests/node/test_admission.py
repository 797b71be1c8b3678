"""What a refused transaction leaves behind: bounded rejection memory, no signature
verdict, a bounded nonce cache; and what relaying refusals costs a peer."""

from __future__ import annotations

import gc
import weakref

import pytest

from chain.crypto import Address, KeyPair
from chain.tx import make_transaction
from cli.service import NodeService
from node.admission import CommittedNonces, UnknownSenderAllowance
from sdk import AsyncClient
from tests.node.conftest import ACCOUNT_KEYS, CHAIN_ID, make_genesis, make_home

ALICE, BOB = ACCOUNT_KEYS[0], ACCOUNT_KEYS[1]
BOUND = 50


def stranger_transfers(count: int, salt: int = 7) -> list:
    """Validly signed transfers, each from an account that does not exist."""
    keys = [KeyPair.from_seed(salt.to_bytes(4, "big") + i.to_bytes(28, "big"))
            for i in range(count)]
    return [make_transaction(CHAIN_ID, key, 0, "transfer",
                             {"to": BOB.address, "asset": "GOV", "amount": 1})
            for key in keys]


def test_committed_nonces_are_bounded() -> None:
    reads: list[Address] = []

    def read(address: Address) -> int:
        reads.append(address)
        return 3

    nonces = CommittedNonces(read, max_entries=8)
    addresses = [Address(i.to_bytes(20, "big")) for i in range(20)]
    for address in addresses:
        assert nonces.get(address) == 3
        assert len(nonces) <= 8
    assert nonces.get(addresses[-1]) == 3 and len(reads) == 20  # the newest still cached
    nonces.clear()
    assert len(nonces) == 0 and nonces.get(addresses[-1]) == 3 and len(reads) == 21


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unknown_senders_are_free_up_to_the_allowance_then_cost_mildly() -> None:
    clock = FakeClock()
    allowance = UnknownSenderAllowance(burst=100, per_s=10, interval_s=1.0, clock=clock)
    assert not allowance.charge("a", 100)  # a lagging node's worth: free
    assert allowance.charge("a", 1)  # beyond it: a penalty
    assert not allowance.charge("a", 50)  # at most one per interval
    assert not allowance.charge("b", 100)  # each peer has its own allowance
    clock.now += 1.0
    assert allowance.charge("a", 50)  # 10 refilled, 50 more: over again, a second later
    clock.now += 20.0  # refilled to the burst, not beyond
    assert not allowance.charge("a", 100)
    assert allowance.charge("a", 1)


def test_unknown_sender_allowance_forgets_old_peers() -> None:
    allowance = UnknownSenderAllowance(burst=10, per_s=1, clock=FakeClock(), max_peers=4)
    for i in range(10):
        allowance.charge(f"peer{i}", 1)
        assert len(allowance) <= 4


@pytest.fixture
async def bounded_node(tmp_path):
    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path / "node0", make_genesis([validator]), validator,
                     mempool_max_rejections=BOUND, log_level="INFO")
    service = NodeService(home)
    await service.start()
    client = AsyncClient(service.rpc_url)
    try:
        yield service, client
    finally:
        await client.close()
        await service.stop()


async def test_refusals_beyond_the_bound_leave_only_the_bound(bounded_node) -> None:
    service, client = bounded_node
    node = service.node
    txs = stranger_transfers(4 * BOUND)
    for i in range(0, len(txs), 40):
        answers = await client.submit_batch(txs[i:i + 40])
        assert {a["error"]["data"]["reason"] for a in answers} == {"unknown_account"}
        assert node.mempool.rejection_count <= BOUND
        assert len(node.verifier) == 0  # no verdict kept for a refused transaction
    assert node.mempool.rejection_count == BOUND
    newest = await client.call("tx_get", hash=txs[-1].hash.hex())
    assert (newest["status"], newest["code"]) == ("rejected", "unknown_account")
    oldest = await client.call("tx_get", hash=txs[0].hash.hex())
    assert oldest["status"] == "unknown"  # forgotten: the memory is bounded
    # And a valid transfer still goes through.
    ok = make_transaction(CHAIN_ID, ALICE, 0, "transfer",
                          {"to": BOB.address, "asset": "GOV", "amount": 1})
    assert (await client.submit(ok, wait="final"))["status"] == "final"


async def test_a_refused_transaction_is_freed_at_once(bounded_node) -> None:
    # Not left in a reference cycle (the refusal's traceback holding the frames that hold
    # the batch) for the garbage collector, which the node runs rarely (cli/service.py).
    service, _client = bounded_node
    node = service.node
    txs = [node.admission.decode_tx(tx.encoded) for tx in stranger_transfers(20)]
    freed = [weakref.ref(tx) for tx in txs]
    gc.disable()
    try:
        errors = await node.submit_txs(txs)
        assert {e.code for e in errors if e is not None} == {"unknown_account"}
        assert all(e is not None and e.__traceback__ is None for e in errors)
        del txs, errors
        assert [ref() for ref in freed] == [None] * 20
    finally:
        gc.enable()


async def test_no_verdict_is_kept_for_a_tx_that_leaves_the_mempool_unfinal(bounded_node):
    service, _client = bounded_node
    node = service.node
    # Nonces 5 to 9 wait behind a gap: pending, verdicts kept.
    waiting = [make_transaction(CHAIN_ID, ALICE, n, "transfer",
                                {"to": BOB.address, "asset": "GOV", "amount": 1})
               for n in range(5, 10)]
    assert all(e is None for e in await node.submit_txs(waiting))
    assert all(node.verifier.is_known_valid(tx.hash) for tx in waiting)
    assert node.flush_mempool() == 5
    assert len(node.verifier) == 0


def test_verdict_cache_is_bounded_by_the_mempool(tmp_path) -> None:
    from node.node import Node
    from node.verifier import VERDICTS_BEYOND_MEMPOOL

    validator = KeyPair.from_seed(b"\x01" * 32)
    home = make_home(tmp_path / "node0", make_genesis([validator]), validator,
                     mempool_max_txs=1000)
    node = Node(home)
    try:
        assert node.verifier.cache_size == 1000 + VERDICTS_BEYOND_MEMPOOL
    finally:
        node.close()
