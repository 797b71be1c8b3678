"""Deterministic simulation of a govchain validator network: real nodes, simulated world.

Each validator is a real `Node` (node/node.py): its driver, consensus core, mempool,
ledger, block executor and ChainStore, over a dict-backed store (storage/kv.py). What
is simulated is the world around the nodes (node/runtime.py): one event loop on
simulated time runs every driver and timer (no threads, no sockets); the worker runs
work inline after a simulated delay; the verifier checks signatures inline; the
harness plays p2p, gossip and sync, and submits transactions as RPC clients would.
One seed drives the network (delay, reorder, drop, duplicate, partitions), the work
delays, crashes and restarts, and the byzantine validators. Safety is checked at every
broadcast and commit, liveness after the network heals; a failure names
SIM_SEED=<seed> and prints the tail of a replayable trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chain.block import Block
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.errors import InvalidCertificateError
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.tx import Transaction, make_transaction
from chain.vote import (
    NIL,
    CommitCertificate,
    Proposal,
    Validator,
    ValidatorSet,
    Vote,
    VoteKind,
    validate_certificate,
)
from consensus.core import is_valid_proposal_signature
from consensus.events import (
    BlockBuilt,
    BlockValidated,
    Broadcast,
    CommitBlock,
    Effect,
    Event,
    PersistSignState,
    ProposalReceived,
    RecordEvidence,
    ScheduleTimeout,
    StartHeight,
    Step,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from ledger.execution import Ledger, default_modules
from ledger.state import Overlay
from node.config import NodeConfig, NodeHome
from node.execution import ExecutedBlock
from node.node import Node, SyncedBlock, decode_sign_state
from storage.chain_store import ChainStore
from storage.kv import MemoryStore
from tests.simulation.world import SimClock, SimulatedLoop, SimVerifier, SimWorker

CHAIN_ID = "govchain-sim"
GENESIS_TIME_MS = 1_700_000_000_000
SIM_PARAMS = ChainParams(block_interval_ms=50, empty_block_interval_ms=150,
                         timeout_propose_ms=200, timeout_vote_ms=100, timeout_delta_ms=50,
                         timeout_max_ms=3000)
"""Fast rounds. The timeout cap is above the slowest block execution a seed models
(2.5 s): with timeouts capped below what a round takes, rounds run ahead of the
validators, which execute blocks one at a time and nothing else meanwhile."""
SENDER_KEYS = [KeyPair.from_seed(bytes([200 + i]) * 32) for i in range(8)]
"""Funded accounts whose transfers the simulation submits."""
_STEP_RANK = {Step.PROPOSE: 1, Step.PREVOTE: 2, Step.PRECOMMIT: 3}


class SimulationFailure(AssertionError):
    """An invariant broke; the message names the seed and the trace tail."""


@dataclass
class Scenario:
    """What one simulated run does; every random choice comes from `seed`."""

    seed: int
    n: int = 4
    byzantine: int = 0
    chaos_ms: int = 3_000
    """Length of the faulty phase (drops, partitions, crashes)."""
    drop_rate: float = 0.1
    duplicate_rate: float = 0.05
    max_delay_ms: int = 40
    partitions: bool = True
    crashes: bool = True
    wiped_restart: bool = False
    """Restart one crashed validator at heal time with a wiped data directory."""
    restart_at_heal: bool = True
    """Restart every crashed honest validator when the network heals."""
    max_validate_ms: int = 5
    """Upper bound of the time executing a proposed block takes (each block its own
    time, the same on every node); above the propose timeout (200 ms in SIM_PARAMS) it
    models blocks slower to execute than the timeout. The driver does nothing else
    meanwhile, as a real node's does not."""
    malformed_rate: float = 0.3
    """Share of a byzantine proposer's conflicting proposals that are malformed blocks
    (a wrong state root or, every other one, a wrong results root); the rest are valid
    blocks of their own."""
    liveness_heights: int = 3
    """New heights every honest node must commit after healing."""
    liveness_budget_ms: int = 30_000
    controls: list[tuple[int, str, Any]] = field(default_factory=list)
    """Extra (time_ms, action, argument) faults: 'crash', 'restart', 'wipe_restart'."""


@functools.cache
def make_genesis(n: int) -> Genesis:
    keys = validator_keys(n)
    return Genesis(chain_id=CHAIN_ID, genesis_time_ms=GENESIS_TIME_MS,
                   validator_set=ValidatorSet(tuple(Validator(k.public_key, f"v{i}")
                                                    for i, k in enumerate(keys))),
                   accounts=tuple(GenesisAccount(k.address, {"GOV": 10**12})
                                  for k in SENDER_KEYS),
                   params=SIM_PARAMS)


@functools.cache
def validator_keys(n: int) -> tuple[KeyPair, ...]:
    return tuple(KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(n))


@functools.cache
def _genesis_disk(n: int) -> MemoryStore:
    """A data directory holding the genesis state, built once; nodes start on copies."""
    genesis = make_genesis(n)
    disk = MemoryStore()
    store = ChainStore.open_memory(genesis, disk)
    view = Overlay({})
    Ledger(default_modules()).apply_genesis(view, genesis)
    store.commit_genesis(view.changes(), genesis.validator_set)
    return disk


def new_disk(n: int) -> MemoryStore:
    return _genesis_disk(n).copy()


# ---------------------------------------------------------------- nodes


@dataclass
class SimNode:
    """A validator: its data directory, and the running Node while it is up."""

    index: int
    key: KeyPair
    honest: bool
    disk: MemoryStore
    store: ChainStore
    """The store over `disk` the node last ran with (it outlives a crash)."""
    node: Node | None = None
    task: asyncio.Task[None] | None = None
    incarnation: int = 0
    synced_to: int = 0
    """The highest block handed to this incarnation by sync."""
    seen: set[bytes] = field(default_factory=set)
    """Signatures of the messages this incarnation's gossip took: p2p drops copies."""

    @property
    def is_up(self) -> bool:
        return self.node is not None

    @property
    def height(self) -> int:
        return self.store.head_height

    @property
    def chain(self) -> list[tuple[Block, CommitCertificate]]:
        """The committed blocks with their certificates, as the data directory holds them."""
        chain = []
        for height in range(1, self.store.head_height + 1):
            block, certificate = self.store.get_block(height), self.store.get_certificate(height)
            assert block is not None and certificate is not None
            chain.append((block, certificate))
        return chain

    @property
    def sign_state(self) -> PersistSignState | None:
        return decode_sign_state(self.store.load_sign_state(), None)


class Simulation:
    """The harness: the simulated world, the faults, and the invariant checks."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.genesis = make_genesis(scenario.n)
        self.validator_set = self.genesis.validator_set
        self.keys = list(validator_keys(scenario.n))
        self.loop = SimulatedLoop()
        self.loop.set_exception_handler(self._on_loop_error)
        self.clock = SimClock(self.loop, GENESIS_TIME_MS)
        self.worker = SimWorker(self.get_work_ms)
        self.verifier = SimVerifier()
        self.nodes = []
        for i, key in enumerate(self.keys):
            disk = new_disk(scenario.n)
            self.nodes.append(SimNode(i, key, honest=i >= scenario.byzantine, disk=disk,
                                      store=ChainStore.open_memory(self.genesis, disk)))
        self.trace: deque[tuple[int, int | None, Any]] = deque(maxlen=400)
        """(time, node, (event, effects)) per driver step, (time, None, text) per fault."""
        self.group: dict[int, int] = {}
        self.drop_rate = scenario.drop_rate
        self.committed: dict[int, Hash32] = {}
        self.signed: dict[tuple[bytes, int, int, str], Hash32] = {}
        self.persisted: dict[int, tuple[int, int, int]] = {}
        """The highest sign state seen persisted by each honest validator."""
        self._persisted_raw: dict[int, tuple[bytes | None, tuple[int, int, int] | None]] = {}
        self.evidence: list[RecordEvidence] = []
        self.pending_txs: dict[Hash32, Transaction] = {}
        """Submitted transactions not yet final on any honest node, in order."""
        self._tx_times: list[int] = []
        """When the next transactions arrive (the soonest last)."""
        self._next_nonce = [0] * len(SENDER_KEYS)
        self._next_sender = 0
        self._verified: dict[tuple[Any, ...], bool] = {}
        self._certified: set[tuple[int, Hash32, bytes]] = set()
        self._alternatives: dict[tuple[Hash32, bool], Block] = {}
        self.malformed: dict[Hash32, str] = {}
        """Malformed blocks a byzantine proposer sent, by hash: the header field made wrong."""
        self._work_salt = self.rng.randbytes(8)
        self.healed_at: int | None = None
        self.goal: int | None = None
        self.failure: SimulationFailure | None = None
        self._finished = self.loop.create_future()

    # ------------------------------------------------------------ plumbing

    @property
    def now(self) -> int:
        return round(self.loop.time() * 1000)

    def fail(self, what: str) -> None:
        """Record the first broken invariant, stop the run, and raise it."""
        if self.failure is None:
            lines = format_trace(self.trace)
            self.failure = SimulationFailure(
                f"SIM_SEED={self.scenario.seed}: {what} at t={self.now}ms\n"
                f"trace (last {len(lines)} steps):\n" + "\n".join(lines))
            if not self._finished.done():
                self._finished.set_result(None)
        raise self.failure

    def at(self, time_ms: int, action: Callable[[], None]) -> None:
        def run() -> None:
            if self.failure is None:
                action()
        self.loop.call_at(time_ms / 1000, run)

    def log(self, text: str) -> None:
        self.trace.append((self.now, None, text))

    def honest_up(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest and n.is_up]

    def get_work_ms(self, work: str, args: tuple[Any, ...]) -> int:
        """How long a worker duty takes: executing a proposed block, a time of its own
        (the same on every node, up to max_validate_ms); building one, up to 5 ms."""
        if work == "execute":
            block = args[0]
            assert isinstance(block, Block)
            span = self.scenario.max_validate_ms + 1
            return int.from_bytes(compute_hash(self._work_salt + block.hash)[:4]) % span
        if work == "build":
            return self.rng.randint(0, 5)
        return 0

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, SimulationFailure):
            return
        if self.failure is None:
            with contextlib.suppress(SimulationFailure):
                self.fail(f"unexpected error: {context.get('message')} {error!r}")

    def _on_driver_done(self, sim_node: SimNode, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, SimulationFailure) or self.failure is not None:
            return
        with contextlib.suppress(SimulationFailure):
            self.fail(f"the driver of n{sim_node.index} died: {error!r}")

    # ------------------------------------------------------------ nodes up and down

    def start_node(self, sim_node: SimNode, *, wiped: bool = False) -> None:
        if wiped:
            sim_node.disk = new_disk(self.scenario.n)
            self.persisted.pop(sim_node.index, None)
        if sim_node.incarnation or wiped:
            # A restart reads the data directory afresh, as a new process would.
            sim_node.store = ChainStore.open_memory(self.genesis, sim_node.disk)
        sim_node.incarnation += 1
        sim_node.synced_to = 0
        sim_node.seen = set()
        home = NodeHome(path=Path(f"sim/n{sim_node.index}"), config=NodeConfig(),
                        genesis=self.genesis, validator_key=sim_node.key,
                        node_key=sim_node.key)
        node = Node(home, store=sim_node.store, clock=self.clock, worker=self.worker,
                    verifier=self.verifier)
        node.broadcast_message = functools.partial(self.on_broadcast, sim_node, node)
        node.add_commit_listener(functools.partial(self.on_commit, sim_node))
        node.on_evidence = functools.partial(self.on_evidence, sim_node)
        node.on_step = functools.partial(self.on_step, sim_node)
        # What NodeNetwork.prepare_consensus does with the heights its peers report.
        network_height = max((n.height for n in self.nodes if n.is_up), default=0)
        if node.needs_double_sign_guard() and network_height > 0:
            node.arm_double_sign_guard(network_height)
        self.log(f"n{sim_node.index} starts{' (wiped)' if wiped else ''} at height "
                 f"{sim_node.height}")
        sim_node.node = node
        sim_node.task = self.loop.create_task(node.run(), name=f"n{sim_node.index}")
        sim_node.task.add_done_callback(functools.partial(self._on_driver_done, sim_node))
        if self.pending_txs:
            self.submit(sim_node, list(self.pending_txs.values()))
        self.sync(sim_node)

    def crash(self, sim_node: SimNode) -> None:
        if sim_node.node is None:
            return
        self.log(f"n{sim_node.index} crashes")
        assert sim_node.task is not None
        sim_node.task.cancel()
        sim_node.node = None
        sim_node.task = None

    def restart_if_down(self, sim_node: SimNode, *, wiped: bool = False) -> None:
        if sim_node.node is None:
            self.start_node(sim_node, wiped=wiped)

    # ------------------------------------------------------------ what nodes tell

    def on_step(self, sim_node: SimNode, event: Event, effects: list[Effect]) -> None:
        self.trace.append((self.now, sim_node.index, (event, effects)))

    def on_broadcast(self, sim_node: SimNode, node: Node, message: Proposal | Vote) -> None:
        if sim_node.node is not node:
            return  # a crashed incarnation
        own = not isinstance(message, Vote) or message.validator == sim_node.key.public_key
        if sim_node.honest and own:
            self.check_signed(sim_node, node, message)
            if isinstance(message, Vote) and message.block_hash in self.malformed:
                self.fail(f"honest n{sim_node.index} voted {message.kind.name} for a block "
                          f"with a wrong {self.malformed[message.block_hash]}")
        for peer in self.nodes:
            if peer is sim_node:
                continue
            outgoing: Proposal | Vote = message
            if not sim_node.honest and own and self.rng.random() < 0.5:
                outgoing = self.conflicting(sim_node, node, message)
            self.send(sim_node, peer, outgoing)

    def check_signed(self, sim_node: SimNode, node: Node, message: Proposal | Vote) -> None:
        """No honest double-sign, the sign state persisted before the send, and the
        persisted sign state never going back."""
        if isinstance(message, Vote):
            step = Step.PREVOTE if message.kind is VoteKind.PREVOTE else Step.PRECOMMIT
            block_hash = message.block_hash
        else:
            step = Step.PROPOSE
            block_hash = message.block.hash
        key = (sim_node.key.public_key, message.height, message.round, step.value)
        seen = self.signed.setdefault(key, block_hash)
        if seen != block_hash:
            self.fail(f"honest n{sim_node.index} signed two messages at {key[1:]}")
        persisted = self.get_persisted(sim_node, node)
        if persisted is None or persisted < (message.height, message.round, _STEP_RANK[step]):
            self.fail(f"n{sim_node.index} broadcast {key[1:]} before persisting its sign "
                      "state")
        last = self.persisted.get(sim_node.index)
        if last is not None and persisted < last:
            self.fail(f"n{sim_node.index} persisted sign state went back from {last} to "
                      f"{persisted}")
        self.persisted[sim_node.index] = persisted

    def get_persisted(self, sim_node: SimNode, node: Node) -> tuple[int, int, int] | None:
        """(height, round, step) of the sign state in the node's data directory."""
        raw = node.store.load_sign_state()
        cached = self._persisted_raw.get(sim_node.index)
        if cached is not None and cached[0] is raw:
            return cached[1]
        state = decode_sign_state(raw, None)
        persisted = None if state is None else sign_key(state)
        self._persisted_raw[sim_node.index] = (raw, persisted)
        return persisted

    def on_commit(self, sim_node: SimNode, executed: ExecutedBlock,
                  certificate: CommitCertificate) -> None:
        block = executed.block
        self.check_certificate(sim_node, block, certificate)
        if sim_node.honest:
            first = self.committed.setdefault(block.height, block.hash)
            if first != block.hash:
                self.fail(f"two honest nodes committed different blocks at height "
                          f"{block.height}")
            for tx in block.txs:
                self.pending_txs.pop(tx.hash, None)
        self.check_liveness()

    def check_certificate(self, sim_node: SimNode, block: Block,
                          certificate: CommitCertificate) -> None:
        key = (block.height, block.hash, certificate.encoded)
        if key in self._certified:
            return
        try:
            validate_certificate(certificate, self.validator_set, CHAIN_ID,
                                 height=block.height, block_hash=block.hash)
        except InvalidCertificateError as e:
            self.fail(f"n{sim_node.index} committed height {block.height} with a bad "
                      f"certificate: {e}")
        self._certified.add(key)

    def on_evidence(self, sim_node: SimNode, first: Vote, second: Vote) -> None:
        culprit = self.validator_set.index_of[first.validator]
        if self.nodes[culprit].honest:
            self.fail(f"n{sim_node.index} recorded evidence against honest n{culprit}")
        if first.block_hash == second.block_hash:
            self.fail("evidence of two votes for the same block")
        self.evidence.append(RecordEvidence(first, second))

    # ------------------------------------------------------------ the network

    def conflicting(self, sim_node: SimNode, node: Node,
                    message: Proposal | Vote) -> Proposal | Vote:
        """What a byzantine validator sends some peers instead of `message`."""
        if isinstance(message, Vote):
            other = NIL if message.block_hash != NIL else Hash32(self.rng.randbytes(32))
            return Vote.create(CHAIN_ID, sim_node.key, message.kind, message.height,
                               message.round, other)
        # One other valid block and one malformed block per proposal, each peer getting
        # one of the three: a node validates each distinct block of a round in turn.
        malformed = self.rng.random() < self.scenario.malformed_rate
        alternative = self._alternatives.get((message.block.hash, malformed))
        if alternative is None:
            # Another block on the same parent, built by the node's own executor.
            block = message.block
            executed, _ = node.executor.build(
                height=block.height, round_=message.round, txs=list(block.txs),
                proposer=sim_node.key.public_key,
                timestamp_ms=block.header.timestamp_ms + self.rng.randint(1, 9))
            alternative = executed.block
            if malformed:
                # Alternately a wrong state root and a wrong results root: both are
                # found only by executing the block.
                field_name = ("state_root", "results_root")[len(self.malformed) % 2]
                wrong_root = compute_hash(b"wrong" + getattr(alternative.header, field_name))
                alternative = Block(replace(alternative.header, **{field_name: wrong_root}),
                                    alternative.txs)
                self.malformed[alternative.hash] = field_name
            self._alternatives[(message.block.hash, malformed)] = alternative
        return Proposal.create(CHAIN_ID, sim_node.key, message.height, message.round, -1,
                               alternative)

    def send(self, src: SimNode, dst: SimNode, message: Proposal | Vote) -> None:
        copies = 1
        if self.rng.random() < self.drop_rate:
            copies = 0
        elif self.rng.random() < self.scenario.duplicate_rate:
            copies = 2
        now = self.now
        for _ in range(copies):
            delay = self.rng.randint(1, self.scenario.max_delay_ms)
            self.loop.call_at((now + delay) / 1000, self.deliver, src, dst, message)

    def deliver(self, src: SimNode, dst: SimNode, message: Proposal | Vote) -> None:
        """What p2p/network.py (a copy of a message taken before is dropped) and
        node/gossip.py (checks, then the driver's queue) do with a peer's message."""
        node = dst.node
        if (node is None or self.failure is not None or message.signature in dst.seen
                or self.group.get(src.index, 0) != self.group.get(dst.index, 0)):
            return
        if not self.is_signature_valid(message):
            self.log(f"n{dst.index} drops a badly signed {type(message).__name__}")
            dst.seen.add(message.signature)
            return
        height = node.store.head_height + 1
        if message.height != height:
            if message.height > height:
                self.sync(dst)
            return  # not taken: it may come again once this node is at its height
        if isinstance(message, Vote):
            node.enqueue(VoteReceived(message))
        elif message.block.height == message.height and (
                message.block.header.timestamp_ms - self.clock.now_ms()
                <= SIM_PARAMS.clock_skew_ms):
            node.enqueue(ProposalReceived(message))
        else:
            return
        dst.seen.add(message.signature)

    def is_signature_valid(self, message: Proposal | Vote) -> bool:
        if isinstance(message, Vote):
            key: tuple[Any, ...] = (message.validator, message.signature, message.kind,
                                    message.height, message.round, message.block_hash)
            verify = lambda: (self.validator_set.is_member(message.validator)  # noqa: E731
                              and message.is_signature_valid(CHAIN_ID))
        else:
            key = (message.signature, message.height, message.round, message.pol_round,
                   message.block.hash)
            verify = lambda: is_valid_proposal_signature(  # noqa: E731
                message, self.validator_set, CHAIN_ID)
        if key not in self._verified:
            self._verified[key] = verify()
        return self._verified[key]

    def sync(self, sim_node: SimNode) -> None:
        """Block sync: hand the node the blocks and certificates of the longest chain up,
        which its driver checks and applies (Node._apply_synced)."""
        node = sim_node.node
        assert node is not None
        sources = [n for n in self.nodes if n.is_up and n is not sim_node]
        best = max(sources, key=lambda n: n.height, default=None)
        start = max(node.store.head_height, sim_node.synced_to) + 1
        if best is None or best.height < start:
            return
        for height in range(start, best.height + 1):
            block, certificate = best.store.get_block(height), best.store.get_certificate(height)
            assert block is not None and certificate is not None
            done: asyncio.Future[bool] = self.loop.create_future()
            done.add_done_callback(functools.partial(self._on_synced, sim_node, height, best))
            node.enqueue(SyncedBlock(block, certificate, done))
        sim_node.synced_to = best.height
        self.log(f"n{sim_node.index} syncs {start}..{best.height} from n{best.index}")

    def _on_synced(self, sim_node: SimNode, height: int, source: SimNode,
                   done: asyncio.Future[bool]) -> None:
        if not done.cancelled() and not done.result():
            self.fail(f"n{sim_node.index} refused block {height} synced from "
                      f"n{source.index}")

    # ------------------------------------------------------------ transactions

    def add_txs(self) -> None:
        if self._tx_times:  # one at a time: a short timer heap is a fast one
            self.at(self._tx_times.pop(), self.add_txs)
        txs = []
        for _ in range(self.rng.randint(1, 4)):
            sender = self._next_sender
            self._next_sender = (sender + 1) % len(SENDER_KEYS)
            key, to = SENDER_KEYS[sender], SENDER_KEYS[(sender + 1) % len(SENDER_KEYS)]
            txs.append(make_transaction(CHAIN_ID, key, self._next_nonce[sender], "transfer",
                                        {"to": to.address, "asset": "GOV", "amount": 1}))
            self._next_nonce[sender] += 1
        for tx in txs:
            self.pending_txs[tx.hash] = tx
        for sim_node in self.nodes:
            if sim_node.is_up:
                self.submit(sim_node, txs)

    def submit(self, sim_node: SimNode, txs: list[Transaction]) -> None:
        """Submit `txs` to the node, as its RPC would (admission, not the driver)."""
        assert sim_node.node is not None
        self.loop.create_task(sim_node.node.submit_txs(txs, relay=False))

    # ------------------------------------------------------------ faults

    def plan(self) -> None:
        """Lay out the chaos phase, the heal and the extra controls from the seed."""
        s, rng = self.scenario, self.rng
        t = 0
        while True:
            t += rng.randint(50, 600)
            if t >= s.chaos_ms + s.liveness_budget_ms:
                break
            self._tx_times.append(t)
        self._tx_times.reverse()
        if self._tx_times:
            self.at(self._tx_times.pop(), self.add_txs)
        honest = [n for n in self.nodes if n.honest]
        if s.partitions:
            for _ in range(rng.randint(0, 3)):
                start = rng.randint(0, s.chaos_ms)
                groups = {i: rng.randint(0, 1) for i in range(s.n)}
                self.at(start, functools.partial(self.set_groups, groups))
                self.at(min(s.chaos_ms, start + rng.randint(100, 1500)),
                        functools.partial(self.set_groups, {}))
        if s.crashes:
            for _ in range(rng.randint(0, 3)):
                node = rng.choice(honest)
                start = rng.randint(0, s.chaos_ms)
                self.at(start, functools.partial(self.crash, node))
                self.at(min(s.chaos_ms, start + rng.randint(50, 1500)),
                        functools.partial(self.restart_if_down, node))
        for time_ms, action, arg in s.controls:
            node = self.nodes[arg]
            if action == "crash":
                self.at(time_ms, functools.partial(self.crash, node))
            elif action == "restart":
                self.at(time_ms, functools.partial(self.restart_if_down, node))
            elif action == "wipe_restart":
                self.at(time_ms, functools.partial(self.restart_if_down, node, wiped=True))
        self.at(s.chaos_ms, self.heal)
        self.at(s.chaos_ms + s.liveness_budget_ms, self.liveness_failed)

    def set_groups(self, groups: dict[int, int]) -> None:
        self.log(f"partition {groups}" if groups else "partition healed")
        self.group = groups

    def heal(self) -> None:
        self.log("heal: no more drops, partitions or crashes")
        self.group = {}
        self.drop_rate = 0.0
        down = [n for n in self.nodes if n.honest and not n.is_up
                and self.scenario.restart_at_heal]
        for i, node in enumerate(down):
            wiped = self.scenario.wiped_restart and i == 0
            self.start_node(node, wiped=wiped)
        self.healed_at = self.now
        self.goal = max(n.height for n in self.nodes if n.honest) + \
            self.scenario.liveness_heights
        self.check_liveness()

    def check_liveness(self) -> None:
        if (self.goal is not None and not self._finished.done()
                and all(n.height >= self.goal for n in self.honest_up())):
            self._finished.set_result(None)

    def liveness_failed(self) -> None:
        heights = {n.index: n.height for n in self.nodes}
        self.fail(f"liveness: honest nodes did not reach height {self.goal} within "
                  f"{self.scenario.liveness_budget_ms} ms after healing; heights {heights}")

    # ------------------------------------------------------------ run

    def run(self) -> None:
        """Run the scenario to its liveness goal; raises SimulationFailure."""
        quiet = logging.getLogger("govchain")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # invalid blocks and evidence are expected here
        try:
            self.loop.run_until_complete(self._main())
        finally:
            quiet.setLevel(level)
            self._stop()
        if self.failure is not None:
            raise self.failure

    async def _main(self) -> None:
        for node in self.nodes:
            self.start_node(node)
        self.plan()
        await self._finished

    def _stop(self) -> None:
        """Cancel every task (the nodes stay as they ended, for inspection)."""
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()


def sign_key(state: PersistSignState) -> tuple[int, int, int]:
    return (state.height, state.round, _STEP_RANK[state.step])


def format_trace(trace: deque[tuple[int, int | None, Any]]) -> list[str]:
    lines = []
    for time_ms, index, item in trace:
        if index is None:
            lines.append(f"{time_ms:>7} -- {item}")
            continue
        event, effects = item
        lines.append(f"{time_ms:>7} n{index} <- {describe(event)}")
        lines.extend(f"{time_ms:>7} n{index} -> {describe(effect)}" for effect in effects)
    return lines


def describe(item: object) -> str:
    """A short, stable text for the trace."""
    if isinstance(item, str):
        return item
    if isinstance(item, VoteReceived | Broadcast) and isinstance(
            getattr(item, "vote", getattr(item, "message", None)), Vote):
        vote = item.vote if isinstance(item, VoteReceived) else item.message
        assert isinstance(vote, Vote)
        return (f"{type(item).__name__}(vote {vote.kind.name} h={vote.height} r={vote.round} "
                f"{vote.block_hash.hex()[:8] or 'nil'} by {vote.validator.hex()[:6]})")
    for attr in ("proposal", "message"):
        message = getattr(item, attr, None)
        if isinstance(message, Proposal):
            return (f"{type(item).__name__}(proposal h={message.height} r={message.round} "
                    f"pol={message.pol_round} {message.block.hash.hex()[:8]})")
    if isinstance(item, CommitBlock):
        return f"CommitBlock(h={item.block.height} {item.block.hash.hex()[:8]})"
    if isinstance(item, BlockBuilt):
        return f"BlockBuilt(h={item.height} r={item.round} {item.block.hash.hex()[:8]})"
    if isinstance(item, ValidateBlock):
        return f"ValidateBlock({item.block.hash.hex()[:8]})"
    if isinstance(item, BlockValidated):
        return f"BlockValidated({item.block_hash.hex()[:8]} {item.valid})"
    if isinstance(item, StartHeight):
        return f"StartHeight({item.height})"
    if isinstance(item, ScheduleTimeout | TimeoutFired):
        return f"{type(item).__name__}({item.kind.value} h={item.height} r={item.round})"
    if isinstance(item, PersistSignState):
        return (f"PersistSignState(h={item.height} r={item.round} {item.step.value} "
                f"{item.block_hash.hex()[:8] or 'nil'})")
    if isinstance(item, RecordEvidence):
        return f"RecordEvidence({item.first.validator.hex()[:6]})"
    return repr(item)


def run_seed(seed: int, **overrides: Any) -> Simulation:
    """Run the default randomized scenario for `seed`; raises SimulationFailure."""
    rng = random.Random(seed ^ 0x5EED)
    n = overrides.pop("n", 4)
    scenario = Scenario(seed=seed, n=n,
                        byzantine=overrides.pop("byzantine", rng.randint(0, (n - 1) // 3)),
                        drop_rate=rng.choice([0.0, 0.05, 0.2]),
                        max_delay_ms=rng.choice([10, 40, 150]),
                        max_validate_ms=overrides.pop("max_validate_ms",
                                                      rng.choice([5, 5, 400, 2_500])),
                        **overrides)
    sim = Simulation(scenario)
    sim.run()
    return sim
