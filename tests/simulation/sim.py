"""Deterministic simulation of a govchain validator network around the real consensus core.

One seed drives the network (delay, reorder, drop, duplicate, partitions), the fake
clock, crashes and restarts, and the byzantine validators. The harness plays the
node's shell. Safety is checked after every step, liveness after the network heals;
a failure names SIM_SEED=<seed> and prints the tail of a replayable trace.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chain.block import Block, BlockHeader, compute_tx_root
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.errors import InvalidCertificateError
from chain.genesis import ChainParams
from chain.tx import Transaction
from chain.vote import (
    NIL,
    CommitCertificate,
    Proposal,
    Validator,
    ValidatorSet,
    Vote,
    validate_certificate,
)
from consensus.core import ConsensusState, is_valid_proposal_signature
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
    RequestBlock,
    ScheduleTimeout,
    StartHeight,
    Step,
    TimeoutFired,
    TxsAvailable,
    ValidateBlock,
    VoteReceived,
)

CHAIN_ID = "govchain-sim"
GENESIS_HASH = compute_hash(b"govchain-sim genesis")
GENESIS_TIME_MS = 1_700_000_000_000
SIM_PARAMS = ChainParams(block_interval_ms=50, empty_block_interval_ms=150,
                         timeout_propose_ms=200, timeout_vote_ms=100, timeout_delta_ms=50,
                         timeout_max_ms=1000)
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
    """Upper bound of the seeded time a node takes to execute a proposed block; above
    the propose timeout (1,000 ms) it models blocks slower to execute than the timeout."""
    liveness_heights: int = 3
    """New heights every honest node must commit after healing."""
    liveness_budget_ms: int = 30_000
    controls: list[tuple[int, str, Any]] = field(default_factory=list)
    """Extra (time_ms, action, argument) faults: 'crash', 'restart', 'wipe_restart'."""


@dataclass
class SimNode:
    """A node as the shell sees it: core plus what its disk holds."""

    index: int
    key: KeyPair
    honest: bool
    core: ConsensusState | None = None
    incarnation: int = 0
    sign_state: PersistSignState | None = None
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)

    @property
    def is_up(self) -> bool:
        return self.core is not None


class Simulation:
    """The harness: event queue, network, shell duties and invariant checks."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(scenario.n)]
        self.validator_set = ValidatorSet(tuple(Validator(k.public_key, f"v{i}")
                                                for i, k in enumerate(self.keys)))
        self.nodes = [SimNode(i, k, honest=i >= scenario.byzantine)
                      for i, k in enumerate(self.keys)]
        self.now = 0
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self.trace: deque[str] = deque(maxlen=400)
        self.group: dict[int, int] = {}
        self.drop_rate = scenario.drop_rate
        self.pending_txs = 0
        self._tx_nonce = 0
        self.committed: dict[int, Hash32] = {}
        self.signed: dict[tuple[bytes, int, int, str], Hash32] = {}
        self.evidence: list[RecordEvidence] = []
        self._verified: dict[tuple[Any, ...], bool] = {}
        self.healed_at: int | None = None

    # ------------------------------------------------------------ plumbing

    def fail(self, what: str) -> None:
        tail = "\n".join(self.trace)
        raise SimulationFailure(f"SIM_SEED={self.scenario.seed}: {what} at t={self.now}ms\n"
                                f"trace (last {len(self.trace)} steps):\n{tail}")

    def at(self, time_ms: int, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time_ms, self._seq, action))

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:>7} {text}")

    def honest_up(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest and n.is_up]

    # ------------------------------------------------------------ blocks

    def build_block(self, height: int, round_: int, prev_hash: Hash32, proposer: KeyPair,
                    min_timestamp_ms: int, salt: int = 0, malformed: bool = False) -> Block:
        count = min(self.pending_txs, 3)
        txs = tuple(Transaction(CHAIN_ID, bytes(20), height * 1000 + i + salt * 100, "noop",
                                {}) for i in range(count))
        state_root = compute_hash(b"%d:" % height + prev_hash)
        if malformed:
            state_root = compute_hash(b"wrong" + state_root)
        header = BlockHeader(
            chain_id=CHAIN_ID, height=height, round=round_,
            timestamp_ms=max(min_timestamp_ms, GENESIS_TIME_MS + self.now) + salt,
            prev_hash=prev_hash, proposer=proposer.public_key, tx_root=compute_tx_root(txs),
            state_root=Hash32(state_root), validator_set_hash=self.validator_set.hash,
            next_validator_set_hash=self.validator_set.hash)
        return Block(header, txs)

    @staticmethod
    def is_block_valid(block: Block) -> bool:
        h = block.header
        return (h.state_root == compute_hash(b"%d:" % h.height + h.prev_hash)
                and h.tx_root == compute_tx_root(block.txs))

    # ------------------------------------------------------------ the shell

    def feed(self, node: SimNode, event: Event) -> None:
        """Hand one event to a node's core and apply the effects in order."""
        if node.core is None:
            return
        self.log(f"n{node.index} <- {describe(event)}")
        effects = node.core.process_event(event)
        self.apply_effects(node, effects)

    def apply_effects(self, node: SimNode, effects: list[Effect]) -> None:
        for effect in effects:
            self.log(f"n{node.index} -> {describe(effect)}")
            if isinstance(effect, PersistSignState):
                self.on_persist(node, effect)
            elif isinstance(effect, Broadcast):
                self.on_broadcast(node, effect.message)
            elif isinstance(effect, ScheduleTimeout):
                self.schedule_core(node, effect.delay_ms, effect_timeout(effect))
            elif isinstance(effect, RequestBlock):
                block = self.build_block(effect.height, effect.round, effect.prev_hash,
                                         node.key, effect.min_timestamp_ms)
                self.schedule_core(node, self.rng.randint(0, 5),
                                   BlockBuilt(effect.height, effect.round, block))
            elif isinstance(effect, ValidateBlock):
                self.schedule_core(node, self.rng.randint(0, self.scenario.max_validate_ms),
                                   BlockValidated(effect.block.hash,
                                                  self.is_block_valid(effect.block)))
            elif isinstance(effect, CommitBlock):
                self.on_commit(node, effect)
            else:
                self.on_evidence(node, effect)

    def schedule_core(self, node: SimNode, delay_ms: int, event: Event) -> None:
        incarnation = node.incarnation

        def fire() -> None:
            if node.incarnation == incarnation:
                self.feed(node, event)
        self.at(self.now + delay_ms, fire)

    def on_persist(self, node: SimNode, effect: PersistSignState) -> None:
        last = node.sign_state
        if node.honest and last is not None and sign_key(effect) < sign_key(last):
            self.fail(f"n{node.index} persisted sign state going backwards: {effect}")
        node.sign_state = effect

    def on_broadcast(self, node: SimNode, message: Proposal | Vote) -> None:
        own = not isinstance(message, Vote) or message.validator == node.key.public_key
        if node.honest and own:
            self.check_signed(node, message)
        for peer in self.nodes:
            if peer is node:
                continue
            outgoing: Proposal | Vote = message
            if not node.honest and own and self.rng.random() < 0.5:
                outgoing = self.conflicting(node, message)
            self.send(node, peer, outgoing)

    def check_signed(self, node: SimNode, message: Proposal | Vote) -> None:
        """No honest double-sign, and the sign state was persisted before the send."""
        if isinstance(message, Vote):
            step = Step.PREVOTE if message.kind == 1 else Step.PRECOMMIT
            key = (node.key.public_key, message.height, message.round, step.value)
            block_hash = message.block_hash
        else:
            step = Step.PROPOSE
            key = (node.key.public_key, message.height, message.round, step.value)
            block_hash = message.block.hash
        seen = self.signed.setdefault(key, block_hash)
        if seen != block_hash:
            self.fail(f"honest n{node.index} signed two messages at {key[1:]}")
        persisted = node.sign_state
        if persisted is None or sign_key(persisted) < (message.height, message.round,
                                                        _STEP_RANK[step]):
            self.fail(f"n{node.index} broadcast {key[1:]} before persisting its sign state")

    def conflicting(self, node: SimNode, message: Proposal | Vote) -> Proposal | Vote:
        """What a byzantine validator sends some peers instead of `message`."""
        if isinstance(message, Vote):
            other = NIL if message.block_hash != NIL else Hash32(
                self.rng.randbytes(32))
            return Vote.create(CHAIN_ID, node.key, message.kind, message.height,
                               message.round, other)
        block = message.block
        alternative = self.build_block(block.height, message.round, block.header.prev_hash,
                                       node.key, block.header.timestamp_ms,
                                       salt=self.rng.randint(1, 9),
                                       malformed=self.rng.random() < 0.3)
        return Proposal.create(CHAIN_ID, node.key, message.height, message.round, -1,
                               alternative)

    def send(self, src: SimNode, dst: SimNode, message: Proposal | Vote) -> None:
        copies = 1
        if self.rng.random() < self.drop_rate:
            copies = 0
        elif self.rng.random() < self.scenario.duplicate_rate:
            copies = 2
        for _ in range(copies):
            delay = self.rng.randint(1, self.scenario.max_delay_ms)
            self.at(self.now + delay, lambda: self.deliver(src, dst, message))

    def deliver(self, src: SimNode, dst: SimNode, message: Proposal | Vote) -> None:
        if dst.core is None or self.group.get(src.index, 0) != self.group.get(dst.index, 0):
            return
        if not self.is_signature_valid(message):
            self.log(f"n{dst.index} drops a badly signed {type(message).__name__}")
            return
        if message.height > dst.core.height:
            self.sync(dst)
        if isinstance(message, Vote):
            self.feed(dst, VoteReceived(message))
        else:
            self.feed(dst, ProposalReceived(message))

    def is_signature_valid(self, message: Proposal | Vote) -> bool:
        if isinstance(message, Vote):
            key: tuple[Any, ...] = (message.validator, message.signature, message.kind,
                                    message.height, message.round, message.block_hash)
            verify = lambda: message.is_signature_valid(CHAIN_ID)  # noqa: E731
        else:
            key = (message.signature, message.height, message.round, message.pol_round,
                   message.block.hash)
            verify = lambda: is_valid_proposal_signature(  # noqa: E731
                message, self.validator_set, CHAIN_ID)
        if key not in self._verified:
            self._verified[key] = verify()
        return self._verified[key]

    def on_commit(self, node: SimNode, effect: CommitBlock) -> None:
        block, cert = effect.block, effect.certificate
        height = block.height
        try:
            validate_certificate(cert, self.validator_set, CHAIN_ID, height=height,
                                 block_hash=block.hash)
        except InvalidCertificateError as e:
            self.fail(f"n{node.index} committed height {height} with a bad certificate: {e}")
        if node.honest:
            first = self.committed.setdefault(height, block.hash)
            if first != block.hash:
                self.fail(f"two honest nodes committed different blocks at height {height}")
            if first == block.hash and len(block.txs) and height not in self._tx_heights:
                self._tx_heights.add(height)
                self.pending_txs = max(0, self.pending_txs - len(block.txs))
        expected_prev = node.chain[-1][0].hash if node.chain else GENESIS_HASH
        if block.header.prev_hash != expected_prev or height != len(node.chain) + 1:
            self.fail(f"n{node.index} committed height {height} off its chain")
        node.chain.append((block, cert))
        self.start_next_height(node)

    _tx_heights: set[int] = set()

    def start_next_height(self, node: SimNode) -> None:
        tip = node.chain[-1][0] if node.chain else None
        self.feed(node, StartHeight(
            height=len(node.chain) + 1, validator_set=self.validator_set,
            prev_hash=tip.hash if tip else GENESIS_HASH,
            prev_timestamp_ms=tip.header.timestamp_ms if tip else GENESIS_TIME_MS))
        if self.pending_txs:
            self.feed(node, TxsAvailable())

    def on_evidence(self, node: SimNode, effect: RecordEvidence) -> None:
        culprit = self.validator_set.index_of[effect.first.validator]
        if self.nodes[culprit].honest:
            self.fail(f"n{node.index} recorded evidence against honest n{culprit}")
        if effect.first.block_hash == effect.second.block_hash:
            self.fail("evidence of two votes for the same block")
        self.evidence.append(effect)

    def sync(self, node: SimNode) -> None:
        """Block sync: copy verified blocks and certificates from the longest chain up."""
        assert node.core is not None
        sources = [n for n in self.nodes if n.is_up and n is not node]
        best = max(sources, key=lambda n: len(n.chain), default=None)
        if best is None or len(best.chain) <= len(node.chain):
            return
        for block, cert in best.chain[len(node.chain):]:
            validate_certificate(cert, self.validator_set, CHAIN_ID, height=block.height,
                                 block_hash=block.hash)
            if node.honest and self.committed.setdefault(block.height,
                                                         block.hash) != block.hash:
                self.fail(f"n{node.index} synced a block that conflicts at {block.height}")
            node.chain.append((block, cert))
        self.log(f"n{node.index} synced to height {len(node.chain)}")
        if node.core.height <= len(node.chain):
            self.start_next_height(node)

    # ------------------------------------------------------------ faults

    def start_node(self, node: SimNode, *, wiped: bool = False) -> None:
        node.incarnation += 1
        if wiped:
            node.sign_state = None
            node.chain = []
        node.core = ConsensusState(CHAIN_ID, node.key, SIM_PARAMS, node.sign_state,
                                   fresh_start=wiped)
        self.log(f"n{node.index} starts{' (wiped)' if wiped else ''}")
        self.start_next_height(node)
        self.sync(node)

    def crash(self, node: SimNode) -> None:
        if node.core is None:
            return
        self.log(f"n{node.index} crashes")
        node.core = None
        node.incarnation += 1

    def add_txs(self) -> None:
        self.pending_txs += self.rng.randint(1, 4)
        for node in self.nodes:
            if node.is_up:
                self.feed(node, TxsAvailable())

    def plan(self) -> None:
        """Lay out the chaos phase, the heal and the extra controls from the seed."""
        s, rng = self.scenario, self.rng
        t = 0
        while True:
            t += rng.randint(50, 600)
            if t >= s.chaos_ms + s.liveness_budget_ms:
                break
            self.at(t, self.add_txs)
        honest = [n for n in self.nodes if n.honest]
        if s.partitions:
            for _ in range(rng.randint(0, 3)):
                start = rng.randint(0, s.chaos_ms)
                groups = {i: rng.randint(0, 1) for i in range(s.n)}
                self.at(start, lambda g=groups: self.set_groups(g))
                self.at(min(s.chaos_ms, start + rng.randint(100, 1500)),
                        lambda: self.set_groups({}))
        if s.crashes:
            for _ in range(rng.randint(0, 3)):
                node = rng.choice(honest)
                start = rng.randint(0, s.chaos_ms)
                self.at(start, lambda n=node: self.crash(n))
                self.at(min(s.chaos_ms, start + rng.randint(50, 1500)),
                        lambda n=node: self.restart_if_down(n))
        for time_ms, action, arg in s.controls:
            node = self.nodes[arg]
            if action == "crash":
                self.at(time_ms, lambda n=node: self.crash(n))
            elif action == "restart":
                self.at(time_ms, lambda n=node: self.restart_if_down(n))
            elif action == "wipe_restart":
                self.at(time_ms, lambda n=node: self.restart_if_down(n, wiped=True))
        self.at(s.chaos_ms, self.heal)

    def set_groups(self, groups: dict[int, int]) -> None:
        self.log(f"partition {groups}" if groups else "partition healed")
        self.group = groups

    def restart_if_down(self, node: SimNode, *, wiped: bool = False) -> None:
        if node.core is None:
            self.start_node(node, wiped=wiped)

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

    # ------------------------------------------------------------ run

    def run(self) -> None:
        s = self.scenario
        for node in self.nodes:
            self.start_node(node)
        self.plan()
        deadline = s.chaos_ms + s.liveness_budget_ms
        goal: int | None = None
        while self._queue:
            time_ms, _, action = heapq.heappop(self._queue)
            if time_ms > deadline:
                break
            self.now = time_ms
            action()
            if self.healed_at is not None:
                if goal is None:
                    goal = max((len(n.chain) for n in self.nodes if n.honest), default=0)
                    goal += s.liveness_heights
                if all(len(n.chain) >= goal for n in self.honest_up()):
                    return
        heights = {n.index: len(n.chain) for n in self.nodes}
        self.fail(f"liveness: honest nodes did not reach height {goal} within "
                  f"{s.liveness_budget_ms} ms after healing; heights {heights}")


def sign_key(state: PersistSignState) -> tuple[int, int, int]:
    return (state.height, state.round, _STEP_RANK[state.step])


def effect_timeout(effect: ScheduleTimeout) -> Event:
    return TimeoutFired(effect.height, effect.round, effect.kind)


def describe(item: object) -> str:
    """A short, stable text for the trace."""
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
    sim._tx_heights = set()
    sim.run()
    return sim
