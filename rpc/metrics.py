"""Prometheus metrics of a node, in the text exposition format (version 0.0.4).

The exposition is small enough to write here rather than depend on prometheus-client:
counters and histograms are updated by hooks on the node (commit, admission, block
execution); gauges are read from the node when /metrics is scraped. Nothing here
changes node state.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Collection, Iterable
from pathlib import Path

from chain import codec
from chain.vote import CommitCertificate
from ledger.assets import AssetRecord, get_attestation
from ledger.keys import ASSET_PREFIX
from ledger.reserve import is_attestation_expired
from node import __version__
from node.errors import MempoolError
from node.execution import ExecutedBlock
from rpc.served import ServedNode

Labels = tuple[tuple[str, str], ...]
log = logging.getLogger("govchain.reserve")

EXECUTION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROUND_BUCKETS = (1, 2, 3, 5, 10)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "}"


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Family:
    """One metric name with its help, type and labelled samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def retain(self, label: str, kept: Collection[str]) -> None:
        """Drop the samples whose `label` is not one of `kept`."""
        self.values = {labels: value for labels, value in self.values.items()
                       if dict(labels).get(label) in kept}

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{format_labels(labels)} {format_value(value)}"


class Histogram:
    """A Prometheus histogram without labels."""

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.count += 1
        self.sum += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for bound, count in zip(self.buckets, self.counts, strict=True):
            yield f'{self.name}_bucket{{le="{format_value(bound)}"}} {count}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {format_value(self.sum)}"
        yield f"{self.name}_count {self.count}"


def get_dir_size_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:  # a LevelDB file compacted away while we walk
                continue
    return total


class NodeMetrics:
    """Counters fed by node hooks, plus gauges read at scrape time."""

    def __init__(self, service: ServedNode) -> None:
        self.service = service
        node = service.node
        self.tx_admitted = Family("govchain_tx_admitted_total", "counter",
                                  "Transactions admitted to the mempool.")
        self.tx_rejected = Family("govchain_tx_rejected_total", "counter",
                                  "Transactions refused at admission, by reason code.")
        self.txs_final = Family("govchain_txs_final_total", "counter",
                                "Transactions in final blocks committed by this node.")
        self.tx_failed = Family("govchain_tx_failed_total", "counter",
                                "Transactions in final blocks that failed a ledger rule at "
                                "execution, by reason code.")
        self.reserve = ReserveWatch(service)
        self.proposer_misses = Family(
            "govchain_proposer_misses_total", "counter",
            "Rounds whose proposer's block was not finalized, by that proposer.")
        self.missed_certificates = Family(
            "govchain_validator_missed_certificates_total", "counter",
            "Final blocks whose commit certificate lacks this validator's signature.")
        self.last_signed = Family(
            "govchain_validator_last_signed_height", "gauge",
            "Latest height whose commit certificate holds this validator's signature "
            "(members of the validator set in force only).")
        self.rounds = Histogram("govchain_block_rounds", "Rounds needed to finalize a height.",
                                ROUND_BUCKETS)
        self.execution = Histogram("govchain_block_execution_seconds",
                                   "Time to build or re-execute one block.",
                                   EXECUTION_BUCKETS_S)
        node.add_commit_listener(self.on_commit)
        node.on_admission = self.on_admission
        node.executor.on_executed = self.execution.observe

    def on_admission(self, errors: list[MempoolError | None]) -> None:
        for error in errors:
            if error is None:
                self.tx_admitted.inc()
            else:
                self.tx_rejected.inc(code=error.code)

    def on_commit(self, executed: ExecutedBlock, certificate: CommitCertificate) -> None:
        block = executed.block
        height = block.height
        validator_set = self.service.node.store.get_validator_set(height)
        self.rounds.observe(certificate.round + 1)
        self.txs_final.inc(len(block.txs))
        for result in executed.results:
            if not result.is_ok:
                self.tx_failed.inc(code=result.code)
        self.reserve.on_commit(block.header.timestamp_ms)
        for round_ in range(certificate.round):
            proposer = validator_set.get_proposer(height, round_)
            self.proposer_misses.inc(validator=proposer.hex())
        signers = {key for key, _ in certificate.signatures}
        for validator in validator_set.validators:
            key = validator.public_key.hex()
            if validator.public_key in signers:
                self.last_signed.set(height, validator=key, name=validator.name)
            else:
                self.missed_certificates.inc(validator=key, name=validator.name)
        # A key that left the set would keep its last height forever, and the
        # "stopped signing" alert would fire for it forever: keep members only.
        members = self.service.node.store.get_validator_set(height + 1).validators
        self.last_signed.retain("validator", {v.public_key.hex() for v in members})

    def _gauges(self) -> list[Family]:
        service = self.service
        node = service.node
        store = node.store
        head = store.head_block()
        head_time_ms = head.header.timestamp_ms if head else node.genesis.genesis_time_ms
        counters = service.network.p2p.counters()

        def gauge(name: str, help_text: str, value: float, kind: str = "gauge",
                  **labels: str) -> Family:
            family = Family(name, kind, help_text)
            family.set(value, **labels)
            return family

        p2p_bytes = Family("govchain_p2p_bytes_total", "counter",
                           "Bytes of p2p traffic since start, by direction.")
        p2p_bytes.set(counters.bytes_in, direction="in")
        p2p_bytes.set(counters.bytes_out, direction="out")
        rpc = Family("govchain_rpc_requests_total", "counter",
                     "JSON-RPC calls by method and status (ok or an error reason).")
        for (method, status), count in service.api_dispatcher.calls_by_method.items():
            rpc.set(count, method=method, status=status)
        return [
            gauge("govchain_build_info", "Node version and chain.", 1, version=__version__,
                  chain_id=node.chain_id, moniker=node.home.config.moniker),
            gauge("govchain_height", "Height of the latest block this node committed.",
                  store.head_height),
            gauge("govchain_finalized_height",
                  "Latest final height (equal to the height: every committed block is final).",
                  store.head_height),
            gauge("govchain_consensus_height", "Height consensus is working on.",
                  node.core.height),
            gauge("govchain_consensus_round", "Round of the height in progress.",
                  node.core.round),
            gauge("govchain_head_age_seconds", "Seconds since the head block's timestamp.",
                  max(0.0, time.time() - head_time_ms / 1000)),
            gauge("govchain_is_validator", "1 when this node holds a validator key.",
                  1 if node.core.is_validator else 0),
            gauge("govchain_peers", "Connected peers.", len(service.network.peer_list())),
            gauge("govchain_mempool_txs", "Transactions waiting in the mempool.",
                  len(node.mempool)),
            gauge("govchain_mempool_bytes", "Bytes of transactions waiting in the mempool.",
                  node.mempool.size_bytes),
            gauge("govchain_storage_bytes", "Size of the data directory on disk.",
                  get_dir_size_bytes(node.home.data_dir)),
            p2p_bytes, rpc, *self._signer_gauges(),
        ]

    def _signer_gauges(self) -> list[Family]:
        """The signer link's state, when the key is in a signer process."""
        link = self.service.node.signer_client
        if link is None:
            return []
        connected = Family("govchain_signer_connected", "gauge",
                           "1 while a signer holding the validator key is connected.")
        connected.set(1 if link.connected.is_set() else 0)
        requests = Family("govchain_signer_requests_total", "counter",
                          "Signature requests by outcome: signed, refused by the signer, "
                          "dropped (no signer connected, or the link failed).")
        requests.set(link.signed_count, outcome="signed")
        requests.set(link.refused_count, outcome="refused")
        requests.set(link.dropped_count, outcome="dropped")
        return [connected, requests]

    def render(self) -> str:
        families: list[Family | Histogram] = [
            *self._gauges(), *self.reserve.gauges(), self.tx_admitted, self.tx_rejected,
            self.tx_failed, self.txs_final,
            self.proposer_misses, self.missed_certificates, self.last_signed, self.rounds,
            self.execution]
        lines: list[str] = []
        for family in families:
            lines.extend(family.render())
        return "\n".join(lines) + "\n"


class ReserveWatch:
    """The age of each reserve-backed asset's latest attestation, and whether it expired.

    At each commit, an asset whose attestation went stale under its reserve policy is
    logged once at WARNING (and once at INFO when a new attestation restores minting).
    The gauges are read at scrape time against the head block's time.
    """

    def __init__(self, service: ServedNode) -> None:
        self.service = service
        self.expired: set[str] = set()

    def _assets(self, now_ms: int) -> list[tuple[str, int, bool | None]]:
        node = self.service.node
        found = []
        for key, value in node.store.iterate_state(ASSET_PREFIX):
            record = AssetRecord.from_value(codec.decode(value))
            if not record.reserve_backed:
                continue
            symbol = key[len(ASSET_PREFIX):].decode()
            latest = (get_attestation(node.state, symbol, record.attestations - 1)
                      if record.attestations else None)
            age_ms = now_ms - int(latest["timestamp_ms"]) if latest else -1
            found.append((symbol, age_ms,
                          is_attestation_expired(node.state, symbol, latest, now_ms)))
            if len(found) >= 64:  # bounded: governance creates assets, few are backed
                break
        return found

    def on_commit(self, timestamp_ms: int) -> None:
        for symbol, age_ms, expired in self._assets(timestamp_ms):
            if expired and symbol not in self.expired:
                self.expired.add(symbol)
                log.warning("attestation of %s expired (age %d s): minting is refused "
                            "until the auditor attests again", symbol, age_ms // 1000)
            elif not expired and symbol in self.expired:
                self.expired.discard(symbol)
                log.info("attestation of %s is current again: minting resumes", symbol)

    def gauges(self) -> list[Family]:
        head = self.service.node.store.head_block()
        now_ms = head.header.timestamp_ms if head else self.service.node.genesis.genesis_time_ms
        age = Family("govchain_attestation_age_seconds", "gauge",
                     "Age of the latest reserve attestation at the head block's time.")
        expired = Family("govchain_attestation_expired", "gauge",
                         "1 when the latest attestation is older than the asset's "
                         "reserve policy allows (minting refused).")
        for symbol, age_ms, is_expired in self._assets(now_ms):
            age.set(max(age_ms, 0) / 1000, asset=symbol)
            if is_expired is not None:
                expired.set(1 if is_expired else 0, asset=symbol)
        return [age, expired]


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a text exposition by metric name (tests and `govchain` tooling)."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, label_text = head.partition("{")
        labels: dict[str, str] = {}
        for part in filter(None, label_text.rstrip("}").split('",')):
            key, _, raw = part.partition("=")
            labels[key] = raw.strip('"')
        samples.setdefault(name, []).append((labels, float(value)))
    return samples

