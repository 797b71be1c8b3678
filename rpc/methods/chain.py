"""The public JSON-RPC methods of a node (documented in docs/rpc.md).

Each method checks its params, reads through the Node, and answers plain JSON
values (bytes as hex). Submissions go through Node.submit_txs; nothing here writes
chain state.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from chain import codec, merkle
from chain.block import Block
from chain.crypto import Address, Hash32
from chain.errors import ChainError
from chain.results import ResultLeaf, compute_result_proof
from chain.tx import Transaction
from chain.vote import CommitCertificate
from ledger.errors import LedgerError
from node import __version__
from node.errors import MempoolError
from node.node import Node
from rpc.dispatcher import (
    BUSY,
    NOT_FOUND,
    TOO_LARGE,
    TX_REJECTED,
    RpcDispatcher,
    RpcError,
    invalid_params,
)
from rpc.methods import specs
from rpc.methods.ledger import register_ledger_methods
from rpc.methods.private import register_private_methods
from rpc.openrpc import build_document
from rpc.params import parse_hex, parse_int, to_json

MAX_WAIT_S = 120.0
RESULT_LEAF_CACHE_BLOCKS = 4
"""Blocks whose result leaves tx_proof keeps decoded: proofs for one busy block are
asked in bursts. At most 4 x max_block_txs leaves of about 200 bytes (8 MB at 10,000
transactions a block)."""
MAX_VALIDATOR_CHANGES = 256
"""The most validator-set changes one chain_validator_changes answer lists."""


def tx_json(tx: Transaction) -> dict[str, Any]:
    return {"hash": tx.hash.hex(), "chain_id": tx.chain_id, "sender": tx.sender.hex(),
            "nonce": tx.nonce, "type": tx.tx_type, "fields": to_json(tx.fields),
            "signatures": [{"public_key": s.public_key.hex(), "signature": s.signature.hex()}
                           for s in tx.signatures]}


def certificate_json(cert: CommitCertificate | None) -> dict[str, Any] | None:
    if cert is None:
        return None
    return {"height": cert.height, "round": cert.round, "block_hash": cert.block_hash.hex(),
            "signatures": [{"validator": k.hex(), "signature": s.hex()}
                           for k, s in cert.signatures],
            "encoded": cert.encoded.hex()}


def block_json(block: Block, cert: CommitCertificate | None, *, full: bool) -> dict[str, Any]:
    h = block.header
    return {
        "hash": block.hash.hex(), "height": h.height, "round": h.round,
        "timestamp_ms": h.timestamp_ms, "prev_hash": h.prev_hash.hex(),
        "proposer": h.proposer.hex(), "tx_root": h.tx_root.hex(),
        "results_root": h.results_root.hex(),
        "state_root": h.state_root.hex(), "validator_set_hash": h.validator_set_hash.hex(),
        "next_validator_set_hash": h.next_validator_set_hash.hex(),
        "header": h.encoded.hex(),
        "txs": [tx_json(tx) for tx in block.txs] if full else [tx.hash.hex() for tx in block.txs],
        "certificate": certificate_json(cert),
    }


def rejection_error(tx_hash: Hash32, error: MempoolError) -> RpcError:
    code = BUSY if error.code.is_busy else TX_REJECTED
    return RpcError(code, error.code, error.message, {"hash": tx_hash.hex(), "where": "admission"})


class NodeApi:
    """The public RPC methods over one Node."""

    def __init__(self, node: Node, *, peers: Callable[[], list[Any]] | None = None,
                 max_batch: int = 10_000) -> None:
        self.node = node
        self.peers = peers or (lambda: [])
        self.max_batch = max_batch
        self._result_leaves: OrderedDict[int, list[ResultLeaf]] = OrderedDict()

    def register(self, dispatcher: RpcDispatcher) -> None:
        r = dispatcher.register
        r("node_status", self.node_status, (), "Chain id, heights, head, peers, version",
          spec=specs.NODE_STATUS)
        r("tx_submit", self.tx_submit, ("tx", "wait", "timeout_s"),
          "Submit one signed transaction (hex); optionally wait until final",
          spec=specs.TX_SUBMIT)
        r("tx_submit_batch", self.tx_submit_batch, ("txs",),
          "Submit many signed transactions; one result per transaction",
          spec=specs.TX_SUBMIT_BATCH)
        r("tx_get", self.tx_get, ("hash",), "A transaction's status and result",
          spec=specs.TX_GET)
        r("tx_proof", self.tx_proof, ("hash",),
          "A final transaction's bytes, its inclusion proof and its result proof",
          spec=specs.TX_PROOF)
        r("chain_block", self.chain_block, ("height", "hash", "full"),
          "A final block with its commit certificate (latest by default)",
          spec=specs.CHAIN_BLOCK)
        r("chain_validators", self.chain_validators, ("height",),
          "The validator set that certifies a height", spec=specs.CHAIN_VALIDATORS)
        r("chain_validator_changes", self.chain_validator_changes, ("after_height", "limit"),
          "Each validator-set change with the certified header that commits to it",
          spec=specs.CHAIN_VALIDATOR_CHANGES)
        r("chain_evidence", self.chain_evidence, (),
          "Recorded equivocation evidence (conflicting votes)", spec=specs.CHAIN_EVIDENCE)
        r("state_account", self.state_account, ("address",),
          "Balances, nonce and the next nonce to use (counting pending txs)",
          spec=specs.STATE_ACCOUNT)
        r("state_proof", self.state_proof, ("key",),
          "A state value with its proof against the head's state root", spec=specs.STATE_PROOF)
        register_ledger_methods(dispatcher, self.node)  # state_asset, state_record...
        register_private_methods(dispatcher, self.node)  # private_read, private_reads...
        r("rpc_discover", self.make_discover(dispatcher), (),
          "The OpenRPC document of every method", spec=specs.RPC_DISCOVER)

    async def node_status(self, params: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        head = node.store.head_block()
        return {
            "chain_id": node.chain_id,
            "genesis_hash": node.genesis.hash.hex(),
            "height": node.store.head_height,
            "head_hash": node.store.head_hash.hex(),
            "head_time_ms": head.header.timestamp_ms if head else node.genesis.genesis_time_ms,
            "finalized_height": node.store.head_height,
            "base_height": node.store.base_height,
            "consensus": {"height": node.core.height, "round": node.core.round,
                          "step": node.core.step.value},
            "node_id": node.home.node_key.public_key.hex(),
            "moniker": node.home.config.moniker,
            "is_validator": node.core.is_validator,
            "validator_key": (node.home.validator_public_key.hex()
                              if node.home.validator_public_key else None),
            "peers": len(self.peers()),
            "mempool_size": len(node.mempool),
            "version": __version__,
            "upgrade": to_json(node.ledger.get_pending_upgrade(node.state)),
            "halted": node.upgrade_halt.message if node.upgrade_halt else None,
        }

    def _decode_tx(self, value: Any, name: str) -> Transaction:
        data = parse_hex(value, name)
        try:
            return self.node.admission.decode_tx(data)  # the size limit, then the form
        except ChainError as e:
            raise RpcError(TX_REJECTED, e.code, e.message) from e

    async def tx_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        if "tx" not in params:
            raise invalid_params("tx_submit needs `tx`: the signed transaction as hex")
        tx = self._decode_tx(params["tx"], "tx")
        wait = params.get("wait")
        if wait not in (None, "final"):
            raise invalid_params('wait must be "final" or absent')
        timeout_s = params.get("timeout_s", 30)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or \
                not 0 < timeout_s <= MAX_WAIT_S:
            raise invalid_params(f"timeout_s must be a number in (0, {MAX_WAIT_S}]")
        (error,) = await self.node.submit_txs([tx])
        if error is not None:
            raise rejection_error(tx.hash, error)
        if wait == "final":
            await self.node.wait_final(tx.hash, float(timeout_s))
        return self.node.get_tx_status(tx.hash)

    async def tx_submit_batch(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        values = params.get("txs")
        if not isinstance(values, list):
            raise invalid_params("tx_submit_batch needs `txs`: a list of hex transactions")
        if len(values) > self.max_batch:
            raise RpcError(TOO_LARGE, "batch_too_large",
                           f"{len(values)} transactions exceed the limit of {self.max_batch}")
        answers: list[dict[str, Any] | None] = [None] * len(values)
        txs: list[Transaction] = []
        positions: list[int] = []
        for i, value in enumerate(values):
            try:
                txs.append(self._decode_tx(value, f"txs[{i}]"))
                positions.append(i)
            except RpcError as e:
                answers[i] = {"error": e.to_json()}
        errors = await self.node.submit_txs(txs)
        for i, tx, error in zip(positions, txs, errors, strict=True):
            answers[i] = ({"hash": tx.hash.hex(),
                           "status": self.node.get_admitted_status(tx.hash)}
                          if error is None
                          else {"hash": tx.hash.hex(),
                                "error": rejection_error(tx.hash, error).to_json()})
        await asyncio.sleep(0)
        return [a for a in answers if a is not None]

    async def tx_get(self, params: dict[str, Any]) -> dict[str, Any]:
        tx_hash = Hash32(parse_hex(params.get("hash"), "hash", size=32))
        return self.node.get_tx_status(tx_hash)

    async def tx_proof(self, params: dict[str, Any]) -> dict[str, Any]:
        tx_hash = Hash32(parse_hex(params.get("hash"), "hash", size=32))
        store = self.node.store
        location = store.get_tx_location(tx_hash)
        block = None if location is None else store.get_block(location[0])
        if location is None or block is None:
            raise RpcError(NOT_FOUND, "tx_not_found",
                           "no transaction with this hash in a final block; tx_get says "
                           "whether it is pending or was refused")
        height, index = location
        hashes = [tx.hash for tx in block.txs]
        return {"hash": tx_hash.hex(), "height": height, "index": index,
                "tx_count": len(hashes), "tx": block.txs[index].encoded.hex(),
                "path": [p.hex() for p in merkle.compute_proof(hashes, index)],
                "result": self._result_proof(tx_hash, height, index)}

    def _result_proof(self, tx_hash: Hash32, height: int, index: int) -> dict[str, Any]:
        """The result leaf of the transaction and its path to the header's results_root."""
        store = self.node.store
        leaves = self._get_result_leaves(height)
        record = store.get_tx(tx_hash)
        assert record is not None, "the tx index named it a moment ago"
        leaf = leaves[index]
        return {"code": leaf.code, "message": record.message,
                "events": codec.encode(list(record.events)).hex(),
                "leaf": leaf.encoded.hex(),
                "path": [p.hex() for p in compute_result_proof(leaves, index)]}

    def _get_result_leaves(self, height: int) -> list[ResultLeaf]:
        """The result leaves of final block `height` (they never change once final)."""
        leaves = self._result_leaves.get(height)
        if leaves is None:
            leaves = self.node.store.get_result_leaves(height)
            self._result_leaves[height] = leaves
            while len(self._result_leaves) > RESULT_LEAF_CACHE_BLOCKS:
                self._result_leaves.popitem(last=False)
        else:
            self._result_leaves.move_to_end(height)
        return leaves

    async def chain_block(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self.node.store
        if params.get("hash") is not None:
            block = store.get_block_by_hash(Hash32(parse_hex(params["hash"], "hash", size=32)))
        else:
            height = params.get("height")
            height = store.head_height if height is None else parse_int(height, "height", lo=1)
            block = store.get_block(height)
            # Pruned (retain_blocks), or never here (joined by state sync): one answer.
            if block is None and height < store.base_height:
                raise RpcError(NOT_FOUND, "block_pruned",
                               f"pruned below height {store.base_height} on this node: ask "
                               "an archive node")
        if block is None:
            raise RpcError(NOT_FOUND, "block_not_found",
                           f"no final block there (head is {store.head_height})")
        return block_json(block, store.get_certificate(block.height),
                          full=bool(params.get("full", False)))

    async def chain_validators(self, params: dict[str, Any]) -> dict[str, Any]:
        height = params.get("height")
        height = self.node.store.head_height + 1 if height is None else parse_int(
            height, "height", lo=1, hi=self.node.store.head_height + 1)
        vset = self.node.validator_set(height)
        return {"height": height, "hash": vset.hash.hex(), "quorum": vset.quorum,
                "max_faulty": vset.max_faulty,
                "validators": [{"public_key": v.public_key.hex(), "name": v.name}
                               for v in vset.validators]}

    async def chain_validator_changes(self, params: dict[str, Any]) -> dict[str, Any]:
        """The sets that took effect at heights above `after_height`, oldest first, each
        with header and certificate of the block before it (which names its hash)."""
        store = self.node.store
        after = parse_int(params.get("after_height", 0), "after_height", lo=0)
        limit = parse_int(params.get("limit", MAX_VALIDATOR_CHANGES), "limit", lo=1,
                          hi=MAX_VALIDATOR_CHANGES)
        changes: list[dict[str, Any]] = []
        last = store.head_height
        for from_height, vset in store.iterate_validator_set_changes(max(after + 1, 2), last):
            if len(changes) == limit:
                return {"changes": changes, "more": True}
            header = store.get_block_header(from_height - 1)
            cert = store.get_certificate(from_height - 1)
            if header is None or cert is None:
                raise RpcError(NOT_FOUND, "block_pruned",
                               f"the block of height {from_height - 1} that certifies a "
                               "validator-set change is not kept here; ask an archive node")
            changes.append({
                "from_height": from_height, "hash": vset.hash.hex(),
                "validators": [{"public_key": v.public_key.hex(), "name": v.name}
                               for v in vset.validators],
                "certified_by": {"height": from_height - 1, "header": header.encoded.hex(),
                                 "certificate": cert.encoded.hex()}})
        return {"changes": changes, "more": False}

    async def chain_evidence(self, params: dict[str, Any]) -> list[Any]:
        return [to_json(codec.decode(e)) for e in self.node.store.list_evidence()]

    async def state_account(self, params: dict[str, Any]) -> dict[str, Any]:
        address = Address(parse_hex(params.get("address"), "address", size=20))
        try:
            account = self.node.get_account(address)
        except LedgerError as e:
            raise RpcError(NOT_FOUND, e.code, e.message) from e
        return {**to_json(account), "address": address.hex()}

    async def state_proof(self, params: dict[str, Any]) -> dict[str, Any]:
        key = parse_hex(params.get("key"), "key")
        if not 0 < len(key) <= 256:
            raise invalid_params("key must be 1 to 256 bytes")
        store = self.node.store
        proof = store.get_state_proof(key)
        value = store.get_state(key)
        return {"height": proof.height, "key": key.hex(),
                "value": value.hex() if value is not None else None, "proof": proof.to_json()}

    def make_discover(self, dispatcher: RpcDispatcher) -> Any:
        async def rpc_discover(params: dict[str, Any]) -> dict[str, Any]:
            return build_document(dispatcher.methods.values(), __version__)
        return rpc_discover
